/*  floods.c - a real droverd under floods of connections it must refuse.

        floods DROVERD

    Starts droverd with CURVE and an allow-list, and an honest SDK worker
    and client that keep doing work in rounds (50 jobs, a Stats request,
    a shared-state write). First a quiet phase measures what the honest
    work costs the broker; then, while the honest rounds go on, three
    floods run in parallel against every port the broker has open:

    - CURVE connections with a key that is not in the allow-list, each
      sending a Hello;
    - connections with no security at all (ZMTP NULL), each sending a Hello;
    - raw TCP connections writing random bytes (also a ZMTP greeting with
      an unknown mechanism, and on the HTTP metrics port, when droverd has
      one, broken requests) and hanging up.

    Checks: every honest round completes with the right results, and each
    takes no more than a few seconds; the broker logs refusals at a bounded
    rate (not a line per bad connection); the broker's CPU time per bad
    connection is small; its memory stays bounded; it answers Stats at the
    end and stops cleanly. The figures are printed.
*/
#include "harness.h"
#include "codec.h"
#include "util.h"
#include "drover.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#define ROUND_JOBS      50
#define QUIET_MS        4000
#define FLOOD_MS        8000
#define ROUND_LIMIT_MS  5000        //  an honest round may take this long at most
#define CPU_PER_BAD_MS  5.0         //  broker CPU per refused connection, at most

static atomic_bool s_flooding;
static atomic_bool s_stop;
static atomic_ulong s_wrong_key;    //  CURVE connections with an unknown key
static atomic_ulong s_no_curve;     //  connections without CURVE
static atomic_ulong s_garbage;      //  raw TCP connections sending noise
static atomic_ulong s_http;         //  broken HTTP requests to the metrics port

static int s_ports [8];             //  every TCP port droverd listens on
static int s_port_count;
static int s_state_port;

static int
s_port_of (const char *endpoint)
{
    const char *colon = strrchr (endpoint, ':');
    return colon? atoi (colon + 1): 0;
}

//  Floods ------------------------------------------------------------------

static void
s_hello_frame (zmq_msg_t *frame, drv_codec_t *codec, bool worker)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_HELLO, 1);
    msg.hello.kind = worker? DRV_PEER_WORKER: DRV_PEER_CLIENT;
    drv_random_id (msg.hello.session);
    msg.hello.name = "flood";
    const char *queues [1] = {"honest"};
    msg.hello.queues = queues;
    msg.hello.queue_count = 1;
    msg.hello.credit = 100;
    if (drv_codec_encode (codec, &msg, frame)) {
        fprintf (stderr, "cannot encode Hello\n");
        exit (1);
    }
    drv_codec_reset (codec);
}

//  Batches of ZeroMQ connections that the broker must refuse: who is
//  HH_STRANGER (CURVE, unknown key) or -1 (no CURVE). Each socket tries
//  once (no reconnection), says Hello, and is closed 50 ms later.
static void *
s_zmq_flood (void *arg)
{
    int who = (int) (intptr_t) arg;
    atomic_ulong *counter = who < 0? &s_no_curve: &s_wrong_key;
    void *ctx = zmq_ctx_new ();
    drv_codec_t *codec = drv_codec_new ();
    void *sockets [16];
    while (!atomic_load (&s_stop)) {
        if (!atomic_load (&s_flooding)) {
            usleep (10000);
            continue;
        }
        for (int i = 0; i < 16; i++) {
            bool worker = i % 2;
            sockets [i] = hh_dealer (ctx, worker? hh.workers: hh.producers, who, 10);
            HH_CHECK (sockets [i], "cannot create a socket");
            int never = -1;
            zmq_setsockopt (sockets [i], ZMQ_RECONNECT_IVL, &never, sizeof never);
            zmq_msg_t hello;
            s_hello_frame (&hello, codec, worker);
            if (zmq_msg_send (&hello, sockets [i], ZMQ_DONTWAIT) < 0)
                zmq_msg_close (&hello);
            atomic_fetch_add (counter, 1);
        }
        usleep (50000);
        for (int i = 0; i < 16; i++)
            zmq_close (sockets [i]);
    }
    drv_codec_destroy (&codec);
    zmq_ctx_term (ctx);
    return NULL;
}

