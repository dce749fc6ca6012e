/*  test_worker_e2e.c - drover-worker against a real broker.

    The broker actor runs in this process on 127.0.0.1 with ports the OS
    picks (plaintext: CURVE is covered by the SDK and broker tests); the
    real drover-worker binary runs as child processes; jobs go in through
    the SDK client. Covers the --exec handler (result, failure text,
    timeout, cancel, environment, several queues), the --plugin handler,
    restart after a crashing handler, and draining on SIGTERM and on a
    terminal's SIGINT to the whole process group.

    usage: test_worker_e2e DROVER_WORKER EXAMPLE_PLUGIN
*/
#define _GNU_SOURCE
#include "broker.h"
#include "drover.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond) do { if (!(cond)) { \
    fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    s_cleanup (); fflush (NULL); _exit (1); } } while (0)

static const char *s_worker_bin;
static const char *s_plugin;
static char *s_producers;
static char *s_workers;
static drover_client_t *s_client;
//  Broker arguments put before each worker's own (plaintext by default).
static const char *s_broker_args [8];
static pid_t s_children [8];
static int s_child_count;

static void
s_cleanup (void)
{
    for (int i = 0; i < s_child_count; i++)
        if (s_children [i] > 0)
            kill (-s_children [i], SIGKILL);
}

static uint64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

//  Starts drover-worker with the given arguments (NULL-ended) after the
//  broker ones, in its own process group, as a terminal would.
static pid_t
s_start_worker (const char *first, ...)
{
    const char *argv [32] = {s_worker_bin, "--log-level", "warn"};
    int argc = 3;
    for (int i = 0; s_broker_args [i]; i++)
        argv [argc++] = s_broker_args [i];
    va_list args;
    va_start (args, first);
    for (const char *arg = first; arg && argc < 31; arg = va_arg (args, const char *))
        argv [argc++] = arg;
    va_end (args);
    argv [argc] = NULL;
    pid_t pid = fork ();
    CHECK (pid >= 0);
    if (pid == 0) {
        setpgid (0, 0);
        execv (s_worker_bin, (char **) argv);
        perror ("execv");
        _exit (127);
    }
    setpgid (pid, pid);
    s_children [s_child_count++] = pid;
    return pid;
}

//  Waits up to ms for a worker's exit status; -1 if still running.
static int
s_join (pid_t pid, int ms)
{
    uint64_t until = s_now_ms () + (uint64_t) ms;
    do {
        int status;
        if (waitpid (pid, &status, WNOHANG) == pid) {
            for (int i = 0; i < s_child_count; i++)
                if (s_children [i] == pid)
                    s_children [i] = 0;
            return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
        }
        usleep (20 * 1000);
    } while (s_now_ms () < until);
    return -1;
}

static drover_future_t *
s_submit (const char *queue, const char *data, size_t size, uint32_t timeout_ms,
          uint32_t attempts)
{
    drover_job_opts_t opts = DROVER_JOB_OPTS_INIT;
    opts.timeout_ms = timeout_ms;
    opts.max_attempts = attempts;
    opts.backoff_ms = 50;
    drover_future_t *future = NULL;
    CHECK (drover_submit (s_client, queue, data, size, &opts, &future) == 0);
    return future;
}

//  Runs one job to its end; returns its wait status and keeps the future.
static int
s_run (drover_future_t *future, int ms)
{
    return drover_future_wait (future, ms);
}

static bool
s_result_is (drover_future_t *future, const char *expected)
{
    size_t size;
    const char *result = drover_future_result (future, &size);
    bool same = result && size == strlen (expected) && memcmp (result, expected, size) == 0;
    if (!same)
        fprintf (stderr, "result '%.*s', wanted '%s'\n", result ? (int) size : 6,
                 result ? result : "(none)", expected);
    return same;
}

