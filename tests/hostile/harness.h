/*  harness.h - a real droverd for the hostile-peer tests.

    Makes a temporary directory with a server certificate, producer,
    worker and admin certificates in an allow-list, and a stranger's
    certificate that is not in it; starts droverd on 127.0.0.1 with ports
    the OS picks, CURVE on, logging to a file; reads its bound endpoints
    from that log; and at exit stops it by PID and removes the directory.
    Also reads the broker's memory (VmRSS) and CPU time from /proc.

    Header-only: each test program includes it once.
*/
#ifndef HOSTILE_HARNESS_H_INCLUDED
#define HOSTILE_HARNESS_H_INCLUDED

#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

//  Under AddressSanitizer (the whole build is instrumented, droverd too)
//  memory figures carry its shadow and allocator overhead: limits on the
//  broker's RSS are multiplied by HH_MEMORY_FACTOR, and droverd runs with a
//  small quarantine so that freed memory is reused as it would be.
#if defined(__SANITIZE_ADDRESS__)
#   define HH_SANITIZED 1
#elif defined(__has_feature)
#   if __has_feature(address_sanitizer)
#       define HH_SANITIZED 1
#   endif
#endif
#ifdef HH_SANITIZED
#   define HH_MEMORY_FACTOR 3
#else
#   define HH_MEMORY_FACTOR 1
#endif

#define HH_CHECK(cond, ...) \
    do { if (!(cond)) { \
        fprintf (stderr, "%s:%d: FAIL: ", __FILE__, __LINE__); \
        fprintf (stderr, __VA_ARGS__); fprintf (stderr, "\n"); \
        hh_dump_log (); exit (1); } } while (0)

typedef struct {
    char dir [256];             //  temporary directory, removed at exit
    char log [300];             //  droverd's stdout and stderr
    char server_pub [300];      //  broker's public certificate
    char server_key [64];       //  its public key (Z85)
    pid_t pid;                  //  droverd, 0 when not running
    char producers [256];       //  bound client endpoint
    char workers [256];         //  bound worker endpoint
    int metrics_port;           //  bound HTTP port, 0 when droverd has none
    zcert_t *cert [4];          //  producer, worker, admin, stranger
} hh_t;

enum { HH_PRODUCER, HH_WORKER, HH_ADMIN, HH_STRANGER };
static const char *hh_roles [4] = {"producer", "worker", "admin", "producer"};
static const char *hh_names [4] = {"producer", "worker", "admin", "stranger"};

static hh_t hh;

static inline uint64_t
hh_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static inline void
hh_dump_log (void)
{
    if (!*hh.log)
        return;
    char command [400];
    fprintf (stderr, "--- last lines of the broker's log\n");
    snprintf (command, sizeof command, "tail -n 30 '%s' >&2", hh.log);
    if (system (command) != 0)
        fprintf (stderr, "(no log)\n");
}

//  Stops droverd with SIGTERM (SIGKILL after 10 s); returns its exit status
//  as from waitpid, or -1 if it was not running.
static inline int
hh_stop (void)
{
    if (!hh.pid)
        return -1;
    int status = -1;
    kill (hh.pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        if (waitpid (hh.pid, &status, WNOHANG) == hh.pid) {
            hh.pid = 0;
            return status;
        }
        usleep (50000);
    }
    kill (hh.pid, SIGKILL);
    waitpid (hh.pid, &status, 0);
    hh.pid = 0;
    return status;
}

static inline void
hh_cleanup (void)
{
    hh_stop ();
    for (int i = 0; i < 4; i++)
        zcert_destroy (&hh.cert [i]);
    if (*hh.dir && !getenv ("HOSTILE_KEEP")) {
        char command [300];
        snprintf (command, sizeof command, "rm -rf '%s'", hh.dir);
        if (system (command) != 0)
            fprintf (stderr, "cannot remove %s\n", hh.dir);
    }
}

static void
hh_on_signal (int sig)
{
    exit (128 + sig);               //  runs hh_cleanup
}