static int
s_tcp_connect (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr;
    memset (&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons ((uint16_t) port);
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    struct timeval tv = {1, 0};
    setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect (fd, (struct sockaddr *) &addr, sizeof addr)) {
        close (fd);
        return -1;
    }
    return fd;
}

//  Raw TCP: random bytes, or a ZMTP greeting naming a mechanism nobody
//  speaks, or (metrics port) broken HTTP; then hang up.
static void *
s_tcp_flood (void *arg)
{
    uint64_t rng = 0x2545f4914f6cdd1dULL;
    static uint8_t noise [4096];
    unsigned turn = 0;
    while (!atomic_load (&s_stop)) {
        if (!atomic_load (&s_flooding)) {
            usleep (10000);
            continue;
        }
        for (size_t i = 0; i < sizeof noise; i++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            noise [i] = (uint8_t) rng;
        }
        int port = s_ports [turn++ % (unsigned) s_port_count];
        int fd = s_tcp_connect (port);
        if (fd < 0) {
            usleep (1000);
            continue;
        }
        bool http = port == hh.metrics_port;
        ssize_t rc;
        if (http) {
            static const char *requests [] = {
                "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ",         //  never ends
                "POST /metrics HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nxx",
                "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",        //  TLS hello
                "GET /../../../../etc/passwd HTTP/1.0\r\n\r\n",
            };
            const char *request = requests [turn % 4];
            rc = send (fd, request, strlen (request), MSG_NOSIGNAL);
            rc = send (fd, noise, sizeof noise, MSG_NOSIGNAL);
            atomic_fetch_add (&s_http, 1);
        }
        else
        if (turn % 3 == 0) {
            //  ZMTP 3 greeting: signature, version 3.0, mechanism "EVIL"
            uint8_t greeting [64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0, 'E', 'V', 'I', 'L'};
            rc = send (fd, greeting, sizeof greeting, MSG_NOSIGNAL);
            rc = send (fd, noise, 512, MSG_NOSIGNAL);
        }
        else
            rc = send (fd, noise, 1 + rng % sizeof noise, MSG_NOSIGNAL);
        (void) rc;
        close (fd);
        atomic_fetch_add (&s_garbage, 1);
        usleep (2000);
    }
    return NULL;
}