//  One --exec worker serving four queues, the command picking by queue.
static void
test_exec (void)
{
    pid_t worker = s_start_worker (
        "-q", "up", "-q", "fail", "-q", "sleep", "-q", "env",
        "--processes", "1", "--concurrency", "1", "--exec",
        "case \"$DROVER_QUEUE\" in "
        "up) tr a-z A-Z ;; "
        "fail) cat >/dev/null; echo 'first line' >&2; echo '  oops  ' >&2; exit 4 ;; "
        "sleep) sleep 30 ;; "
        "env) echo \"$DROVER_QUEUE $DROVER_ATTEMPT ${#DROVER_JOB_ID}\" ;; "
        "esac", NULL);

    drover_future_t *future = s_submit ("up", "hello", 5, 0, 0);
    CHECK (s_run (future, 10000) == 0);
    CHECK (s_result_is (future, "HELLO"));
    drover_future_destroy (&future);

    //  A large payload both ways.
    size_t size = 1024 * 1024;
    char *big = malloc (size + 1);
    CHECK (big);
    for (size_t i = 0; i < size; i++)
        big [i] = (char) ('a' + i % 26);
    big [size] = 0;
    future = s_submit ("up", big, size, 0, 0);
    CHECK (s_run (future, 10000) == 0);
    size_t got_size;
    const char *got = drover_future_result (future, &got_size);
    CHECK (got && got_size == size);
    CHECK (got [0] == 'A' && got [size - 1] == (char) ('A' + (size - 1) % 26));
    drover_future_destroy (&future);
    free (big);

    future = s_submit ("env", NULL, 0, 0, 0);
    CHECK (s_run (future, 10000) == 0);
    CHECK (s_result_is (future, "env 1 32\n"));
    drover_future_destroy (&future);

    //  Non-zero exit: the job fails with the status and stderr.
    future = s_submit ("fail", "x", 1, 0, 2);
    CHECK (s_run (future, 10000) == DROVER_EFAILED);
    const char *error = drover_future_error (future);
    CHECK (error);
    CHECK (strstr (error, "exit status 4: first line\n  oops") || (fprintf (stderr, "%s\n", error), 0));
    CHECK (drover_future_attempts (future) == 2);
    drover_future_destroy (&future);

    //  A command past its job's timeout is killed; the job fails.
    uint64_t start = s_now_ms ();
    future = s_submit ("sleep", NULL, 0, 300, 1);
    CHECK (s_run (future, 20000) == DROVER_EFAILED);
    CHECK (s_now_ms () - start < 10000);     //  killed at its timeout, not after 30 s
    drover_future_destroy (&future);

    //  A cancelled job's command is killed, freeing the only handler
    //  thread for the next job.
    future = s_submit ("sleep", NULL, 0, 0, 1);
    drover_job_info_t info;
    start = s_now_ms ();
    do {
        usleep (50 * 1000);
        CHECK (drover_status (s_client, drover_future_id (future), &info, 2000) == 0);
    } while (info.state != DROVER_JOB_RUNNING && s_now_ms () - start < 5000);
    CHECK (info.state == DROVER_JOB_RUNNING);
    int rc = drover_cancel (s_client, drover_future_id (future), 2000);
    if (rc)
        fprintf (stderr, "cancel: %s\n", drover_strerror (rc));
    CHECK (rc == 0);
    drover_future_destroy (&future);
    start = s_now_ms ();
    future = s_submit ("up", "after", 5, 0, 0);
    CHECK (s_run (future, 20000) == 0);
    CHECK (s_result_is (future, "AFTER"));
    CHECK (s_now_ms () - start < 10000);     //  not after the 30 s sleep
    drover_future_destroy (&future);

    kill (worker, SIGTERM);
    CHECK (s_join (worker, 10000) == 0);
}

static void
test_plugin (void)
{
    char spec [1024];
    snprintf (spec, sizeof spec, "%s:upper", s_plugin);
    pid_t worker = s_start_worker ("-q", "p_upper", "--processes", "2",
                                   "--plugin", spec, NULL);
    drover_future_t *futures [20];
    for (int i = 0; i < 20; i++)
        futures [i] = s_submit ("p_upper", "abc", 3, 0, 0);
    for (int i = 0; i < 20; i++) {
        CHECK (s_run (futures [i], 10000) == 0);
        CHECK (s_result_is (futures [i], "ABC"));
        drover_future_destroy (&futures [i]);
    }
    kill (worker, SIGTERM);
    CHECK (s_join (worker, 10000) == 0);
}

//  A handler that crashes takes its process down; the supervisor starts
//  another, the job fails after its attempts, and the worker serves on.
static void
test_crash (void)
{
    char spec [1024];
    snprintf (spec, sizeof spec, "%s:crash", s_plugin);
    pid_t worker = s_start_worker ("-q", "p_crash", "--processes", "1",
                                   "--plugin", spec, NULL);
    drover_future_t *future = s_submit ("p_crash", "x", 1, 0, 2);
    CHECK (s_run (future, 15000) == DROVER_EFAILED);
    CHECK (drover_future_attempts (future) == 2);
    drover_future_destroy (&future);
    CHECK (s_join (worker, 0) == -1);      //  the supervisor is still there
    kill (worker, SIGTERM);
    CHECK (s_join (worker, 10000) == 0);
}