//  Temporary directory and certificates.
static inline void
hh_setup (void)
{
    zsys_init ();
    zsys_set_logstream (NULL);
    const char *tmp = getenv ("TMPDIR");
    snprintf (hh.dir, sizeof hh.dir, "%s/hostile.XXXXXX", tmp && *tmp? tmp: "/tmp");
    HH_CHECK (mkdtemp (hh.dir), "mkdtemp: %s", strerror (errno));
    atexit (hh_cleanup);
    signal (SIGINT, hh_on_signal);
    signal (SIGTERM, hh_on_signal);
    char path [400];
    snprintf (path, sizeof path, "%s/allow", hh.dir);
    HH_CHECK (zsys_dir_create ("%s", path) == 0, "mkdir");
    snprintf (path, sizeof path, "%s/keys", hh.dir);
    HH_CHECK (zsys_dir_create ("%s", path) == 0, "mkdir");
    zcert_t *server = zcert_new ();
    snprintf (hh.server_pub, sizeof hh.server_pub, "%s/keys/server", hh.dir);
    HH_CHECK (zcert_save (server, hh.server_pub) == 0, "cannot save the server certificate");
    snprintf (hh.server_key, sizeof hh.server_key, "%s", zcert_public_txt (server));
    zcert_destroy (&server);
    for (int i = 0; i < 4; i++) {
        hh.cert [i] = zcert_new ();
        zcert_set_meta (hh.cert [i], "role", "%s", hh_roles [i]);
        snprintf (path, sizeof path, "%s/keys/%s", hh.dir, hh_names [i]);
        HH_CHECK (zcert_save (hh.cert [i], path) == 0, "cannot save a certificate");
        if (i != HH_STRANGER) {
            snprintf (path, sizeof path, "%s/allow/%s.cert", hh.dir, hh_names [i]);
            HH_CHECK (zcert_save_public (hh.cert [i], path) == 0, "cannot save a certificate");
        }
    }
}

//  Path of a key file under the test directory (static buffer per slot).
static inline const char *
hh_key_path (int who, bool secret)
{
    static char paths [4][2][400];
    snprintf (paths [who][secret], sizeof paths [who][secret], "%s/keys/%s%s", hh.dir,
              hh_names [who], secret? "_secret": "");
    return paths [who][secret];
}

//  True if droverd --help lists option.
static inline bool
hh_has_option (const char *droverd, const char *option)
{
    char command [600];
    snprintf (command, sizeof command, "'%s' --help 2>&1 | grep -q -- '%s '", droverd, option);
    return system (command) == 0;
}

//  Finds "text" in the log and copies the word after it into out.
static inline bool
hh_log_word_after (const char *text, char *out, size_t size)
{
    FILE *file = fopen (hh.log, "r");
    if (!file)
        return false;
    char line [2048];
    bool found = false;
    while (fgets (line, sizeof line, file)) {
        char *at = strstr (line, text);
        if (!at)
            continue;
        at += strlen (text);
        size_t n = strcspn (at, " \t\n\",");
        if (n >= size)
            n = size - 1;
        memcpy (out, at, n);
        out [n] = 0;
        found = true;
    }
    fclose (file);
    return found;
}