//  A whole HTTP request on the metrics port; returns the status code, or
//  -1 when nothing valid arrives within timeout_ms.
static int
s_http_status (const char *path, int timeout_ms)
{
    int fd = s_tcp_connect (hh.metrics_port);
    if (fd < 0)
        return -1;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char request [256];
    int n = snprintf (request, sizeof request,
                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    int status = -1;
    char reply [64];
    if (send (fd, request, (size_t) n, MSG_NOSIGNAL) == n) {
        ssize_t got = recv (fd, reply, sizeof reply - 1, MSG_WAITALL);
        if (got > 12) {
            reply [got] = 0;
            if (strncmp (reply, "HTTP/1.", 7) == 0)
                status = atoi (reply + 9);
        }
    }
    close (fd);
    return status;
}

//  A counter from /metrics ("name value" line), or -1.
static double
s_metric (const char *name)
{
    int fd = s_tcp_connect (hh.metrics_port);
    if (fd < 0)
        return -1;
    struct timeval tv = {5, 0};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    static const char request [] =
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    static char body [1 << 20];
    size_t size = 0;
    if (send (fd, request, sizeof request - 1, MSG_NOSIGNAL) == (ssize_t) sizeof request - 1) {
        ssize_t got;
        while (size < sizeof body - 1
               && (got = recv (fd, body + size, sizeof body - 1 - size, 0)) > 0)
            size += (size_t) got;
    }
    close (fd);
    body [size] = 0;
    char pattern [128];
    snprintf (pattern, sizeof pattern, "\n%s ", name);
    const char *at = strstr (body, pattern);
    return at? atof (at + strlen (pattern)): -1;
}

//  Honest peers ---------------------------------------------------------------

static int
s_handler (drover_job_t *job, void *arg)
{
    size_t size;
    const char *data = (const char *) drover_job_payload (job, &size);
    char result [64];
    int n = snprintf (result, sizeof result, "ok:%.*s", (int) size, data);
    return drover_job_set_result (job, result, (size_t) n);
}

static void *
s_worker_thread (void *arg)
{
    int rc = drover_worker_run ((drover_worker_t *) arg);
    if (rc)
        fprintf (stderr, "honest worker: %s\n", drover_strerror (rc));
    return NULL;
}

typedef struct {
    int rounds;                 //  rounds done
    uint64_t max_ms;            //  slowest round
    uint64_t total_ms;          //  all rounds
    uint64_t stats_max_ms;      //  slowest Stats answer
} rounds_t;

//  Honest rounds for duration ms: 50 jobs, Stats, a state write.
static void
s_honest (drover_client_t *client, uint64_t duration, rounds_t *out)
{
    static int serial;
    memset (out, 0, sizeof *out);
    uint64_t end = hh_now_ms () + duration;
    while (hh_now_ms () < end) {
        uint64_t start = hh_now_ms ();
        char payloads [ROUND_JOBS][24];
        const void *data [ROUND_JOBS];
        size_t sizes [ROUND_JOBS];
        drover_future_t *futures [ROUND_JOBS];
        for (int i = 0; i < ROUND_JOBS; i++) {
            snprintf (payloads [i], sizeof payloads [i], "j%d", serial++);
            data [i] = payloads [i];
            sizes [i] = strlen (payloads [i]);
        }
        int rc = drover_submit_many (client, "honest", data, sizes, ROUND_JOBS, NULL, futures);
        HH_CHECK (rc == 0, "honest submit: %s", drover_strerror (rc));
        for (int i = 0; i < ROUND_JOBS; i++) {
            rc = drover_future_wait (futures [i], 30000);
            HH_CHECK (rc == 0, "honest job: %s", drover_strerror (rc));
            size_t size;
            const char *result = (const char *) drover_future_result (futures [i], &size);
            char expected [32];
            int n = snprintf (expected, sizeof expected, "ok:%s", payloads [i]);
            HH_CHECK (result && size == (size_t) n && memcmp (result, expected, size) == 0,
                      "honest job: wrong result");
            drover_future_destroy (&futures [i]);
        }
        uint64_t stats_start = hh_now_ms ();
        drover_stats_t *stats = NULL;
        rc = drover_stats (client, &stats, 30000);
        HH_CHECK (rc == 0, "honest Stats: %s", drover_strerror (rc));
        drover_stats_destroy (&stats);
        uint64_t stats_ms = hh_now_ms () - stats_start;
        rc = drover_state_set (client, "honest", "round", "x", 1, NULL, 30000);
        HH_CHECK (rc == 0, "honest state write: %s", drover_strerror (rc));
        uint64_t took = hh_now_ms () - start;
        HH_CHECK (took <= ROUND_LIMIT_MS, "an honest round took %llu ms",
                  (unsigned long long) took);
        out->rounds++;
        out->total_ms += took;
        out->max_ms = took > out->max_ms? took: out->max_ms;
        out->stats_max_ms = stats_ms > out->stats_max_ms? stats_ms: out->stats_max_ms;
        usleep (50000);         //  the same pace in both phases
    }
}

int
main (int argc, char *argv [])
{
    if (argc != 2) {
        fprintf (stderr, "usage: floods DROVERD\n");
        return 2;
    }
    uint64_t test_start = hh_now_ms ();
    hh_setup ();
    hh_start (argv [1], NULL);
    char state [256] = "";
    if (hh_log_word_after ("publishing state updates on ", state, sizeof state))
        s_state_port = s_port_of (state);
    s_ports [s_port_count++] = s_port_of (hh.producers);
    s_ports [s_port_count++] = s_port_of (hh.workers);
    if (s_state_port)
        s_ports [s_port_count++] = s_state_port;
    if (hh.metrics_port)
        s_ports [s_port_count++] = hh.metrics_port;
    else
        printf ("SKIP (metrics port): this droverd serves no HTTP metrics endpoint (no "
                "--metrics option, or none bound in its log); the HTTP flood is not run, "
                "the other floods are\n");
    printf ("droverd %d: clients %s, workers %s, state port %d, metrics port %d\n",
            (int) hh.pid, hh.producers, hh.workers, s_state_port, hh.metrics_port);

    drover_connect_t wcfg = {0};
    wcfg.endpoint = hh.workers;
    wcfg.server_key = hh.server_pub;
    wcfg.cert = hh_key_path (HH_WORKER, true);
    wcfg.name = "honest-worker";
    drover_worker_t *worker = drover_worker_new (&wcfg);
    HH_CHECK (worker && drover_worker_handle (worker, "honest", s_handler, NULL) == 0,
              "cannot create the honest worker");
    drover_worker_set_concurrency (worker, 2);
    pthread_t worker_thread;
    pthread_create (&worker_thread, NULL, s_worker_thread, worker);
    drover_connect_t ccfg = {0};
    ccfg.endpoint = hh.producers;
    ccfg.server_key = hh.server_pub;
    ccfg.cert = hh_key_path (HH_PRODUCER, true);
    ccfg.name = "honest-client";
    drover_client_t *client = NULL;
    int rc = drover_client_connect (&ccfg, &client);
    HH_CHECK (rc == 0, "honest client cannot connect: %s", drover_strerror (rc));

    pthread_t floods [3];
    pthread_create (&floods [0], NULL, s_zmq_flood, (void *) (intptr_t) HH_STRANGER);
    pthread_create (&floods [1], NULL, s_zmq_flood, (void *) (intptr_t) -1);
    pthread_create (&floods [2], NULL, s_tcp_flood, NULL);

    //  Quiet phase: what the honest rounds cost the broker alone
    rounds_t quiet, flooded;
    s_honest (client, 500, &quiet);             //  warm up
    double cpu0 = hh_cpu_s ();
    s_honest (client, QUIET_MS, &quiet);
    double cpu1 = hh_cpu_s ();
    long rss_before = hh_rss_kib ();
    int log_before = hh_log_count ("");

    //  Connections to the metrics port that send half a request and wait,
    //  held open through the floods
    int idle [200];
    int idle_count = 0;
    int health_before = -1;
    if (hh.metrics_port) {
        health_before = s_http_status ("/healthz", 5000);
        for (int i = 0; i < 200; i++) {
            idle [idle_count] = s_tcp_connect (hh.metrics_port);
            if (idle [idle_count] < 0)
                break;
            static const char partial [] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n";
            if (send (idle [idle_count], partial, sizeof partial - 1, MSG_NOSIGNAL) < 0)
                close (idle [idle_count]);
            else
                idle_count++;
        }
    }

    //  Flood phase: the same rounds with the floods on
    atomic_store (&s_flooding, true);
    uint64_t flood_start = hh_now_ms ();
    s_honest (client, FLOOD_MS, &flooded);
    atomic_store (&s_flooding, false);
    atomic_store (&s_stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join (floods [i], NULL);
    double flood_s = (double) (hh_now_ms () - flood_start) / 1000.0;
    usleep (300000);            //  the last refusals reach the log
    double cpu2 = hh_cpu_s ();
    long rss_after = hh_rss_kib ();
    HH_CHECK (hh_alive (), "droverd died under the floods");

    //  The metrics endpoint answers beside the idle connections
    int health_after = -1, metrics_after = -1;
    double refused_metric = -1;
    if (hh.metrics_port) {
        health_after = s_http_status ("/healthz", 5000);
        metrics_after = s_http_status ("/metrics", 5000);
        refused_metric = s_metric ("drover_auth_refused_total");
        for (int i = 0; i < idle_count; i++)
            close (idle [i]);
    }

    //  Still serving
    rounds_t after;
    s_honest (client, 200, &after);
    HH_CHECK (after.rounds >= 1, "no honest round after the floods");
    drover_client_destroy (&client);
    drover_worker_stop (worker);
    pthread_join (worker_thread, NULL);
    drover_worker_destroy (&worker);

    //  Log lines written during the floods, and those about refusals
    int log_lines = hh_log_count ("") - log_before;
    int auth_lines = hh_log_count ("refused");
    unsigned long bad = atomic_load (&s_wrong_key) + atomic_load (&s_no_curve)
                      + atomic_load (&s_garbage);
    double quiet_rate = (cpu1 - cpu0) / ((double) QUIET_MS / 1000.0);
    double extra_cpu = (cpu2 - cpu1) - quiet_rate * flood_s;
    double per_bad_ms = bad? 1000.0 * (extra_cpu > 0? extra_cpu: 0) / (double) bad: 0;
    int status = hh_stop ();

    printf ("bad connections: %lu with an unknown key, %lu without CURVE, %lu raw TCP "
            "(%lu of them HTTP) in %.1f s\n", atomic_load (&s_wrong_key),
            atomic_load (&s_no_curve), atomic_load (&s_garbage), atomic_load (&s_http), flood_s);
    printf ("honest rounds of %d jobs: quiet %d (mean %llu ms, max %llu ms), under floods %d "
            "(mean %llu ms, max %llu ms); Stats max %llu ms quiet, %llu ms flooded\n",
            ROUND_JOBS, quiet.rounds,
            (unsigned long long) (quiet.rounds? quiet.total_ms / (uint64_t) quiet.rounds: 0),
            (unsigned long long) quiet.max_ms, flooded.rounds,
            (unsigned long long) (flooded.rounds? flooded.total_ms / (uint64_t) flooded.rounds: 0),
            (unsigned long long) flooded.max_ms, (unsigned long long) quiet.stats_max_ms,
            (unsigned long long) flooded.stats_max_ms);
    printf ("broker CPU: %.2f s/s quiet, %.2f s during %.1f s of floods: %.3f ms per bad "
            "connection beyond the honest work\n", quiet_rate, cpu2 - cpu1, flood_s, per_bad_ms);
    printf ("broker log: %d lines during the floods, %d lines about refusals in all; "
            "RSS %ld KiB before, %ld KiB after\n", log_lines, auth_lines, rss_before, rss_after);

    if (hh.metrics_port) {
        printf ("metrics port: /healthz %d before; with %d half-sent requests held open "
                "through the floods, /healthz %d and /metrics %d after\n",
                health_before, idle_count, health_after, metrics_after);
        HH_CHECK (health_after == health_before && metrics_after == 200,
                  "the metrics endpoint stopped answering (healthz %d, metrics %d)",
                  health_after, metrics_after);
        //  Each unknown key that finished its handshake was counted (some
        //  are closed before they get that far)
        printf ("drover_auth_refused_total %.0f for %lu connections with an unknown key\n",
                refused_metric, atomic_load (&s_wrong_key));
        if (refused_metric >= 0)
            HH_CHECK (refused_metric >= 0.25 * (double) atomic_load (&s_wrong_key)
                      && refused_metric <= (double) atomic_load (&s_wrong_key)
                                           + (double) atomic_load (&s_no_curve),
                      "drover_auth_refused_total is %.0f", refused_metric);
    }
    HH_CHECK (flooded.rounds >= 3, "only %d honest rounds under the floods", flooded.rounds);
    HH_CHECK (bad >= 500, "the floods made only %lu connections", bad);
    HH_CHECK (per_bad_ms <= CPU_PER_BAD_MS, "%.3f ms of broker CPU per bad connection", per_bad_ms);
    HH_CHECK (rss_after < 200 * 1024 * HH_MEMORY_FACTOR, "droverd RSS %ld KiB after the floods", rss_after);
    HH_CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0,
              "droverd did not exit cleanly on SIGTERM (status %d)", status);
    //  Rate-limited logging: 20 warnings a second plus a summary line each
    //  second, with slack; never one line per bad connection
    double log_budget = 25.0 * flood_s + 20;
    HH_CHECK (log_lines <= log_budget && (unsigned long) log_lines < bad / 4,
              "%d log lines for %lu bad connections in %.1f s: refusals are not rate-limited",
              log_lines, bad, flood_s);
    printf ("floods: all checks passed in %.1f s\n", (double) (hh_now_ms () - test_start) / 1000.0);
    return 0;
}