//  SIGTERM to the supervisor: running jobs finish and report; queued ones
//  stay queued; everything exits 0.
static void
test_drain_sigterm (void)
{
    char spec [1024];
    snprintf (spec, sizeof spec, "%s:sleep", s_plugin);
    pid_t worker = s_start_worker ("-q", "p_sleep", "--processes", "1",
                                   "--concurrency", "2", "--prefetch", "1",
                                   "--plugin", spec, NULL);
    drover_future_t *first = s_submit ("p_sleep", "1", 1, 0, 1);
    drover_future_t *second = s_submit ("p_sleep", "1", 1, 0, 1);
    drover_job_info_t info;
    uint64_t start = s_now_ms ();
    do {
        usleep (50 * 1000);
        CHECK (drover_status (s_client, drover_future_id (second), &info, 2000) == 0);
    } while (info.state != DROVER_JOB_RUNNING && s_now_ms () - start < 5000);
    CHECK (info.state == DROVER_JOB_RUNNING);
    kill (worker, SIGTERM);
    //  The late job goes out once the broker knows the worker is draining
    //  (it has credit left for one more job until then)
    bool draining = false;
    start = s_now_ms ();
    while (!draining && s_now_ms () - start < 10000) {
        drover_stats_t *stats = NULL;
        CHECK (drover_stats (s_client, &stats, 2000) == 0);
        bool listed = false;
        for (size_t i = 0; i < stats->peer_count; i++) {
            const drover_peer_info_t *peer = &stats->peers [i];
            for (size_t q = 0; peer->kind == DROVER_PEER_WORKER && q < peer->queue_count; q++)
                if (strcmp (peer->queues [q], "p_sleep") == 0) {
                    listed = true;
                    draining = peer->credit == 0;
                }
        }
        drover_stats_destroy (&stats);
        if (!listed)
            draining = true;    //  gone already: it takes no job either
        if (!draining)
            usleep (20 * 1000);
    }
    CHECK (draining);
    drover_future_t *late = s_submit ("p_sleep", "0", 1, 0, 1);
    CHECK (s_run (first, 10000) == 0);
    CHECK (s_result_is (first, "slept 1"));
    CHECK (s_run (second, 10000) == 0);
    CHECK (s_join (worker, 10000) == 0);
    //  Nobody serves p_sleep any more: the late job waits for a worker.
    CHECK (drover_status (s_client, drover_future_id (late), &info, 2000) == 0);
    CHECK (info.state == DROVER_JOB_QUEUED);
    CHECK (drover_cancel (s_client, drover_future_id (late), 2000) == 0);
    drover_future_destroy (&first);
    drover_future_destroy (&second);
    drover_future_destroy (&late);
}

//  Ctrl-C in a terminal signals the whole foreground group: the exec'd
//  command (in a group of its own) must survive it and its job finish.
static void
test_drain_sigint_group (void)
{
    pid_t worker = s_start_worker ("-q", "slow", "--processes", "2",
                                   "--exec", "sleep 1; echo done", NULL);
    drover_future_t *future = s_submit ("slow", NULL, 0, 0, 1);
    drover_job_info_t info;
    uint64_t start = s_now_ms ();
    do {
        usleep (50 * 1000);
        CHECK (drover_status (s_client, drover_future_id (future), &info, 2000) == 0);
    } while (info.state != DROVER_JOB_RUNNING && s_now_ms () - start < 5000);
    CHECK (info.state == DROVER_JOB_RUNNING);
    kill (-worker, SIGINT);
    CHECK (s_run (future, 10000) == 0);
    CHECK (s_result_is (future, "done\n"));
    CHECK (s_join (worker, 10000) == 0);
    drover_future_destroy (&future);
}

//  Writes a certificate pair at dir/name (public) and dir/name_secret, with
//  the role in its metadata; with allow, also its public half into dir/allow.
static void
s_make_cert (const char *dir, const char *name, const char *role, bool allow)
{
    zcert_t *cert = zcert_new ();
    CHECK (cert);
    zcert_set_meta (cert, "role", "%s", role);
    char path [512];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    CHECK (zcert_save (cert, path) == 0);
    if (allow) {
        snprintf (path, sizeof path, "%s/allow/%s", dir, name);
        CHECK (zcert_save_public (cert, path) == 0);
    }
    zcert_destroy (&cert);
}

