/*  demo.c - `drover demo`, a real parallel workload end to end, and the
    hidden `drover demo-worker` that serves it.

    The demo counts the primes below N twice: once serially in this process,
    and once as K range jobs on queue "primes", run by P worker processes
    through a broker that runs in this process. It checks that both counts
    agree and reports the wall times and the speed-up. Everything runs on
    127.0.0.1 with ports the OS picks and fresh keys in a temporary
    directory; everything it starts it stops, and it removes what it wrote.
*/
#include "common.h"

#include <czmq.h>
#include <errno.h>
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEMO_QUEUE "primes"
//  Trial division makes 20 million take about 4.5 s on one core of the
//  reference machine: long enough that spreading it is worth it, short
//  enough to watch.
#define DEFAULT_N           20000000
#define DEFAULT_CHUNKS      64
#define DEFAULT_TIMEOUT_MS  600000
//  The payload's numbers fit trial division with 32-bit arithmetic.
#define MAX_N               4294967296ULL

//  Primes ---------------------------------------------------------------------

//  Counts the primes p with lo <= p < hi, hi <= MAX_N, by trial division by
//  odd numbers: deliberately plain (deterministic and easy to trust, and
//  slow enough to be worth spreading). When job is given, gives up once the
//  broker cancels it. Returns 0, or -1 when cancelled.
static int
s_count_primes (uint64_t lo, uint64_t hi, drover_job_t *job, uint64_t *count_p)
{
    uint64_t count = 0;
    if (lo <= 2 && hi > 2)
        count++;
    uint64_t first = lo <= 3? 3: lo | 1;
    for (uint64_t n = first; n < hi; n += 2) {
        if (job && (n & 0xffff) == 1 && drover_job_cancelled (job))
            return -1;
        uint32_t value = (uint32_t) n;
        bool prime = true;
        for (uint32_t divisor = 3; (uint64_t) divisor * divisor <= value; divisor += 2)
            if (value % divisor == 0) {
                prime = false;
                break;
            }
        count += prime;
    }
    *count_p = count;
    return 0;
}

//  Parses a payload "lo hi" (decimal, lo <= hi <= MAX_N). Returns 0 or -1.
static int
s_parse_range (const void *data, size_t size, uint64_t *lo_p, uint64_t *hi_p)
{
    char text [64];
    if (size == 0 || size >= sizeof text)
        return -1;
    memcpy (text, data, size);
    text [size] = 0;
    char *end = NULL;
    errno = 0;
    unsigned long long lo = strtoull (text, &end, 10);
    if (errno || end == text || *end != ' ')
        return -1;
    char *second = end + 1;
    unsigned long long hi = strtoull (second, &end, 10);
    if (errno || end == second || *end || text [0] == '-' || *second == '-'
    ||  lo > hi || hi > MAX_N)
        return -1;
    *lo_p = lo;
    *hi_p = hi;
    return 0;
}

//  demo-worker ------------------------------------------------------------------

static int
s_primes_handler (drover_job_t *job, void *arg)
{
    (void) arg;
    size_t size = 0;
    const void *payload = drover_job_payload (job, &size);
    uint64_t lo, hi, count;
    if (s_parse_range (payload, size, &lo, &hi)) {
        drover_job_set_error (job, "bad payload: want \"LO HI\" with LO <= HI <= 4294967296", true);
        return -1;
    }
    if (s_count_primes (lo, hi, job, &count)) {
        drover_job_set_error (job, "cancelled", true);
        return -1;
    }
    char result [32];
    int length = snprintf (result, sizeof result, "%" PRIu64, count);
    return drover_job_set_result (job, result, (size_t) length)? -1: 0;
}