//  Starts droverd with CURVE, the allow-list and the given extra options
//  (a NULL-terminated list); fails the test if it does not come up.
static inline void
hh_start (const char *droverd, const char *const *extra)
{
    snprintf (hh.log, sizeof hh.log, "%s/broker.log", hh.dir);
    char cert [400], allow [400], data [400];
    snprintf (cert, sizeof cert, "%s_secret", hh.server_pub);
    snprintf (allow, sizeof allow, "%s/allow", hh.dir);
    snprintf (data, sizeof data, "%s/data", hh.dir);
    const char *argv [64];
    int argc = 0;
    argv [argc++] = droverd;
    argv [argc++] = "--producers";
    argv [argc++] = "tcp://127.0.0.1:0";
    argv [argc++] = "--workers";
    argv [argc++] = "tcp://127.0.0.1:0";
    argv [argc++] = "--state";
    argv [argc++] = "tcp://127.0.0.1:0";
    argv [argc++] = "--cert";
    argv [argc++] = cert;
    argv [argc++] = "--allow";
    argv [argc++] = allow;
    argv [argc++] = "--data-dir";
    argv [argc++] = data;
    bool metrics = hh_has_option (droverd, "--metrics");
    if (metrics) {
        argv [argc++] = "--metrics";
        argv [argc++] = "tcp://127.0.0.1:0";
    }
    for (int i = 0; extra && extra [i] && argc < 62; i++)
        argv [argc++] = extra [i];
    argv [argc] = NULL;
    fflush (NULL);
    pid_t pid = fork ();
    HH_CHECK (pid >= 0, "fork: %s", strerror (errno));
    if (pid == 0) {
        FILE *out = freopen (hh.log, "w", stdout);
        if (!out || dup2 (fileno (stdout), 2) < 0)
            _exit (127);
#ifdef HH_SANITIZED
        //  The attackers' leak suppressions are theirs: droverd is checked whole
        unsetenv ("LSAN_OPTIONS");
        if (!getenv ("ASAN_OPTIONS"))
            setenv ("ASAN_OPTIONS", "quarantine_size_mb=8:thread_local_quarantine_size_kb=64", 1);
#endif
        execv (droverd, (char *const *) argv);
        _exit (127);
    }
    hh.pid = pid;
    uint64_t end = hh_now_ms () + 15000;
    while (!hh_log_word_after ("serving clients on ", hh.producers, sizeof hh.producers)) {
        int status;
        HH_CHECK (waitpid (pid, &status, WNOHANG) == 0, "droverd exited at start");
        HH_CHECK (hh_now_ms () < end, "droverd did not start within 15 s");
        usleep (20000);
    }
    HH_CHECK (hh_log_word_after (" and workers on ", hh.workers, sizeof hh.workers),
              "no worker endpoint in the log");
    hh.metrics_port = 0;
    if (metrics) {
        //  Any log line that speaks of metrics (or HTTP) and names a bound
        //  loopback address gives the port; droverd logs it at start
        uint64_t until = hh_now_ms () + 3000;
        while (!hh.metrics_port && hh_now_ms () < until) {
            FILE *file = fopen (hh.log, "r");
            char line [2048];
            while (file && fgets (line, sizeof line, file)) {
                char *at = strstr (line, "127.0.0.1:");
                if (at && (strstr (line, "metrics") || strstr (line, "http")))
                    hh.metrics_port = atoi (at + 10);
            }
            if (file)
                fclose (file);
            if (!hh.metrics_port)
                usleep (50000);
        }
    }
}

//  The broker's resident memory in KiB, or -1.
static inline long
hh_rss_kib (void)
{
    char path [64], line [256];
    snprintf (path, sizeof path, "/proc/%d/status", (int) hh.pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    long kib = -1;
    while (fgets (line, sizeof line, file))
        if (strncmp (line, "VmRSS:", 6) == 0)
            kib = strtol (line + 6, NULL, 10);
    fclose (file);
    return kib;
}

//  The broker's CPU time (user + system) in seconds, or -1.
static inline double
hh_cpu_s (void)
{
    char path [64], text [2048];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) hh.pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    size_t n = fread (text, 1, sizeof text - 1, file);
    fclose (file);
    text [n] = 0;
    //  Fields after the command name (which may hold spaces): state is 3,
    //  utime 14, stime 15
    char *at = strrchr (text, ')');
    if (!at)
        return -1;
    unsigned long long utime = 0, stime = 0;
    if (sscanf (at + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                &utime, &stime) != 2)
        return -1;
    return (double) (utime + stime) / (double) sysconf (_SC_CLK_TCK);
}

static inline bool
hh_alive (void)
{
    int status;
    return hh.pid && waitpid (hh.pid, &status, WNOHANG) == 0;
}

//  Lines of the log containing text.
static inline int
hh_log_count (const char *text)
{
    FILE *file = fopen (hh.log, "r");
    if (!file)
        return -1;
    char line [4096];
    int count = 0;
    while (fgets (line, sizeof line, file))
        if (strstr (line, text))
            count++;
    fclose (file);
    return count;
}

//  A raw DEALER to endpoint using who's key (HH_STRANGER: a key the broker
//  does not know; -1: no CURVE at all), with small queues both ways so
//  that a peer that never reads holds little.
static inline void *
hh_dealer (void *ctx, const char *endpoint, int who, int hwm)
{
    void *socket = zmq_socket (ctx, ZMQ_DEALER);
    if (!socket)
        return NULL;
    int linger = 0, timeout = 0;
    zmq_setsockopt (socket, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (socket, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (socket, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt (socket, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    if (who >= 0) {
        zmq_setsockopt (socket, ZMQ_CURVE_SERVERKEY, hh.server_key, 41);
        zmq_setsockopt (socket, ZMQ_CURVE_PUBLICKEY, zcert_public_txt (hh.cert [who]), 41);
        zmq_setsockopt (socket, ZMQ_CURVE_SECRETKEY, zcert_secret_txt (hh.cert [who]), 41);
    }
    if (zmq_connect (socket, endpoint)) {
        zmq_close (socket);
        return NULL;
    }
    return socket;
}

#endif