//  The default: CURVE with keys from files. A worker whose key is allowed
//  serves; one whose key is not gives up with status 3 and says why.
static void
test_curve (void)
{
    char dir [] = "/tmp/drover-test-worker-e2e-XXXXXX";
    CHECK (mkdtemp (dir));
    char path [512];
    snprintf (path, sizeof path, "%s/allow", dir);
    CHECK (zsys_dir_create ("%s", path) == 0);
    s_make_cert (dir, "server", "broker", false);
    s_make_cert (dir, "client", "producer", true);
    s_make_cert (dir, "worker", "worker", true);
    s_make_cert (dir, "stranger", "worker", false);

    char server_secret [512], server_public [512], client_secret [512];
    char worker_secret [512], stranger_secret [512];
    snprintf (server_secret, sizeof server_secret, "%s/server_secret", dir);
    snprintf (server_public, sizeof server_public, "%s/server", dir);
    snprintf (client_secret, sizeof client_secret, "%s/client_secret", dir);
    snprintf (worker_secret, sizeof worker_secret, "%s/worker_secret", dir);
    snprintf (stranger_secret, sizeof stranger_secret, "%s/stranger_secret", dir);

    broker_config_t config;
    broker_config_defaults (&config);
    config.producers = "tcp://127.0.0.1:*";
    config.workers = "tcp://127.0.0.1:*";
    config.cert = server_secret;
    config.allow = path;
    config.data_dir = dir;
    config.heartbeat_ms = 200;
    zactor_t *broker = broker_start (&config);
    CHECK (broker);
    char *producers, *workers;
    CHECK (broker_endpoints (broker, &producers, &workers) == 0);
    drover_connect_t cfg = {.endpoint = producers, .server_key = server_public,
                            .cert = client_secret};
    drover_client_t *client = NULL;
    CHECK (drover_client_connect (&cfg, &client) == 0);

    s_broker_args [0] = "--broker";
    s_broker_args [1] = workers;
    s_broker_args [2] = "--server-key";
    s_broker_args [3] = server_public;
    s_broker_args [4] = "--cert";
    s_broker_args [5] = worker_secret;
    s_broker_args [6] = NULL;
    char spec [1024];
    snprintf (spec, sizeof spec, "%s:upper", s_plugin);
    pid_t worker = s_start_worker ("-q", "secure", "--processes", "2",
                                   "--plugin", spec, NULL);
    drover_job_opts_t opts = DROVER_JOB_OPTS_INIT;
    drover_future_t *future = NULL;
    CHECK (drover_submit (client, "secure", "psst", 4, &opts, &future) == 0);
    CHECK (drover_future_wait (future, 10000) == 0);
    CHECK (s_result_is (future, "PSST"));
    drover_future_destroy (&future);
    kill (worker, SIGTERM);
    CHECK (s_join (worker, 10000) == 0);

    //  Not in the allow list: refused, status 3, no restart loop.
    s_broker_args [5] = stranger_secret;
    uint64_t start = s_now_ms ();
    worker = s_start_worker ("-q", "secure", "--processes", "2", "--plugin", spec, NULL);
    CHECK (s_join (worker, 15000) == 3);
    CHECK (s_now_ms () - start < 12000);

    drover_client_destroy (&client);
    zactor_destroy (&broker);
    zstr_free (&producers);
    zstr_free (&workers);
    char cmd [600];
    snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
    if (system (cmd)) {}
}

int
main (int argc, char *argv [])
{
    if (argc != 3) {
        fprintf (stderr, "usage: test_worker_e2e DROVER_WORKER EXAMPLE_PLUGIN\n");
        return 2;
    }
    s_worker_bin = argv [1];
    s_plugin = argv [2];
    alarm (120);
    zsys_init ();
    broker_config_t config;
    broker_config_defaults (&config);
    config.producers = "tcp://127.0.0.1:*";
    config.workers = "tcp://127.0.0.1:*";
    config.insecure = true;
    config.heartbeat_ms = 200;
    config.default_backoff_ms = 50;
    zactor_t *broker = broker_start (&config);
    CHECK (broker);
    CHECK (broker_endpoints (broker, &s_producers, &s_workers) == 0);

    s_broker_args [0] = "--insecure";
    s_broker_args [1] = "--broker";
    s_broker_args [2] = s_workers;
    drover_connect_t cfg = {.endpoint = s_producers, .insecure = true};
    CHECK (drover_client_connect (&cfg, &s_client) == 0);

    struct { const char *name; void (*fn) (void); } cases [] = {
        {"exec", test_exec},
        {"plugin", test_plugin},
        {"crash", test_crash},
        {"drain_sigterm", test_drain_sigterm},
        {"drain_sigint_group", test_drain_sigint_group},
        {"curve", test_curve},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        uint64_t start = s_now_ms ();
        cases [i].fn ();
        printf ("%-24s ok (%llu ms)\n", cases [i].name,
                (unsigned long long) (s_now_ms () - start));
        fflush (stdout);
    }
    drover_client_destroy (&s_client);
    zactor_destroy (&broker);
    zstr_free (&s_producers);
    zstr_free (&s_workers);
    return 0;
}