int
cli_demo_worker (int argc, char **argv)
{
    static const struct option options [] = {
        { "threads", required_argument, NULL, 't' },
        { "help",    no_argument,       NULL, 'h' },
        CLI_CONNECT_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    const char *cmd = argv [0];
    drover_connect_t cfg;
    memset (&cfg, 0, sizeof cfg);
    long threads = 1;
    int opt;
    while ((opt = cli_getopt_connect (argc, argv, ":t:h", options, &cfg)) != -1) {
        switch (opt) {
            case 't':
                if (cli_parse_long (optarg, 1, 1024, &threads))
                    return cli_usage (cmd, "--threads must be 1..1024, not '%s'", optarg);
                break;
            case 'h':
                printf ("Usage: drover demo-worker [--threads N] [connection options]\n"
                        "\n"
                        "Serves queue '" DEMO_QUEUE "' for 'drover demo': payload \"LO HI\",\n"
                        "result the number of primes in [LO, HI). Stops on SIGTERM\n"
                        "after finishing the jobs it holds.\n\n" CLI_CONNECT_HELP);
                return CLI_EXIT_OK;
            default:
                return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage (cmd, "unexpected argument '%s'", argv [optind]);
    return cli_worker_serve (&cfg, cmd, DEMO_QUEUE, s_primes_handler, (int) threads, -1);
}

//  demo -------------------------------------------------------------------------

#ifdef DROVER_CLI_NO_BROKER

int
cli_demo (int argc, char **argv)
{
    (void) argc;
    (void) argv;
    cli_error ("demo: this drover was built without the broker library");
    return CLI_EXIT_FAILED;
}

#else

#include "broker.h"

static const char *s_usage =
    "Usage: drover demo [--n N] [--chunks K] [--processes P] [--timeout S]\n"
    "\n"
    "Counts the primes below N twice: serially in this process, then as K jobs\n"
    "(one range each) on P local worker processes through a broker started in\n"
    "this process, on 127.0.0.1 with fresh CURVE keys in a temporary directory.\n"
    "Prints both counts, the wall times and the speed-up, stops everything it\n"
    "started and removes its files. Exit 0 when both counts agree, else 1.\n"
    "\n"
    "Options:\n"
    "  -N, --n N             count primes below N (default 20000000, ~4.5 s serially)\n"
    "  -k, --chunks K        jobs to split the range into (default 64)\n"
    "  -p, --processes P     worker processes (default: number of CPUs)\n"
    "  -t, --timeout S       give up the parallel phase after S seconds (default 600)\n"
    "  -h, --help            show this help\n";

//  Seconds between two cli_now_ms() readings.
static double
s_seconds (int64_t from, int64_t to)
{
    return (to - from) / 1000.0;
}

//  CPU time of the calling thread, in seconds.
static double
s_thread_cpu_seconds (void)
{
    struct timespec now;
    clock_gettime (CLOCK_THREAD_CPUTIME_ID, &now);
    return (double) now.tv_sec + now.tv_nsec / 1e9;
}

//  The lower bound of range index when [0, n) is cut into chunks ranges.
static uint64_t
s_range_lo (uint64_t n, uint64_t chunks, uint64_t index)
{
    return n * index / chunks;
}

int
cli_demo (int argc, char **argv)
{
    static const struct option options [] = {
        { "n",         required_argument, NULL, 'N' },
        { "chunks",    required_argument, NULL, 'k' },
        { "processes", required_argument, NULL, 'p' },
        { "timeout",   required_argument, NULL, 't' },
        { "help",      no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *cmd = argv [0];
    //  The demo's own report is the output; the broker and workers only
    //  speak up for warnings unless the user asks for more
    setenv ("DROVER_LOG_LEVEL", "warn", 0);
    long n = DEFAULT_N, chunks = DEFAULT_CHUNKS;
    long processes = sysconf (_SC_NPROCESSORS_ONLN);
    if (processes < 1)
        processes = 1;
    int64_t timeout_ms = DEFAULT_TIMEOUT_MS;
    int opt;
    while ((opt = cli_getopt (argc, argv, ":N:k:p:t:h", options)) != -1) {
        switch (opt) {
            case 'N':
                if (cli_parse_long (optarg, 2, (long) (MAX_N > LONG_MAX? LONG_MAX: MAX_N), &n))
                    return cli_usage (cmd, "--n must be 2..%llu, not '%s'", MAX_N, optarg);
                break;
            case 'k':
                if (cli_parse_long (optarg, 1, 100000, &chunks))
                    return cli_usage (cmd, "--chunks must be 1..100000, not '%s'", optarg);
                break;
            case 'p':
                if (cli_parse_long (optarg, 1, 1024, &processes))
                    return cli_usage (cmd, "--processes must be 1..1024, not '%s'", optarg);
                break;
            case 't':
                if (cli_parse_seconds (optarg, &timeout_ms) || timeout_ms < 1)
                    return cli_usage (cmd, "--timeout wants seconds > 0, not '%s'", optarg);
                break;
            case 'h':
                fputs (s_usage, stdout);
                return CLI_EXIT_OK;
            default:
                return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage (cmd, "unexpected argument '%s'", argv [optind]);
    if (chunks > n)
        chunks = n;             //  no empty ranges

    int exit_code = CLI_EXIT_FAILED;
    char *tmp_dir = NULL, *keys_dir = NULL, *data_dir = NULL, *self = NULL;
    char *producers = NULL, *workers = NULL;
    zactor_t *broker = NULL;
    drover_client_t *client = NULL;
    drover_future_t **futures = calloc ((size_t) chunks, sizeof *futures);
    char **payloads = calloc ((size_t) chunks, sizeof *payloads);
    size_t *sizes = calloc ((size_t) chunks, sizeof *sizes);
    int *pids = calloc ((size_t) processes, sizeof *pids);
    cli_keyring_t ring;
    memset (&ring, 0, sizeof ring);
    if (!futures || !payloads || !sizes || !pids) {
        cli_error ("out of memory");
        goto done;
    }

    printf ("drover demo: count the primes below %ld, serially and as %ld jobs "
            "on %ld worker processes\n", n, chunks, processes);
    fflush (stdout);

    //  Setup: keys, broker, workers -------------------------------------------
    int64_t setup_start = cli_now_ms ();
    tmp_dir = cli_temp_dir (cmd);
    if (!tmp_dir)
        goto done;
    keys_dir = zsys_sprintf ("%s/keys", tmp_dir);
    data_dir = zsys_sprintf ("%s/data", tmp_dir);
    bool reused;
    if (cli_keyring_open (&ring, keys_dir, &reused))
        goto done;

    broker_config_t config;
    broker_config_defaults (&config);
    config.producers = "tcp://127.0.0.1:*";
    config.workers = "tcp://127.0.0.1:*";
    config.cert = ring.server_secret;
    config.allow = ring.allow;
    config.data_dir = data_dir;
    broker = broker_start (&config);
    if (!broker) {
        cli_error ("demo: the broker did not start (see the message above)");
        goto done;
    }
    if (broker_endpoints (broker, &producers, &workers)) {
        cli_error ("demo: the broker did not tell its endpoints");
        goto done;
    }

    self = cli_self_exe ();
    if (!self) {
        cli_error ("demo: cannot find our own executable (/proc/self/exe)");
        goto done;
    }
    char *worker_argv [CLI_WORKER_ARGV_MAX + 1];
    int worker_argc = cli_worker_argv (worker_argv, self, "demo-worker", workers, &ring);
    worker_argv [worker_argc] = NULL;
    if (cli_spawn_many (worker_argv, pids, (size_t) processes))
        goto done;
    exit_code = cli_connect_local (cmd, producers, &ring, "drover-demo", &client);
    if (exit_code)
        goto done;
    exit_code = CLI_EXIT_FAILED;
    if (cli_wait_workers (cmd, client, DEMO_QUEUE, pids, (size_t) processes, 30000))
        goto done;
    int64_t setup_end = cli_now_ms ();
    printf ("  setup     broker on %s (clients) and %s (workers), CURVE keys in %s; "
            "%ld workers joined (%.2f s)\n", producers, workers, tmp_dir, processes,
            s_seconds (setup_start, setup_end));
    fflush (stdout);

    //  Phase 1: serial, in this process (the workers wait, idle) ---------------
    int64_t serial_start = cli_now_ms ();
    double serial_cpu = s_thread_cpu_seconds ();
    uint64_t serial = 0;
    for (long index = 0; index < chunks; index++) {
        if (cli_interrupted ()) {
            cli_error ("demo: interrupted");
            goto done;
        }
        uint64_t count;
        s_count_primes (s_range_lo (n, chunks, index), s_range_lo (n, chunks, index + 1),
                        NULL, &count);
        serial += count;
    }
    int64_t serial_end = cli_now_ms ();
    serial_cpu = s_thread_cpu_seconds () - serial_cpu;
    double serial_s = s_seconds (serial_start, serial_end);
    printf ("  serial    %" PRIu64 " primes in %.2f s (one process, %.2f s of CPU)\n",
            serial, serial_s, serial_cpu);
    fflush (stdout);

    //  Phase 2: the same ranges as jobs ---------------------------------------
    for (long index = 0; index < chunks; index++) {
        payloads [index] = zsys_sprintf ("%" PRIu64 " %" PRIu64, s_range_lo (n, chunks, index),
                                         s_range_lo (n, chunks, index + 1));
        if (!payloads [index]) {
            cli_error ("out of memory");
            goto done;
        }
        sizes [index] = strlen (payloads [index]);
    }
    int64_t parallel_start = cli_now_ms ();
    drover_job_opts_t opts = DROVER_JOB_OPTS_INIT;
    int rc = drover_submit_many (client, DEMO_QUEUE, (const void *const *) payloads, sizes,
                                 (size_t) chunks, &opts, futures);
    if (rc) {
        cli_error ("demo: cannot submit the jobs: %s", drover_strerror (rc));
        exit_code = cli_exit_code (rc);
        goto done;
    }
    int64_t deadline = parallel_start + timeout_ms;
    uint64_t parallel = 0;
    for (long index = 0; index < chunks; index++) {
        //  Wait in steps, watching the workers: if they all died (say, the
        //  broker refused their key) waiting longer would only hang.
        for (;;) {
            int64_t step = cli_now_ms () + 500;
            rc = cli_future_wait (futures [index], CLI_WAIT_DONE, step < deadline? step: deadline);
            if (rc != DROVER_ETIMEDOUT || cli_now_ms () >= deadline)
                break;
            while (cli_reap_worker (cmd, pids, (size_t) processes))
                ;
            bool any_alive = false;
            for (long worker = 0; worker < processes; worker++)
                any_alive = any_alive || pids [worker] > 0;
            if (!any_alive) {
                cli_error ("demo: no worker process left; giving up");
                goto done;
            }
        }
        const char *id = drover_future_id (futures [index]);
        if (rc == DROVER_ETIMEDOUT) {
            cli_error ("demo: job %s (range %s) not finished after %.0f s",
                       id, payloads [index], timeout_ms / 1000.0);
            goto done;
        }
        if (rc == DROVER_EINTR) {
            cli_error ("demo: interrupted");
            goto done;
        }
        if (rc) {
            const char *error = drover_future_error (futures [index]);
            cli_error ("demo: job %s (range %s) failed: %s", id, payloads [index],
                       error && *error? error: drover_strerror (rc));
            exit_code = cli_exit_code (rc) == CLI_EXIT_CONNECT? CLI_EXIT_CONNECT: CLI_EXIT_FAILED;
            goto done;
        }
        size_t size = 0;
        const char *result = drover_future_result (futures [index], &size);
        char text [32], *end = NULL;
        if (!result || size == 0 || size >= sizeof text) {
            cli_error ("demo: job %s returned no count", id);
            goto done;
        }
        memcpy (text, result, size);
        text [size] = 0;
        errno = 0;
        uint64_t count = strtoull (text, &end, 10);
        if (errno || end == text || *end || text [0] == '-') {
            cli_error ("demo: job %s returned '%s', not a count", id, text);
            goto done;
        }
        parallel += count;
    }
    int64_t parallel_end = cli_now_ms ();
    double parallel_s = s_seconds (parallel_start, parallel_end);
    printf ("  parallel  %" PRIu64 " primes in %.2f s (%ld jobs through the broker, "
            "%ld worker processes)\n", parallel, parallel_s, chunks, processes);
    printf ("  speed-up  %.2fx\n", parallel_s > 0? serial_s / parallel_s: 0.0);
    //  Wall time well above CPU time means other programs took the CPU
    //  from the serial phase: say so rather than show a doubtful ratio.
    if (serial_s > 0.5 && serial_s > 1.3 * serial_cpu)
        printf ("            (the machine was busy: the serial phase got %.0f%% of a CPU, "
                "so the timings are noisy)\n", 100.0 * serial_cpu / serial_s);
    if (parallel == serial) {
        printf ("  check     OK: both phases counted %" PRIu64 " primes below %ld\n", serial, n);
        exit_code = CLI_EXIT_OK;
    }
    else {
        printf ("  check     MISMATCH: serial %" PRIu64 ", parallel %" PRIu64 "\n",
                serial, parallel);
        exit_code = CLI_EXIT_FAILED;
    }
    fflush (stdout);

done:
    for (long index = 0; futures && index < chunks; index++)
        drover_future_destroy (&futures [index]);
    drover_client_destroy (&client);
    //  Workers before the broker, so they can say goodbye; 10 s is plenty
    //  for a worker holding only short ranges.
    if (pids)
        cli_stop_children (pids, (size_t) processes, 10000);
    zactor_destroy (&broker);
    if (tmp_dir)
        cli_remove_tree (tmp_dir);
    for (long index = 0; payloads && index < chunks; index++)
        zstr_free (&payloads [index]);
    free (payloads);
    free (sizes);
    free (futures);
    free (pids);
    free (self);
    zstr_free (&producers);
    zstr_free (&workers);
    zstr_free (&keys_dir);
    zstr_free (&data_dir);
    zstr_free (&tmp_dir);
    cli_keyring_close (&ring);
    return exit_code;
}

#endif
