/*  bench.c - `drover bench`: throughput, latency and broker memory, side by
    side with the raw-libzmq floor, for a durable (journal + fsync) and an
    in-memory broker; journal size over a long run; and the hidden
    `drover bench-worker` (an echo worker) that it starts.

    Everything runs on 127.0.0.1 with OS-chosen ports and fresh keys in a
    temporary directory (the brokers' data directories are inside it, so
    on the same filesystem). The broker is a separate droverd process, so
    that its memory can be read from /proc and its CPU time told apart from
    the producer's. Phases:

    1. pipelined throughput, once per durability mode (--durability none,
       then fsync, by default): N jobs through the broker to W bench-worker
       processes (concurrency 1, prefetch 100), the producer keeping at most
       `window` jobs outstanding; timed from the first submit until every
       result is back (after a short untimed warm-up);
    2. latency, on the same broker: one job at a time, after a warm-up; p50
       and p99;
    3. broker memory per queued job: a fresh broker, a queue nobody serves,
       VmRSS before and after M jobs are accepted;
    4. journal size: a fresh durable broker with --result-ttl 1 (results
       expire, so compaction can run), J jobs pipelined through it; the size
       of DATA_DIR/journal (sum of its files) sampled every 200 ms, its peak,
       its size when the last result is back, and after the broker has been
       idle long enough for every result to expire;
    5. shared state and locks, on a fresh broker (durable unless
       --durability none) with no workers: state SET throughput of K
       writer threads sharing one client while a replica tracks the
       namespace (checked to end with every last value), propagation
       latency from SET to the replica's watch callback (one SET at a
       time, same process and clock), and uncontended lock + unlock pairs
       per second;
    6. the raw floor: bench/raw_floor with the same transport settings
       (CURVE or not, W workers, window 100, batch 1, same size, N jobs),
       plus batch 10 and the other security setting for context.

    The producer does no per-job work beyond the SDK calls: it submits in
    chunks with drover_submit_many and counts completions in a callback
    that runs on the client's I/O thread and frees each future there.
*/
#include "common.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define BENCH_QUEUE         "bench"
#define IDLE_QUEUE          "bench-idle"    //  served by nobody: memory phase
#define BROKER_PROGRAM      "droverd"
#define RAW_PROGRAM         "raw_floor"
//  Worker credit: concurrency 1 + prefetch 100, comparable to the raw
//  floor's window of 100 messages (of one job each) per worker.
#define WORKER_PREFETCH     100
#define RAW_WINDOW          100
//  Jobs per drover_submit_many call in the pipelined phase
#define SUBMIT_CHUNK        256
//  Give up when no result arrives for this long
#define STALL_MS            30000
#define START_TIMEOUT_MS    15000

#define DEFAULT_JOBS         200000
#define DEFAULT_WINDOW       10000
#define DEFAULT_LATENCY_JOBS 2000
#define DEFAULT_MEMORY_JOBS  100000
#define DEFAULT_SIZE         64
#define DEFAULT_WORKERS      2
#define DEFAULT_JOURNAL_JOBS 100000
//  Journal phase: how often its size is sampled, the brokers' result TTL
//  (seconds), and how long the broker is left idle at the end so that every
//  result has expired and compaction had its chance.
#define JOURNAL_SAMPLE_MS    200
#define JOURNAL_RESULT_TTL   "1"
#define JOURNAL_SETTLE_MS    3000
//  Shared state and locks: the namespace, its keys, the value size, and
//  the time the lock loop runs at most.
#define STATE_NS             "bench"
#define STATE_KEYS           1000
#define STATE_VALUE_SIZE     64
#define DEFAULT_STATE_SETS   20000
#define DEFAULT_STATE_WRITERS 8
#define DEFAULT_STATE_LATENCY 2000
#define DEFAULT_LOCK_PAIRS   5000
#define LOCK_SECONDS         2

//  bench-worker -----------------------------------------------------------------

//  Echo: the result is the payload.
static int
s_echo_handler (drover_job_t *job, void *arg)
{
    (void) arg;
    size_t size = 0;
    const void *payload = drover_job_payload (job, &size);
    return drover_job_set_result (job, payload, size)? -1: 0;
}

int
cli_bench_worker (int argc, char **argv)
{
    static const struct option options [] = {
        { "queue",       required_argument, NULL, 'q' },
        { "concurrency", required_argument, NULL, 'c' },
        { "prefetch",    required_argument, NULL, 'p' },
        { "help",        no_argument,       NULL, 'h' },
        CLI_CONNECT_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    const char *cmd = argv [0];
    drover_connect_t cfg;
    memset (&cfg, 0, sizeof cfg);
    const char *queue = BENCH_QUEUE;
    long concurrency = 1, prefetch = WORKER_PREFETCH;
    int opt;
    while ((opt = cli_getopt_connect (argc, argv, ":q:c:p:h", options, &cfg)) != -1) {
        switch (opt) {
            case 'q':
                if (!cli_valid_queue (optarg))
                    return cli_usage (cmd, "bad queue name '%s': use " CLI_QUEUE_RULE, optarg);
                queue = optarg;
                break;
            case 'c':
                if (cli_parse_long (optarg, 1, 1024, &concurrency))
                    return cli_usage (cmd, "--concurrency must be 1..1024, not '%s'", optarg);
                break;
            case 'p':
                if (cli_parse_long (optarg, 0, 1000000, &prefetch))
                    return cli_usage (cmd, "--prefetch must be 0..1000000, not '%s'", optarg);
                break;
            case 'h':
                printf ("Usage: drover bench-worker [--queue Q] [--concurrency N] [--prefetch N]\n"
                        "                           [connection options]\n"
                        "\n"
                        "Echo worker for 'drover bench': serves queue Q (default '" BENCH_QUEUE "')\n"
                        "and returns each payload as the result. Stops on SIGTERM after\n"
                        "finishing the jobs it holds.\n\n" CLI_CONNECT_HELP);
                return CLI_EXIT_OK;
            default:
                return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage (cmd, "unexpected argument '%s'", argv [optind]);
    return cli_worker_serve (&cfg, cmd, queue, s_echo_handler, (int) concurrency, (int) prefetch);
}

//  Small helpers -------------------------------------------------------------------

static int64_t
s_now_ns (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000000000 + now.tv_nsec;
}

//  VmRSS of a process in kB, or -1.
static long
s_rss_kb (int pid)
{
    char path [64], line [256];
    snprintf (path, sizeof path, "/proc/%d/status", pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    long kb = -1;
    while (fgets (line, sizeof line, file))
        if (strncmp (line, "VmRSS:", 6) == 0) {
            kb = strtol (line + 6, NULL, 10);
            break;
        }
    fclose (file);
    return kb;
}

//  User + system CPU seconds a process has used so far, or -1.
static double
s_cpu_seconds (int pid)
{
    char path [64], text [1024];
    snprintf (path, sizeof path, "/proc/%d/stat", pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    size_t size = fread (text, 1, sizeof text - 1, file);
    fclose (file);
    text [size] = 0;
    //  Fields after the command name (which may hold spaces): state is
    //  field 3, utime 14, stime 15.
    char *close = strrchr (text, ')');
    if (!close)
        return -1;
    unsigned long long utime = 0, stime = 0;
    if (sscanf (close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                &utime, &stime) != 2)
        return -1;
    long ticks = sysconf (_SC_CLK_TCK);
    return (double) (utime + stime) / (double) (ticks > 0? ticks: 100);
}

static double
s_self_cpu_seconds (void)
{
    struct rusage usage;
    getrusage (RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6
         + usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

//  Prints the last lines of a log file on stderr, indented.
static void
s_show_log_tail (const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return;
    char lines [8][512];
    size_t count = 0;
    char line [512];
    while (fgets (line, sizeof line, file))
        snprintf (lines [count++ % 8], sizeof lines [0], "%s", line);
    fclose (file);
    size_t first = count > 8? count - 8: 0;
    for (size_t index = first; index < count; index++)
        fprintf (stderr, "    %s", lines [index % 8]);
}

//  The broker process -------------------------------------------------------------

typedef struct {
    int pid;                    //  droverd, 0 when not running
    char *log;                  //  its stderr, in the temporary directory
    char *data_dir;             //  its --data-dir, in the temporary directory
    char *producers;            //  bound client endpoint
    char *workers;              //  bound worker endpoint
} broker_proc_t;

//  Starts argv with stdout and stderr going to log_path. fork + exec (no
//  allocation between them), so the child can ask to be killed when we
//  die, which posix_spawn cannot. Returns the pid or -1 (printed).
static int
s_spawn_logged (char *const argv [], const char *log_path)
{
    int fd = open (log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        cli_error ("bench: cannot create %s: %s", log_path, strerror (errno));
        return -1;
    }
    fflush (NULL);
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        dup2 (fd, STDOUT_FILENO);
        dup2 (fd, STDERR_FILENO);
        prctl (PR_SET_PDEATHSIG, SIGTERM);
        if (getppid () != parent)
            _exit (127);
        struct sigaction action;
        memset (&action, 0, sizeof action);
        action.sa_handler = SIG_DFL;
        sigaction (SIGPIPE, &action, NULL);
        sigset_t none;
        sigemptyset (&none);
        sigprocmask (SIG_SETMASK, &none, NULL);
        execv (argv [0], argv);
        _exit (127);
    }
    int error = errno;
    close (fd);
    if (pid < 0) {
        cli_error ("bench: cannot start %s: %s", argv [0], strerror (error));
        return -1;
    }
    return (int) pid;
}

//  Reads the bound endpoints from the broker's log line "serving clients on
//  EP and workers on EP". Returns 0, or -1 (printed) when the broker ended
//  or did not say within the timeout.
static int
s_broker_wait_ready (broker_proc_t *broker, int timeout_ms)
{
    int64_t deadline = cli_now_ms () + timeout_ms;
    while (cli_now_ms () < deadline && !cli_interrupted ()) {
        FILE *file = fopen (broker->log, "r");
        char line [1024];
        while (file && fgets (line, sizeof line, file)) {
            char *at = strstr (line, "serving clients on ");
            char producers [256], workers [256];
            if (at && sscanf (at, "serving clients on %255s and workers on %255s",
                              producers, workers) == 2) {
                fclose (file);
                broker->producers = strdup (producers);
                broker->workers = strdup (workers);
                return broker->producers && broker->workers? 0: -1;
            }
        }
        if (file)
            fclose (file);
        int status = 0;
        if (cli_child_ended (&broker->pid, 1, &status)) {
            char text [64];
            cli_describe_status (status, text, sizeof text);
            cli_error ("bench: " BROKER_PROGRAM " %s before serving; its log:", text);
            s_show_log_tail (broker->log);
            return -1;
        }
        usleep (10 * 1000);
    }
    cli_error ("bench: " BROKER_PROGRAM " did not report its endpoints within %d s; its log:",
               timeout_ms / 1000);
    s_show_log_tail (broker->log);
    return -1;
}

//  Starts droverd on ephemeral loopback ports, durable (--durability
//  fsync, its data directory inside tmp_dir) or in memory (none), with
//  result_ttl (seconds, as text) unless NULL. Logs at info: the endpoint
//  line is an info line, and the broker logs nothing per job at that level
//  (only peers joining and leaving, and journal compactions), so the run
//  pays nothing for it.
static int
s_broker_start (broker_proc_t *broker, const char *program, const cli_keyring_t *ring,
                const char *tmp_dir, const char *name, bool insecure, bool durable,
                const char *result_ttl)
{
    memset (broker, 0, sizeof *broker);
    broker->log = zsys_sprintf ("%s/%s.log", tmp_dir, name);
    broker->data_dir = zsys_sprintf ("%s/%s-data", tmp_dir, name);
    if (!broker->log || !broker->data_dir)
        return -1;
    char *argv [24];
    int argc = 0;
    argv [argc++] = (char *) program;
    argv [argc++] = "--producers";
    argv [argc++] = "tcp://127.0.0.1:0";
    argv [argc++] = "--workers";
    argv [argc++] = "tcp://127.0.0.1:0";
    argv [argc++] = "--data-dir";
    argv [argc++] = broker->data_dir;
    argv [argc++] = "--durability";
    argv [argc++] = durable? "fsync": "none";
    if (result_ttl) {
        argv [argc++] = "--result-ttl";
        argv [argc++] = (char *) result_ttl;
    }
    argv [argc++] = "--log-level";
    argv [argc++] = "info";
    if (insecure)
        argv [argc++] = "--insecure";
    else {
        argv [argc++] = "--cert";
        argv [argc++] = ring->server_secret;
        argv [argc++] = "--allow";
        argv [argc++] = ring->allow;
    }
    argv [argc] = NULL;
    broker->pid = s_spawn_logged (argv, broker->log);
    if (broker->pid < 0) {
        broker->pid = 0;
        return -1;
    }
    return s_broker_wait_ready (broker, START_TIMEOUT_MS);
}

static void
s_broker_stop (broker_proc_t *broker)
{
    if (broker->pid > 0)
        cli_stop_children (&broker->pid, 1, 5000);
    zstr_free (&broker->log);
    zstr_free (&broker->data_dir);
    free (broker->producers);
    free (broker->workers);
    memset (broker, 0, sizeof *broker);
}

//  Run state ---------------------------------------------------------------------

//  Throughput and latency figures of one durability mode; < 0 when not
//  measured.
typedef struct {
    bool run;                   //  this mode is to be measured
    bool durable;               //  --durability fsync (else none)
    double seconds, jobs_per_s;
    double warmup_jobs;
    double p50_ms, p99_ms, mean_ms, max_ms;
    double cpu_broker_s, cpu_workers_s, cpu_producer_s;
    long rss_after_throughput_kb;
} bench_mode_t;

typedef struct {
    //  Options
    long jobs, window, latency_jobs, memory_jobs, journal_jobs, size, workers;
    bool insecure, json, skip_raw;
    const char *durability;     //  "both", "fsync" or "none"
    const char *raw_path;
    const char *cmd;

    //  Environment
    char *tmp_dir;
    char *droverd;
    char *self;
    cli_keyring_t ring;
    void *payload;              //  the job payload (size bytes)

    //  Results; < 0 when not measured
    bench_mode_t inmem, durable;
    bool memory_durable;        //  the memory phase's broker was durable
    long rss_before_kb, rss_after_kb;
    double bytes_per_job;
    double journal_seconds, journal_jobs_per_s;
    double journal_peak_bytes, journal_end_bytes, journal_idle_bytes;
    long journal_samples, journal_compactions;
    double raw_jobs_per_s, raw_batch10_jobs_per_s, raw_other_jobs_per_s;
    char raw_note [256];
    //  Shared state and locks (phase 5); < 0 when not measured
    bool skip_state;
    long state_sets, state_writers, state_latency_sets, lock_pairs;
    bool state_durable;         //  the state phase's broker was durable
    double state_seconds, state_set_per_s;
    double state_catchup_ms;    //  last reply -> replica holds every value
    long state_checked;         //  keys compared in the replica
    long state_updates_seen;    //  "k/" callbacks during the timed SETs
    double prop_p50_ms, prop_p99_ms, prop_mean_ms, prop_max_ms;
    long prop_missed;           //  latency updates the callback never saw
    double lock_seconds, lock_pairs_per_s;
    long lock_pairs_done;
    char lock_note [160];
    int failures;
} bench_t;

//  The mode the classic figures (jobs_per_s, latency_*, ratio_to_floor)
//  come from: in memory when it ran, else durable.
static bench_mode_t *
s_primary (bench_t *self)
{
    return self->inmem.run? &self->inmem: &self->durable;
}

//  Completion counting ------------------------------------------------------------

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t done;              //  futures resolved
    uint64_t failed;            //  of which not done, or with a wrong result
    uint64_t wake_at;           //  signal once done reaches this
    bool waiting;               //  the producer sleeps on cond
    const void *expect;         //  expected result (the payload)
    size_t expect_size;
    char first_error [256];
} tally_t;

//  Runs on the client's I/O thread (or at once on ours): counts the job,
//  checks its result, and frees the future.
static void
s_on_done (drover_future_t *future, void *arg)
{
    tally_t *tally = (tally_t *) arg;
    size_t size = 0;
    int rc = drover_future_wait (future, 0);
    const void *result = rc == 0? drover_future_result (future, &size): NULL;
    bool ok = result && size == tally->expect_size
           && (size == 0 || memcmp (result, tally->expect, size) == 0);
    char error [256] = "";
    if (!ok) {
        const char *text = drover_future_error (future);
        snprintf (error, sizeof error, "job %s: %s", drover_future_id (future),
                  rc? (text && *text? text: drover_strerror (rc)): "result is not the payload");
    }
    pthread_mutex_lock (&tally->lock);
    tally->done++;
    if (!ok) {
        if (tally->failed++ == 0)
            snprintf (tally->first_error, sizeof tally->first_error, "%s", error);
    }
    if (tally->waiting && tally->done >= tally->wake_at)
        pthread_cond_signal (&tally->cond);
    pthread_mutex_unlock (&tally->lock);
    drover_future_destroy (&future);
}

//  Waits (lock held) until tally->done >= target. Returns 0, or -1 on
//  interrupt or when nothing completes for STALL_MS (printed).
static int
s_tally_wait (tally_t *tally, uint64_t target, uint64_t submitted)
{
    uint64_t last_done = tally->done;
    int64_t last_progress = cli_now_ms ();
    while (tally->done < target) {
        tally->wake_at = target;
        tally->waiting = true;
        struct timespec deadline;
        clock_gettime (CLOCK_REALTIME, &deadline);
        deadline.tv_nsec += 200 * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait (&tally->cond, &tally->lock, &deadline);
        tally->waiting = false;
        if (cli_interrupted ()) {
            cli_error ("bench: interrupted");
            return -1;
        }
        if (tally->done != last_done) {
            last_done = tally->done;
            last_progress = cli_now_ms ();
        }
        else
        if (cli_now_ms () - last_progress > STALL_MS) {
            cli_error ("bench: no result for %d s (%" PRIu64 " of %" PRIu64 " submitted jobs done)",
                       STALL_MS / 1000, tally->done, submitted);
            return -1;
        }
    }
    return 0;
}

//  Submits jobs keeping at most window outstanding, until every result is
//  back. Returns 0 with *seconds set, or -1 (printed).
static int
s_pipelined (bench_t *self, drover_client_t *client, uint64_t jobs, uint64_t window,
             double *seconds)
{
    //  On the heap: when a run fails, callbacks for the jobs still out may
    //  run until the client is destroyed, and must find it alive.
    tally_t *tally = calloc (1, sizeof *tally);
    if (!tally) {
        cli_error ("out of memory");
        return -1;
    }
    pthread_mutex_init (&tally->lock, NULL);
    pthread_cond_init (&tally->cond, NULL);
    tally->expect = self->payload;
    tally->expect_size = (size_t) self->size;

    const void *datas [SUBMIT_CHUNK];
    size_t sizes [SUBMIT_CHUNK];
    drover_future_t *futures [SUBMIT_CHUNK];
    for (size_t index = 0; index < SUBMIT_CHUNK; index++) {
        datas [index] = self->payload;
        sizes [index] = (size_t) self->size;
    }
    uint64_t chunk = window < SUBMIT_CHUNK? window: SUBMIT_CHUNK;
    drover_job_opts_t opts = DROVER_JOB_OPTS_INIT;
    int rc = 0;
    uint64_t submitted = 0;
    int64_t start = s_now_ns ();
    while (submitted < jobs && rc == 0) {
        uint64_t want = jobs - submitted < chunk? jobs - submitted: chunk;
        pthread_mutex_lock (&tally->lock);
        //  Room for `want` more: outstanding (submitted - done) <= window - want
        if (submitted + want > tally->done + window)
            rc = s_tally_wait (tally, submitted + want - window, submitted);
        uint64_t room = tally->done + window - submitted;
        pthread_mutex_unlock (&tally->lock);
        if (rc)
            break;
        uint64_t count = want < room? want: room;
        int err = drover_submit_many (client, BENCH_QUEUE, datas, sizes, (size_t) count,
                                      &opts, futures);
        if (err) {
            cli_error ("bench: cannot submit: %s", drover_strerror (err));
            rc = -1;
            break;
        }
        for (uint64_t index = 0; index < count; index++)
            drover_future_on_done (futures [index], s_on_done, tally);
        submitted += count;
    }
    pthread_mutex_lock (&tally->lock);
    if (rc == 0)
        rc = s_tally_wait (tally, jobs, submitted);
    if (rc == 0 && tally->failed) {
        cli_error ("bench: %" PRIu64 " of %" PRIu64 " jobs failed; first: %s",
                   tally->failed, jobs, tally->first_error);
        rc = -1;
    }
    bool all_back = tally->done >= submitted;
    pthread_mutex_unlock (&tally->lock);
    *seconds = (s_now_ns () - start) / 1e9;
    if (all_back) {
        pthread_mutex_destroy (&tally->lock);
        pthread_cond_destroy (&tally->cond);
        free (tally);
    }
    //  else: left for the callbacks still to come (a failed run only)
    return rc;
}

static int
s_compare_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y? -1: x > y? 1: 0;
}

//  Nearest-rank percentile of sorted values.
static double
s_percentile (const double *sorted, size_t count, double p)
{
    //  ceil (p% of count), in integers so that no libm is needed
    size_t rank = (size_t) ((p * (double) count + 99.999999) / 100.0);
    if (rank < 1)
        rank = 1;
    if (rank > count)
        rank = count;
    return sorted [rank - 1];
}

//  One job at a time: warmup untimed jobs, then count timed ones. Returns 0
//  with the figures set, or -1 (printed).
static int
s_latency (bench_t *self, bench_mode_t *mode, drover_client_t *client, long warmup, long count)
{
    double *samples = calloc ((size_t) (count > 0? count: 1), sizeof *samples);
    if (!samples) {
        cli_error ("out of memory");
        return -1;
    }
    drover_job_opts_t opts = DROVER_JOB_OPTS_INIT;
    int rc = 0;
    for (long index = -warmup; index < count && rc == 0; index++) {
        drover_future_t *future = NULL;
        int64_t start = s_now_ns ();
        int err = drover_submit (client, BENCH_QUEUE, self->payload, (size_t) self->size,
                                 &opts, &future);
        if (err == 0)
            err = cli_future_wait (future, CLI_WAIT_DONE, cli_now_ms () + STALL_MS);
        int64_t end = s_now_ns ();
        size_t size = 0;
        const void *result = err == 0? drover_future_result (future, &size): NULL;
        if (err)
            cli_error ("bench: latency job: %s", err == DROVER_EINTR? "interrupted"
                       : drover_future_error (future)? drover_future_error (future)
                       : drover_strerror (err));
        else
        if (!result || size != (size_t) self->size
        ||  (size && memcmp (result, self->payload, size))) {
            cli_error ("bench: latency job %s: result is not the payload",
                       drover_future_id (future));
            err = DROVER_EINTERNAL;
        }
        drover_future_destroy (&future);
        if (err)
            rc = -1;
        else
        if (index >= 0)
            samples [index] = (end - start) / 1e6;
    }
    if (rc == 0 && count > 0) {
        double sum = 0;
        for (long index = 0; index < count; index++)
            sum += samples [index];
        qsort (samples, (size_t) count, sizeof *samples, s_compare_double);
        mode->p50_ms = s_percentile (samples, (size_t) count, 50);
        mode->p99_ms = s_percentile (samples, (size_t) count, 99);
        mode->max_ms = samples [count - 1];
        mode->mean_ms = sum / (double) count;
    }
    free (samples);
    return rc;
}

static int
s_client_connect (bench_t *self, const broker_proc_t *broker, drover_client_t **client_p)
{
    return cli_connect_local (self->cmd, broker->producers, self->insecure? NULL: &self->ring,
                              "drover-bench", client_p) == 0? 0: -1;
}

//  A broker, W echo worker processes serving BENCH_QUEUE, and a client.
typedef struct {
    broker_proc_t broker;
    int *pids;                  //  worker processes, 0 once stopped
    long workers;
    drover_client_t *client;
} rig_t;

static void
s_rig_stop (rig_t *rig)
{
    drover_client_destroy (&rig->client);
    if (rig->pids)
        cli_stop_children (rig->pids, (size_t) rig->workers, 5000);
    s_broker_stop (&rig->broker);
    free (rig->pids);
    rig->pids = NULL;
}

//  Starts the rig; returns 0, or -1 (printed; call s_rig_stop either way).
static int
s_rig_start (bench_t *self, rig_t *rig, const char *name, bool durable, const char *result_ttl)
{
    memset (rig, 0, sizeof *rig);
    rig->workers = self->workers;
    rig->pids = calloc ((size_t) self->workers, sizeof *rig->pids);
    if (!rig->pids) {
        cli_error ("out of memory");
        return -1;
    }
    if (s_broker_start (&rig->broker, self->droverd, &self->ring, self->tmp_dir, name,
                        self->insecure, durable, result_ttl))
        return -1;

    char prefetch [16];
    snprintf (prefetch, sizeof prefetch, "%d", WORKER_PREFETCH);
    char *argv [CLI_WORKER_ARGV_MAX + 7];
    int argc = cli_worker_argv (argv, self->self, "bench-worker", rig->broker.workers,
                                self->insecure? NULL: &self->ring);
    argv [argc++] = "--queue";
    argv [argc++] = BENCH_QUEUE;
    argv [argc++] = "--concurrency";
    argv [argc++] = "1";
    argv [argc++] = "--prefetch";
    argv [argc++] = prefetch;
    argv [argc] = NULL;
    if (cli_spawn_many (argv, rig->pids, (size_t) self->workers))
        return -1;
    if (s_client_connect (self, &rig->broker, &rig->client))
        return -1;
    return cli_wait_workers (self->cmd, rig->client, BENCH_QUEUE, rig->pids,
                             (size_t) self->workers, START_TIMEOUT_MS);
}

//  Phases 1 and 2 for one durability mode: throughput, then latency.
static int
s_phase_jobs (bench_t *self, bench_mode_t *mode)
{
    int rc = -1;
    rig_t rig;
    if (s_rig_start (self, &rig, mode->durable? "broker-durable": "broker-inmem",
                     mode->durable, NULL))
        goto done;

    //  Warm-up: connections, CURVE sessions, allocator and tables settle.
    long warmup = self->jobs / 20;
    if (warmup < 100)
        warmup = 100;
    if (warmup > 10000)
        warmup = 10000;
    double warm_seconds;
    if (s_pipelined (self, rig.client, (uint64_t) warmup, (uint64_t) self->window, &warm_seconds))
        goto done;
    mode->warmup_jobs = (double) warmup;

    int broker_pid = rig.broker.pid;
    double cpu_broker = s_cpu_seconds (broker_pid), cpu_self = s_self_cpu_seconds ();
    double cpu_workers = 0;
    for (long index = 0; index < self->workers; index++)
        cpu_workers += s_cpu_seconds (rig.pids [index]);
    if (s_pipelined (self, rig.client, (uint64_t) self->jobs, (uint64_t) self->window,
                     &mode->seconds))
        goto done;
    mode->jobs_per_s = mode->seconds > 0? self->jobs / mode->seconds: 0;
    mode->cpu_broker_s = s_cpu_seconds (broker_pid) - cpu_broker;
    mode->cpu_producer_s = s_self_cpu_seconds () - cpu_self;
    double workers_now = 0;
    for (long index = 0; index < self->workers; index++)
        workers_now += s_cpu_seconds (rig.pids [index]);
    mode->cpu_workers_s = workers_now - cpu_workers;
    mode->rss_after_throughput_kb = s_rss_kb (broker_pid);

    if (self->latency_jobs > 0) {
        long warm = self->latency_jobs / 10;
        if (warm < 20)
            warm = 20;
        if (warm > 200)
            warm = 200;
        if (s_latency (self, mode, rig.client, warm, self->latency_jobs))
            goto done;
    }
    rc = 0;

done:
    s_rig_stop (&rig);
    return rc;
}

//  Phase 3: a fresh broker, M jobs on a queue nobody serves.
static int
s_phase_memory (bench_t *self)
{
    int rc = -1;
    broker_proc_t broker;
    memset (&broker, 0, sizeof broker);
    drover_client_t *client = NULL;
    size_t count = (size_t) self->memory_jobs;
    drover_future_t **futures = calloc (count, sizeof *futures);
    const void **datas = calloc (count, sizeof *datas);
    size_t *sizes = calloc (count, sizeof *sizes);
    if (!futures || !datas || !sizes) {
        cli_error ("out of memory");
        goto done;
    }
    for (size_t index = 0; index < count; index++) {
        datas [index] = self->payload;
        sizes [index] = (size_t) self->size;
    }
    if (s_broker_start (&broker, self->droverd, &self->ring, self->tmp_dir, "broker-memory",
                        self->insecure, self->memory_durable, NULL))
        goto done;
    if (s_client_connect (self, &broker, &client))
        goto done;
    self->rss_before_kb = s_rss_kb (broker.pid);
    drover_job_opts_t opts = DROVER_JOB_OPTS_INIT;
    for (size_t start = 0; start < count; start += 1000) {
        size_t n = count - start < 1000? count - start: 1000;
        int err = drover_submit_many (client, IDLE_QUEUE, datas + start, sizes + start, n,
                                      &opts, futures + start);
        if (err) {
            cli_error ("bench: cannot submit: %s", drover_strerror (err));
            goto done;
        }
    }
    int64_t deadline = cli_now_ms () + STALL_MS;
    for (size_t index = 0; index < count; index++) {
        int err = cli_future_wait (futures [index], CLI_WAIT_ACCEPTED, deadline);
        if (err) {
            cli_error ("bench: job %zu of %zu not accepted: %s", index + 1, count,
                       err == DROVER_EINTR? "interrupted": drover_strerror (err));
            goto done;
        }
    }
    self->rss_after_kb = s_rss_kb (broker.pid);
    if (self->rss_before_kb < 0 || self->rss_after_kb < 0) {
        cli_error ("bench: cannot read the broker's VmRSS from /proc/%d/status", broker.pid);
        goto done;
    }
    self->bytes_per_job = (self->rss_after_kb - self->rss_before_kb) * 1024.0 / (double) count;
    rc = 0;

done:
    for (size_t index = 0; futures && index < count; index++)
        drover_future_destroy (&futures [index]);
    drover_client_destroy (&client);
    s_broker_stop (&broker);
    free (futures);
    free (datas);
    free (sizes);
    return rc;
}

//  Phase 4: journal size ------------------------------------------------------------

//  Sum of the sizes of the regular files in dir, or -1 when it cannot be
//  read (not there yet).
static double
s_dir_bytes (const char *dir)
{
    DIR *handle = opendir (dir);
    if (!handle)
        return -1;
    double total = 0;
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        struct stat info;
        if (fstatat (dirfd (handle), entry->d_name, &info, AT_SYMLINK_NOFOLLOW) == 0
        &&  S_ISREG (info.st_mode))
            total += (double) info.st_size;
    }
    closedir (handle);
    return total;
}

//  Samples a directory's size every JOURNAL_SAMPLE_MS on its own thread.
typedef struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char *dir;
    bool stop;
    double peak;                //  largest sample, -1 before the first
    long samples;
} sampler_t;

static void
s_sampler_take (sampler_t *sampler)
{
    double bytes = s_dir_bytes (sampler->dir);
    pthread_mutex_lock (&sampler->lock);
    if (bytes >= 0) {
        if (bytes > sampler->peak)
            sampler->peak = bytes;
        sampler->samples++;
    }
    pthread_mutex_unlock (&sampler->lock);
}

static void *
s_sampler_run (void *arg)
{
    sampler_t *sampler = (sampler_t *) arg;
    pthread_mutex_lock (&sampler->lock);
    while (!sampler->stop) {
        pthread_mutex_unlock (&sampler->lock);
        s_sampler_take (sampler);
        pthread_mutex_lock (&sampler->lock);
        struct timespec deadline;
        clock_gettime (CLOCK_REALTIME, &deadline);
        deadline.tv_nsec += JOURNAL_SAMPLE_MS * 1000000L;
        while (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
        while (!sampler->stop
           &&  pthread_cond_timedwait (&sampler->cond, &sampler->lock, &deadline) == 0)
            ;
    }
    pthread_mutex_unlock (&sampler->lock);
    return NULL;
}

//  Lines of a file that contain text.
static long
s_count_lines (const char *path, const char *text)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    long count = 0;
    char line [1024];
    while (fgets (line, sizeof line, file))
        if (strstr (line, text))
            count++;
    fclose (file);
    return count;
}

//  A durable broker with a 1 s result TTL, J jobs pipelined through it;
//  the journal directory's size sampled all along.
static int
s_phase_journal (bench_t *self)
{
    int rc = -1;
    rig_t rig;
    sampler_t sampler;
    memset (&sampler, 0, sizeof sampler);
    bool sampling = false;
    if (s_rig_start (self, &rig, "broker-journal", true, JOURNAL_RESULT_TTL))
        goto done;
    sampler.dir = zsys_sprintf ("%s/journal", rig.broker.data_dir);
    if (!sampler.dir) {
        cli_error ("out of memory");
        goto done;
    }
    sampler.peak = -1;
    pthread_mutex_init (&sampler.lock, NULL);
    pthread_cond_init (&sampler.cond, NULL);
    if (pthread_create (&sampler.thread, NULL, s_sampler_run, &sampler)) {
        cli_error ("bench: cannot start a thread");
        pthread_mutex_destroy (&sampler.lock);
        pthread_cond_destroy (&sampler.cond);
        goto done;
    }
    sampling = true;
    if (s_pipelined (self, rig.client, (uint64_t) self->journal_jobs, (uint64_t) self->window,
                     &self->journal_seconds))
        goto done;
    self->journal_jobs_per_s = self->journal_seconds > 0
                             ? self->journal_jobs / self->journal_seconds: 0;
    self->journal_end_bytes = s_dir_bytes (sampler.dir);
    //  Idle: every result expires (its forget record is journaled), and
    //  the broker may compact.
    int64_t idle_end = cli_now_ms () + JOURNAL_SETTLE_MS;
    while (cli_now_ms () < idle_end && !cli_interrupted ())
        usleep (50 * 1000);
    if (cli_interrupted ()) {
        cli_error ("bench: interrupted");
        goto done;
    }
    self->journal_idle_bytes = s_dir_bytes (sampler.dir);
    self->journal_compactions = s_count_lines (rig.broker.log, "journal compacted from");
    rc = 0;

done:
    if (sampling) {
        pthread_mutex_lock (&sampler.lock);
        sampler.stop = true;
        pthread_cond_signal (&sampler.cond);
        pthread_mutex_unlock (&sampler.lock);
        pthread_join (sampler.thread, NULL);
        s_sampler_take (&sampler);
        if (rc == 0) {
            if (self->journal_end_bytes > sampler.peak)
                sampler.peak = self->journal_end_bytes;
            if (self->journal_idle_bytes > sampler.peak)
                sampler.peak = self->journal_idle_bytes;
            self->journal_peak_bytes = sampler.peak;
            self->journal_samples = sampler.samples;
        }
        pthread_mutex_destroy (&sampler.lock);
        pthread_cond_destroy (&sampler.cond);
    }
    zstr_free (&sampler.dir);
    s_rig_stop (&rig);
    return rc;
}

//  Phase 5: shared state and locks ----------------------------------------------------

//  One replica tracks STATE_NS; K writer threads share one client (the SDK
//  pipelines their concurrent requests) and SET keys "k/0".."k/999", each
//  key written by one thread only so that its last value is known; then one
//  writer SETs "lat/seq" with its send time, and the replica's callback in
//  this process (same CLOCK_MONOTONIC) takes now - sent; then one client
//  takes and releases a lock in a loop.

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool go;                    //  the writers may start
    drover_client_t *client;
    long writers;               //  K
    long sets;                  //  N, shared out among the writers
    char (*expect) [STATE_VALUE_SIZE];  //  last value written, per key
    atomic_long failed;         //  SETs that did not succeed
    char first_error [256];
    int64_t end_ns;             //  latest last reply of any writer
} state_run_t;

typedef struct {
    state_run_t *run;
    long index;                 //  0..K-1
    pthread_t thread;
} state_writer_t;

//  A 64-byte value: who wrote it and when, padded with letters.
static void
s_state_value (char value [STATE_VALUE_SIZE], long writer, long sequence)
{
    int used = snprintf (value, STATE_VALUE_SIZE, "w%ld s%ld ", writer, sequence);
    for (int index = used; index < STATE_VALUE_SIZE; index++)
        value [index] = (char) ('a' + index % 26);
}

static void *
s_state_writer (void *arg)
{
    state_writer_t *writer = (state_writer_t *) arg;
    state_run_t *run = writer->run;
    pthread_mutex_lock (&run->lock);
    while (!run->go)
        pthread_cond_wait (&run->cond, &run->lock);
    pthread_mutex_unlock (&run->lock);
    //  This writer owns the keys index, index + K, ...; it does its share
    //  of the N SETs round-robin over them.
    long owned = (STATE_KEYS - writer->index + run->writers - 1) / run->writers;
    long share = run->sets / run->writers + (writer->index < run->sets % run->writers);
    char key [32], value [STATE_VALUE_SIZE];
    for (long sequence = 0; sequence < share && !cli_interrupted (); sequence++) {
        long key_index = writer->index + (sequence % owned) * run->writers;
        snprintf (key, sizeof key, "k/%ld", key_index);
        s_state_value (value, writer->index, sequence);
        int err = drover_state_set (run->client, STATE_NS, key, value, sizeof value, NULL,
                                    STALL_MS);
        if (err) {
            if (atomic_fetch_add (&run->failed, 1) == 0)
                snprintf (run->first_error, sizeof run->first_error, "SET %s: %s", key,
                          drover_strerror (err));
            if (err == DROVER_ECLOSED || err == DROVER_ETIMEDOUT)
                break;
        }
        else
            memcpy (run->expect [key_index], value, sizeof value);
    }
    int64_t end = s_now_ns ();
    pthread_mutex_lock (&run->lock);
    if (end > run->end_ns)
        run->end_ns = end;
    pthread_mutex_unlock (&run->lock);
    return NULL;
}

//  Propagation samples, filled in by the replica's callback.
typedef struct {
    pthread_mutex_t lock;
    long warmup, count;         //  sequences 0..warmup-1 are not timed
    double *samples;            //  ms, < 0 until seen
    long seen;                  //  timed samples in
    atomic_long updates;        //  "k/" updates seen by the replica
} state_watch_t;

static void
s_state_on_bulk (const char *ns, const char *key, const void *value, size_t size,
                 uint64_t version, void *arg)
{
    (void) ns; (void) key; (void) value; (void) size; (void) version;
    state_watch_t *watch = (state_watch_t *) arg;
    atomic_fetch_add (&watch->updates, 1);
}

//  value: "SEQUENCE SENT_NS"
static void
s_state_on_latency (const char *ns, const char *key, const void *value, size_t size,
                    uint64_t version, void *arg)
{
    (void) ns; (void) key; (void) version;
    int64_t now = s_now_ns ();
    state_watch_t *watch = (state_watch_t *) arg;
    char text [64];
    if (!value || size == 0 || size >= sizeof text)
        return;
    memcpy (text, value, size);
    text [size] = 0;
    long sequence;
    long long sent;
    if (sscanf (text, "%ld %lld", &sequence, &sent) != 2)
        return;
    long index = sequence - watch->warmup;
    pthread_mutex_lock (&watch->lock);
    if (index >= 0 && index < watch->count && watch->samples [index] < 0) {
        watch->samples [index] = (double) (now - sent) / 1e6;
        watch->seen++;
    }
    pthread_mutex_unlock (&watch->lock);
}

//  Waits until the replica holds every expected "k/" value; returns 0 with
//  *checked set, or -1 (printed) when it has not within STALL_MS.
static int
s_state_converged (drover_replica_t *replica, char (*expect) [STATE_VALUE_SIZE],
                   long *checked)
{
    int64_t deadline = cli_now_ms () + STALL_MS;
    char key [32];
    while (true) {
        long matched = 0, wanted = 0, first_bad = -1;
        for (long index = 0; index < STATE_KEYS; index++) {
            if (!expect [index][0])
                continue;           //  never written
            wanted++;
            snprintf (key, sizeof key, "k/%ld", index);
            void *value = NULL;
            size_t size = 0;
            if (drover_replica_get (replica, STATE_NS, key, &value, &size, NULL) == 0
            &&  size == STATE_VALUE_SIZE && memcmp (value, expect [index], size) == 0)
                matched++;
            else
            if (first_bad < 0)
                first_bad = index;
            free (value);
        }
        if (matched == wanted) {
            *checked = wanted;
            return 0;
        }
        if (cli_interrupted ()) {
            cli_error ("bench: interrupted");
            return -1;
        }
        if (cli_now_ms () > deadline) {
            cli_error ("bench: the replica still differs from what was written %d s after the "
                       "last SET: %ld of %ld keys differ (first: k/%ld)",
                       STALL_MS / 1000, wanted - matched, wanted, first_bad);
            return -1;
        }
        usleep (2 * 1000);
    }
}

static int
s_state_throughput (bench_t *self, drover_client_t *client, drover_replica_t *replica,
                    state_watch_t *watch)
{
    int rc = -1;
    state_run_t run;
    memset (&run, 0, sizeof run);
    pthread_mutex_init (&run.lock, NULL);
    pthread_cond_init (&run.cond, NULL);
    atomic_init (&run.failed, 0);
    run.client = client;
    run.writers = self->state_writers;
    run.expect = calloc (STATE_KEYS, sizeof *run.expect);
    state_writer_t *writers = calloc ((size_t) run.writers, sizeof *writers);
    long started = 0;
    if (!run.expect || !writers) {
        cli_error ("out of memory");
        goto done;
    }
    //  Warm-up, untimed and from this thread: every key once, so that the
    //  broker's and the replica's tables hold them all before the clock runs.
    char key [32], value [STATE_VALUE_SIZE];
    for (long index = 0; index < STATE_KEYS; index++) {
        snprintf (key, sizeof key, "k/%ld", index);
        s_state_value (value, -1, index);
        int err = drover_state_set (client, STATE_NS, key, value, sizeof value, NULL, STALL_MS);
        if (err) {
            cli_error ("bench: state SET %s: %s", key, drover_strerror (err));
            goto done;
        }
        memcpy (run.expect [index], value, sizeof value);
    }
    run.sets = self->state_sets;
    for (; started < run.writers; started++) {
        writers [started].run = &run;
        writers [started].index = started;
        if (pthread_create (&writers [started].thread, NULL, s_state_writer, &writers [started])) {
            cli_error ("bench: cannot start a thread");
            break;
        }
    }
    long updates_before = atomic_load (&watch->updates);
    pthread_mutex_lock (&run.lock);
    int64_t start = s_now_ns ();
    run.go = true;
    pthread_cond_broadcast (&run.cond);
    pthread_mutex_unlock (&run.lock);
    for (long index = 0; index < started; index++)
        pthread_join (writers [index].thread, NULL);
    if (started < run.writers)
        goto done;
    if (atomic_load (&run.failed)) {
        cli_error ("bench: %ld of %ld state SETs failed; first: %s", atomic_load (&run.failed),
                   run.sets, run.first_error);
        goto done;
    }
    if (cli_interrupted ()) {
        cli_error ("bench: interrupted");
        goto done;
    }
    self->state_seconds = (run.end_ns - start) / 1e9;
    self->state_set_per_s = self->state_seconds > 0? run.sets / self->state_seconds: 0;
    if (s_state_converged (replica, run.expect, &self->state_checked))
        goto done;
    self->state_catchup_ms = (s_now_ns () - run.end_ns) / 1e6;
    if (self->state_catchup_ms < 0)
        self->state_catchup_ms = 0;
    self->state_updates_seen = atomic_load (&watch->updates) - updates_before;
    rc = 0;

done:
    pthread_mutex_destroy (&run.lock);
    pthread_cond_destroy (&run.cond);
    free (run.expect);
    free (writers);
    return rc;
}

static int
s_state_latency (bench_t *self, drover_client_t *client, state_watch_t *watch)
{
    long total = watch->warmup + watch->count;
    char value [64];
    for (long sequence = 0; sequence < total; sequence++) {
        if (cli_interrupted ()) {
            cli_error ("bench: interrupted");
            return -1;
        }
        int size = snprintf (value, sizeof value, "%ld %lld", sequence, (long long) s_now_ns ());
        int err = drover_state_set (client, STATE_NS, "lat/seq", value, (size_t) size, NULL,
                                    STALL_MS);
        if (err) {
            cli_error ("bench: state SET lat/seq: %s", drover_strerror (err));
            return -1;
        }
    }
    //  The last update may still be on its way
    int64_t deadline = cli_now_ms () + 5000;
    while (cli_now_ms () < deadline && !cli_interrupted ()) {
        pthread_mutex_lock (&watch->lock);
        bool all = watch->seen == watch->count;
        pthread_mutex_unlock (&watch->lock);
        if (all)
            break;
        usleep (2 * 1000);
    }
    pthread_mutex_lock (&watch->lock);
    long seen = watch->seen;
    double *sorted = malloc ((size_t) (seen > 0? seen: 1) * sizeof *sorted);
    long used = 0;
    double sum = 0;
    for (long index = 0; sorted && index < watch->count; index++)
        if (watch->samples [index] >= 0) {
            sorted [used++] = watch->samples [index];
            sum += watch->samples [index];
        }
    pthread_mutex_unlock (&watch->lock);
    if (!sorted) {
        cli_error ("out of memory");
        return -1;
    }
    self->prop_missed = watch->count - used;
    if (used > 0) {
        qsort (sorted, (size_t) used, sizeof *sorted, s_compare_double);
        self->prop_p50_ms = s_percentile (sorted, (size_t) used, 50);
        self->prop_p99_ms = s_percentile (sorted, (size_t) used, 99);
        self->prop_max_ms = sorted [used - 1];
        self->prop_mean_ms = sum / (double) used;
    }
    free (sorted);
    //  Updates the callback never saw are counted, not timed: a replica
    //  that takes a fresh snapshot (after a gap, or a beacon it took for
    //  one) tells its watchers only the value it finds, so the updates it
    //  skipped over are folded into that one.
    if (used == 0) {
        cli_error ("bench: the replica's callback saw none of %ld timed updates", watch->count);
        return -1;
    }
    return 0;
}

//  Uncontended lock round trips: acquire and release one name, one client,
//  for lock_pairs pairs or LOCK_SECONDS, whichever comes first.
static int
s_lock_pairs (bench_t *self, drover_client_t *client)
{
    //  Warm-up, untimed
    for (int index = 0; index < 50; index++) {
        int err = drover_lock (client, "bench-lock", 5000, NULL);
        if (err == 0)
            err = drover_unlock (client, "bench-lock");
        if (err) {
            cli_error ("bench: lock: %s", drover_strerror (err));
            return -1;
        }
    }
    int64_t start = s_now_ns ();
    int64_t stop = start + (int64_t) LOCK_SECONDS * 1000000000;
    long pairs = 0;
    while (pairs < self->lock_pairs && !cli_interrupted ()) {
        uint64_t fence = 0;
        int err = drover_lock (client, "bench-lock", 5000, &fence);
        if (err == 0)
            err = drover_unlock (client, "bench-lock");
        if (err) {
            cli_error ("bench: lock pair %ld: %s", pairs + 1, drover_strerror (err));
            return -1;
        }
        pairs++;
        if ((pairs & 15) == 0 && s_now_ns () >= stop)
            break;
    }
    if (cli_interrupted ()) {
        cli_error ("bench: interrupted");
        return -1;
    }
    self->lock_seconds = (s_now_ns () - start) / 1e9;
    self->lock_pairs_done = pairs;
    self->lock_pairs_per_s = self->lock_seconds > 0? pairs / self->lock_seconds: 0;
    return 0;
}

//  A fresh broker (durable unless --durability none), no workers.
static int
s_phase_state (bench_t *self)
{
    int rc = -1;
    broker_proc_t broker;
    memset (&broker, 0, sizeof broker);
    drover_client_t *reader = NULL, *writer = NULL;
    drover_replica_t *replica = NULL;
    state_watch_t *watch = calloc (1, sizeof *watch);
    if (!watch) {
        cli_error ("out of memory");
        return -1;
    }
    pthread_mutex_init (&watch->lock, NULL);
    atomic_init (&watch->updates, 0);
    watch->count = self->state_latency_sets;
    watch->warmup = watch->count / 10 < 20? 20: watch->count / 10 > 200? 200: watch->count / 10;
    watch->samples = malloc ((size_t) (watch->count > 0? watch->count: 1) * sizeof (double));
    if (!watch->samples) {
        cli_error ("out of memory");
        goto done;
    }
    for (long index = 0; index < watch->count; index++)
        watch->samples [index] = -1;

    if (s_broker_start (&broker, self->droverd, &self->ring, self->tmp_dir, "broker-state",
                        self->insecure, self->state_durable, NULL))
        goto done;
    //  The replica has a client of its own (for its snapshots), apart from
    //  the writers' one.
    if (s_client_connect (self, &broker, &reader) || s_client_connect (self, &broker, &writer))
        goto done;
    replica = drover_replica_new (reader);
    if (!replica) {
        cli_error ("bench: cannot create a replica (see above)");
        goto done;
    }
    int err = drover_replica_track (replica, STATE_NS, START_TIMEOUT_MS);
    if (err == 0)
        err = drover_replica_watch (replica, STATE_NS, "k/", s_state_on_bulk, watch);
    if (err == 0)
        err = drover_replica_watch (replica, STATE_NS, "lat/", s_state_on_latency, watch);
    if (err) {
        cli_error ("bench: replica of '%s': %s", STATE_NS, drover_strerror (err));
        goto done;
    }
    rc = 0;
    if (self->state_sets > 0 && s_state_throughput (self, writer, replica, watch))
        rc = -1;
    if (!cli_interrupted () && watch->count > 0 && s_state_latency (self, writer, watch))
        rc = -1;
    if (!cli_interrupted () && self->lock_pairs > 0) {
        if (s_lock_pairs (self, writer))
            rc = -1;
    }

done:
    //  The replica goes first: its callbacks use watch
    drover_replica_destroy (&replica);
    drover_client_destroy (&writer);
    drover_client_destroy (&reader);
    s_broker_stop (&broker);
    pthread_mutex_destroy (&watch->lock);
    free (watch->samples);
    free (watch);
    return rc;
}

//  The raw floor -----------------------------------------------------------------

//  Runs raw_floor --json with the given transport settings; *rate gets its
//  jobs_per_s. Returns 0 or -1 (printed).
static int
s_raw_run (bench_t *self, bool curve, int batch, double *rate)
{
    char jobs [32], workers [16], window [16], batch_text [16], size [32], inflight [32];
    snprintf (jobs, sizeof jobs, "%ld", self->jobs);
    snprintf (workers, sizeof workers, "%ld", self->workers);
    snprintf (window, sizeof window, "%d", RAW_WINDOW);
    snprintf (batch_text, sizeof batch_text, "%d", batch);
    snprintf (size, sizeof size, "%ld", self->size);
    snprintf (inflight, sizeof inflight, "%ld", self->window);
    char *argv [] = {
        (char *) self->raw_path, "--jobs", jobs, "--workers", workers, "--window", window,
        "--batch", batch_text, "--size", size, "--inflight", inflight,
        curve? "--curve": "--no-curve", "--json", NULL
    };
    int fds [2];
    if (pipe (fds) || fcntl (fds [0], F_SETFD, FD_CLOEXEC) || fcntl (fds [1], F_SETFD, FD_CLOEXEC)) {
        cli_error ("bench: pipe: %s", strerror (errno));
        return -1;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    posix_spawn_file_actions_adddup2 (&actions, fds [1], STDOUT_FILENO);
    fflush (NULL);
    pid_t pid;
    int err = posix_spawn (&pid, argv [0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy (&actions);
    close (fds [1]);
    if (err) {
        close (fds [0]);
        cli_error ("bench: cannot start %s: %s", argv [0], strerror (err));
        return -1;
    }
    char output [4096];
    size_t used = 0;
    ssize_t got;
    while ((got = read (fds [0], output + used, sizeof output - 1 - used)) > 0
       ||  (got < 0 && errno == EINTR))
        if (got > 0)
            used += (size_t) got;
    close (fds [0]);
    output [used] = 0;
    int status = 0;
    while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
        ;
    const char *field = strstr (output, "\"jobs_per_s\":");
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0 || !field) {
        char text [64];
        cli_describe_status (status, text, sizeof text);
        cli_error ("bench: %s (%s, batch %d) %s without a result", argv [0],
                   curve? "CURVE": "no CURVE", batch, text);
        return -1;
    }
    *rate = strtod (field + strlen ("\"jobs_per_s\":"), NULL);
    return 0;
}

//  Report --------------------------------------------------------------------------

static void
s_json_number (const char *name, double value, int decimals, bool last)
{
    if (value < 0 || value != value)
        printf ("\"%s\":null%s", name, last? "": ",");
    else
        printf ("\"%s\":%.*f%s", name, decimals, value, last? "": ",");
}

//  "name":"text", with quotes and backslashes escaped, control characters dropped
static void
s_json_string (const char *name, const char *text)
{
    printf ("\"%s\":\"", name);
    for (const char *p = text; *p; p++)
        if (*p == '"' || *p == '\\')
            printf ("\\%c", *p);
        else
        if ((unsigned char) *p >= 0x20)
            putchar (*p);
    printf ("\",");
}

//  The figures of one mode, each name prefixed ("durable_", "inmem_").
static void
s_report_json_mode (const char *prefix, bench_mode_t *mode)
{
    char name [64];
#define MODE_FIELD(suffix, value, decimals) \
    snprintf (name, sizeof name, "%s%s", prefix, suffix); \
    s_json_number (name, (value), (decimals), false);
    MODE_FIELD ("seconds", mode->seconds, 6);
    MODE_FIELD ("jobs_per_s", mode->jobs_per_s, 1);
    MODE_FIELD ("latency_p50_ms", mode->p50_ms, 4);
    MODE_FIELD ("latency_p99_ms", mode->p99_ms, 4);
    MODE_FIELD ("latency_mean_ms", mode->mean_ms, 4);
    MODE_FIELD ("latency_max_ms", mode->max_ms, 4);
    MODE_FIELD ("cpu_broker_s", mode->cpu_broker_s, 3);
    MODE_FIELD ("cpu_workers_s", mode->cpu_workers_s, 3);
    MODE_FIELD ("cpu_producer_s", mode->cpu_producer_s, 3);
    MODE_FIELD ("broker_rss_after_throughput_kb", (double) mode->rss_after_throughput_kb, 0);
#undef MODE_FIELD
}

static double
s_durable_ratio (bench_t *self)
{
    return self->durable.jobs_per_s > 0 && self->inmem.jobs_per_s > 0
         ? self->durable.jobs_per_s / self->inmem.jobs_per_s: -1;
}

static void
s_report_json (bench_t *self)
{
    bench_mode_t *primary = s_primary (self);
    double ratio = primary->jobs_per_s > 0 && self->raw_jobs_per_s > 0
                 ? primary->jobs_per_s / self->raw_jobs_per_s: -1;
    printf ("{\"name\":\"drover_bench\",\"curve\":%s,\"size\":%ld,\"workers\":%ld,"
            "\"prefetch\":%d,\"jobs\":%ld,\"window\":%ld,\"durability\":\"%s\","
            "\"primary\":\"%s\",",
            self->insecure? "false": "true", self->size, self->workers, WORKER_PREFETCH,
            self->jobs, self->window, self->durability,
            primary->durable? "durable": "inmem");
    //  The classic figures, from the primary mode (in memory when it ran)
    s_json_number ("seconds", primary->seconds, 6, false);
    s_json_number ("jobs_per_s", primary->jobs_per_s, 1, false);
    printf ("\"latency_jobs\":%ld,", self->latency_jobs);
    s_json_number ("latency_p50_ms", primary->p50_ms, 4, false);
    s_json_number ("latency_p99_ms", primary->p99_ms, 4, false);
    s_json_number ("latency_mean_ms", primary->mean_ms, 4, false);
    s_json_number ("latency_max_ms", primary->max_ms, 4, false);
    s_report_json_mode ("inmem_", &self->inmem);
    s_report_json_mode ("durable_", &self->durable);
    s_json_number ("durable_to_inmem_ratio", s_durable_ratio (self), 4, false);
    printf ("\"memory_jobs\":%ld,\"memory_durable\":%s,", self->memory_jobs,
            self->memory_durable? "true": "false");
    s_json_number ("broker_rss_before_kb", (double) self->rss_before_kb, 0, false);
    s_json_number ("broker_rss_after_kb", (double) self->rss_after_kb, 0, false);
    s_json_number ("broker_bytes_per_queued_job", self->bytes_per_job, 1, false);
    s_json_number ("broker_rss_after_throughput_kb", (double) primary->rss_after_throughput_kb,
                   0, false);
    s_json_number ("cpu_broker_s", primary->cpu_broker_s, 3, false);
    s_json_number ("cpu_workers_s", primary->cpu_workers_s, 3, false);
    s_json_number ("cpu_producer_s", primary->cpu_producer_s, 3, false);
    printf ("\"journal_jobs\":%ld,\"journal_result_ttl_s\":%s,\"journal_sample_ms\":%d,",
            self->journal_jobs, JOURNAL_RESULT_TTL, JOURNAL_SAMPLE_MS);
    s_json_number ("journal_seconds", self->journal_seconds, 6, false);
    s_json_number ("journal_run_jobs_per_s", self->journal_jobs_per_s, 1, false);
    s_json_number ("journal_end_bytes", self->journal_end_bytes, 0, false);
    s_json_number ("journal_peak_bytes", self->journal_peak_bytes, 0, false);
    s_json_number ("journal_idle_bytes", self->journal_idle_bytes, 0, false);
    s_json_number ("journal_samples", (double) self->journal_samples, 0, false);
    s_json_number ("journal_compactions", (double) self->journal_compactions, 0, false);
    printf ("\"state_sets\":%ld,\"state_writers\":%ld,\"state_keys\":%d,"
            "\"state_value_size\":%d,\"state_durable\":%s,\"state_propagation_sets\":%ld,",
            self->skip_state? 0: self->state_sets, self->state_writers, STATE_KEYS,
            STATE_VALUE_SIZE, self->state_durable? "true": "false",
            self->skip_state? 0: self->state_latency_sets);
    s_json_number ("state_seconds", self->state_seconds, 6, false);
    s_json_number ("state_set_per_s", self->state_set_per_s, 1, false);
    s_json_number ("state_replica_catchup_ms", self->state_catchup_ms, 3, false);
    s_json_number ("state_replica_keys_checked", (double) self->state_checked, 0, false);
    s_json_number ("state_replica_updates_seen", (double) self->state_updates_seen, 0, false);
    s_json_number ("state_propagation_p50_ms", self->prop_p50_ms, 4, false);
    s_json_number ("state_propagation_p99_ms", self->prop_p99_ms, 4, false);
    s_json_number ("state_propagation_mean_ms", self->prop_mean_ms, 4, false);
    s_json_number ("state_propagation_max_ms", self->prop_max_ms, 4, false);
    s_json_number ("state_propagation_missed", (double) self->prop_missed, 0, false);
    printf ("\"lock_pairs\":%ld,", self->skip_state? 0: self->lock_pairs);
    s_json_number ("lock_pairs_done", (double) self->lock_pairs_done, 0, false);
    s_json_number ("lock_seconds", self->lock_seconds, 6, false);
    s_json_number ("lock_pairs_per_s", self->lock_pairs_per_s, 1, false);
    s_json_string ("lock_note", self->lock_note);
    printf ("\"raw_window\":%d,", RAW_WINDOW);
    s_json_number ("raw_floor_jobs_per_s", self->raw_jobs_per_s, 1, false);
    s_json_number ("ratio_to_floor", ratio, 4, false);
    s_json_number ("raw_floor_batch10_jobs_per_s", self->raw_batch10_jobs_per_s, 1, false);
    s_json_number (self->insecure? "raw_floor_curve_jobs_per_s": "raw_floor_plain_jobs_per_s",
                   self->raw_other_jobs_per_s, 1, false);
    s_json_string ("raw_note", self->raw_note);
    printf ("\"ok\":%s}\n", self->failures? "false": "true");
}

static void
s_report_text_mode (bench_t *self, bench_mode_t *mode)
{
    const char *label = mode->durable? "durable (fsync)": "in memory";
    char what [64];
    snprintf (what, sizeof what, "pipelined throughput, %s", label);
    if (mode->jobs_per_s > 0)
        printf ("  %-44s %10.0f jobs/s   (%ld jobs in %.3f s, window %ld)\n",
                what, mode->jobs_per_s, self->jobs, mode->seconds, self->window);
    else
        printf ("  %-44s %10s\n", what, "failed");
    if (self->latency_jobs > 0) {
        snprintf (what, sizeof what, "latency, one job at a time, %s", label);
        if (mode->p50_ms >= 0)
            printf ("  %-44s p50 %.3f ms, p99 %.3f ms   (%ld jobs; mean %.3f, max %.3f)\n",
                    what, mode->p50_ms, mode->p99_ms, self->latency_jobs, mode->mean_ms,
                    mode->max_ms);
        else
            printf ("  %-44s %10s\n", what, "failed");
    }
    if (mode->cpu_broker_s >= 0) {
        snprintf (what, sizeof what, "CPU during throughput, %s", label);
        printf ("  %-44s broker %.2f s, workers %.2f s, producer %.2f s\n",
                what, mode->cpu_broker_s, mode->cpu_workers_s, mode->cpu_producer_s);
    }
}

static void
s_report_text (bench_t *self)
{
    const char *security = self->insecure? "plaintext": "CURVE";
    bench_mode_t *primary = s_primary (self);
    printf ("drover bench: %ld-byte jobs, %ld worker processes (concurrency 1, prefetch %d), %s, "
            "loopback\n\n", self->size, self->workers, WORKER_PREFETCH, security);
    printf ("  %-44s %s\n", "measure", "result");
    if (self->inmem.run)
        s_report_text_mode (self, &self->inmem);
    if (self->durable.run)
        s_report_text_mode (self, &self->durable);
    if (s_durable_ratio (self) >= 0)
        printf ("  %-44s %10.2f x        (target: >= 0.33)\n", "durable / in memory",
                s_durable_ratio (self));
    if (self->raw_jobs_per_s > 0) {
        printf ("  %-44s %10.0f jobs/s   (window %d, batch 1, %s)\n", "raw floor, same settings",
                self->raw_jobs_per_s, RAW_WINDOW, security);
        if (primary->jobs_per_s > 0)
            printf ("  %-44s %10.2f x        (target: >= 0.50)\n",
                    primary->durable? "drover durable / raw floor": "drover in memory / raw floor",
                    primary->jobs_per_s / self->raw_jobs_per_s);
    }
    if (self->raw_batch10_jobs_per_s > 0)
        printf ("  %-44s %10.0f jobs/s   (context)\n", "raw floor, batch 10",
                self->raw_batch10_jobs_per_s);
    if (self->raw_other_jobs_per_s > 0)
        printf ("  %-44s %10.0f jobs/s   (context)\n",
                self->insecure? "raw floor, CURVE": "raw floor, no CURVE",
                self->raw_other_jobs_per_s);
    if (*self->raw_note)
        printf ("  %-44s %s\n", "raw floor", self->raw_note);
    if (self->memory_jobs > 0) {
        if (self->bytes_per_job >= 0)
            printf ("  %-44s %10.0f bytes    (%ld jobs queued, %s; RSS %.1f -> %.1f MiB)\n",
                    "broker memory per queued job", self->bytes_per_job, self->memory_jobs,
                    self->memory_durable? "durable": "in memory",
                    self->rss_before_kb / 1024.0, self->rss_after_kb / 1024.0);
        else
            printf ("  %-44s %10s\n", "broker memory per queued job", "failed");
    }
    if (self->journal_jobs > 0) {
        if (self->journal_peak_bytes >= 0)
            printf ("  %-44s %10.1f MiB      (end %.1f MiB, idle %.1f MiB; %ld jobs at %.0f/s, "
                    "result TTL %s s, %ld compactions)\n",
                    "journal size, peak", self->journal_peak_bytes / 1048576.0,
                    self->journal_end_bytes / 1048576.0, self->journal_idle_bytes / 1048576.0,
                    self->journal_jobs, self->journal_jobs_per_s, JOURNAL_RESULT_TTL,
                    self->journal_compactions);
        else
            printf ("  %-44s %10s\n", "journal size", "failed");
    }
    if (!self->skip_state) {
        const char *broker = self->state_durable? "durable": "in memory";
        if (self->state_sets > 0) {
            if (self->state_set_per_s >= 0)
                printf ("  %-44s %10.0f SETs/s   (%ld SETs of %d bytes over %d keys in %.3f s, "
                        "%ld writer threads, %s; replica equal %.1f ms after the last reply)\n",
                        "state SET throughput, 1 replica", self->state_set_per_s,
                        self->state_sets, STATE_VALUE_SIZE, STATE_KEYS, self->state_seconds,
                        self->state_writers, broker, self->state_catchup_ms);
            else
                printf ("  %-44s %10s\n", "state SET throughput, 1 replica", "failed");
        }
        if (self->state_latency_sets > 0) {
            if (self->prop_p50_ms >= 0)
                printf ("  %-44s p50 %.3f ms, p99 %.3f ms   (%ld sequential SETs, %s; mean %.3f, "
                        "max %.3f; %ld not seen by the callback)\n",
                        "state propagation, SET to replica callback", self->prop_p50_ms,
                        self->prop_p99_ms, self->state_latency_sets, broker, self->prop_mean_ms,
                        self->prop_max_ms, self->prop_missed);
            else
                printf ("  %-44s %10s\n", "state propagation, SET to replica callback", "failed");
        }
        if (self->lock_pairs > 0) {
            if (self->lock_pairs_per_s >= 0)
                printf ("  %-44s %10.0f pairs/s  (%ld lock + unlock pairs in %.3f s, one client, "
                        "uncontended)\n", "lock acquire/release", self->lock_pairs_per_s,
                        self->lock_pairs_done, self->lock_seconds);
            else
                printf ("  %-44s %10s\n", "lock acquire/release",
                        *self->lock_note? self->lock_note: "failed");
        }
    }
    if (primary->rss_after_throughput_kb >= 0)
        printf ("  %-44s %.1f MiB   (finished jobs are kept for their result TTL)\n",
                "broker RSS after throughput", primary->rss_after_throughput_kb / 1024.0);
    if (self->failures)
        printf ("\n%d measurement(s) failed (see above)\n", self->failures);
}

//  bench --------------------------------------------------------------------------

enum {
    OPT_LATENCY_JOBS = 0x4000,
    OPT_MEMORY_JOBS,
    OPT_RAW,
    OPT_SKIP_RAW,
    OPT_JSON,
    OPT_INSECURE_RUN,
    OPT_DURABILITY,
    OPT_JOURNAL_JOBS,
    OPT_SKIP_STATE,
    OPT_STATE_SETS,
    OPT_STATE_WRITERS,
    OPT_STATE_LATENCY,
    OPT_LOCK_PAIRS
};

static const char *s_usage =
    "Usage: drover bench [options]\n"
    "\n"
    "Measures Drover on this machine, over loopback, with CURVE on (unless\n"
    "--insecure): a droverd process and W echo worker processes (concurrency 1,\n"
    "prefetch 100), fresh keys in a temporary directory, everything stopped and\n"
    "removed at the end. Reports, for a durable broker (--durability fsync: the\n"
    "journal, one fdatasync per loop turn) beside an in-memory one (none):\n"
    "  - pipelined throughput: N jobs, at most WINDOW outstanding, until every\n"
    "    result is back (jobs/s), and the durable / in-memory ratio;\n"
    "  - round-trip latency, one job at a time: p50 and p99;\n"
    "  - broker memory per queued job: VmRSS growth of a fresh broker while M\n"
    "    jobs wait on a queue nobody serves;\n"
    "  - the raw-libzmq floor (raw_floor, same transport settings: W workers,\n"
    "    window 100, batch 1) and Drover's throughput as a ratio of it, plus the\n"
    "    floor with batch 10 and with the other security setting for context;\n"
    "  - journal size: J jobs through a durable broker with --result-ttl 1; the\n"
    "    size of DATA_DIR/journal sampled every 200 ms (peak), when the last\n"
    "    result is back (end), and after 3 s idle;\n"
    "  - shared state (a fresh broker, durable unless --durability none): SET\n"
    "    throughput of K writer threads sharing one client, N SETs of 64 bytes\n"
    "    over 1000 keys, with one replica tracking the namespace (checked to\n"
    "    hold every last value); propagation latency, SET to the replica's\n"
    "    watch callback in this process, one SET at a time: p50 and p99;\n"
    "    uncontended lock + unlock pairs per second, one client.\n"
    "The brokers' data directories are in the temporary directory ($TMPDIR,\n"
    "else /tmp), so that is the filesystem the journal's fsyncs measure.\n"
    "\n"
    "Options:\n"
    "  -n, --jobs N          jobs for throughput and the floor (default 200000)\n"
    "  -w, --window W        outstanding jobs at most (default 10000)\n"
    "      --latency-jobs N  timed one-at-a-time jobs (default 2000; 0 skips)\n"
    "      --memory-jobs M   jobs queued for the memory figure (default 100000;\n"
    "                        0 skips); in memory unless --durability fsync\n"
    "      --durability MODE fsync, none, or both (default both: in memory first,\n"
    "                        then durable)\n"
    "      --journal-jobs J  jobs for the journal-size figure (default 100000;\n"
    "                        0 skips)\n"
    "  -s, --size BYTES      payload (and result) size (default 64)\n"
    "      --workers W       worker processes (default 2)\n"
    "      --insecure        plaintext everywhere, for comparison\n"
    "      --raw PATH        the raw_floor program (default: next to drover, then\n"
    "                        ../bench/raw_floor, then PATH; skipped if not found)\n"
    "      --skip-raw        do not run the raw floor\n"
    "      --skip-state      do not run the shared-state and lock phase\n"
    "      --state-sets N    timed state SETs (default 20000; 0 skips)\n"
    "      --state-writers K writer threads for them (default 8)\n"
    "      --state-latency-sets N  timed one-at-a-time SETs for propagation\n"
    "                        latency (default 2000; 0 skips)\n"
    "      --lock-pairs N    lock + unlock pairs at most, for 2 s at most\n"
    "                        (default 5000; 0 skips)\n"
    "      --json            print one JSON object line with every figure (the\n"
    "                        unprefixed jobs_per_s and latency_* are in memory's,\n"
    "                        or durable's with --durability fsync)\n"
    "  -h, --help            show this help\n"
    "\n"
    "Exit: 0 when every measurement succeeded, 1 when one failed, 2 bad usage.\n";

int
cli_bench (int argc, char **argv)
{
    static const struct option options [] = {
        { "jobs",         required_argument, NULL, 'n' },
        { "window",       required_argument, NULL, 'w' },
        { "latency-jobs", required_argument, NULL, OPT_LATENCY_JOBS },
        { "memory-jobs",  required_argument, NULL, OPT_MEMORY_JOBS },
        { "durability",   required_argument, NULL, OPT_DURABILITY },
        { "journal-jobs", required_argument, NULL, OPT_JOURNAL_JOBS },
        { "size",         required_argument, NULL, 's' },
        { "workers",      required_argument, NULL, 'W' },
        { "insecure",     no_argument,       NULL, OPT_INSECURE_RUN },
        { "raw",          required_argument, NULL, OPT_RAW },
        { "skip-raw",     no_argument,       NULL, OPT_SKIP_RAW },
        { "json",         no_argument,       NULL, OPT_JSON },
        { "skip-state",   no_argument,       NULL, OPT_SKIP_STATE },
        { "state-sets",   required_argument, NULL, OPT_STATE_SETS },
        { "state-writers", required_argument, NULL, OPT_STATE_WRITERS },
        { "state-latency-sets", required_argument, NULL, OPT_STATE_LATENCY },
        { "lock-pairs",   required_argument, NULL, OPT_LOCK_PAIRS },
        { "help",         no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    bench_t self;
    memset (&self, 0, sizeof self);
    self.cmd = argv [0];
    self.jobs = DEFAULT_JOBS;
    self.window = DEFAULT_WINDOW;
    self.latency_jobs = DEFAULT_LATENCY_JOBS;
    self.memory_jobs = DEFAULT_MEMORY_JOBS;
    self.journal_jobs = DEFAULT_JOURNAL_JOBS;
    self.durability = "both";
    self.size = DEFAULT_SIZE;
    self.workers = DEFAULT_WORKERS;
    self.state_sets = DEFAULT_STATE_SETS;
    self.state_writers = DEFAULT_STATE_WRITERS;
    self.state_latency_sets = DEFAULT_STATE_LATENCY;
    self.lock_pairs = DEFAULT_LOCK_PAIRS;
    const char *cmd = self.cmd;
    int opt;
    while ((opt = cli_getopt (argc, argv, ":n:w:s:h", options)) != -1) {
        switch (opt) {
            case 'n':
                if (cli_parse_long (optarg, 1, 1000000000, &self.jobs))
                    return cli_usage (cmd, "--jobs must be 1..1000000000, not '%s'", optarg);
                break;
            case 'w':
                if (cli_parse_long (optarg, 1, 10000000, &self.window))
                    return cli_usage (cmd, "--window must be 1..10000000, not '%s'", optarg);
                break;
            case OPT_LATENCY_JOBS:
                if (cli_parse_long (optarg, 0, 100000000, &self.latency_jobs))
                    return cli_usage (cmd, "--latency-jobs must be 0..100000000, not '%s'", optarg);
                break;
            case OPT_MEMORY_JOBS:
                if (cli_parse_long (optarg, 0, 100000000, &self.memory_jobs))
                    return cli_usage (cmd, "--memory-jobs must be 0..100000000, not '%s'", optarg);
                break;
            case OPT_JOURNAL_JOBS:
                if (cli_parse_long (optarg, 0, 1000000000, &self.journal_jobs))
                    return cli_usage (cmd, "--journal-jobs must be 0..1000000000, not '%s'", optarg);
                break;
            case OPT_DURABILITY:
                if (!streq (optarg, "fsync") && !streq (optarg, "none") && !streq (optarg, "both"))
                    return cli_usage (cmd, "--durability must be fsync, none or both, not '%s'",
                                      optarg);
                self.durability = optarg;
                break;
            case 's':
                if (cli_parse_long (optarg, 1, 8 * 1024 * 1024, &self.size))
                    return cli_usage (cmd, "--size must be 1..8388608 bytes, not '%s'", optarg);
                break;
            case 'W':
                if (cli_parse_long (optarg, 1, 256, &self.workers))
                    return cli_usage (cmd, "--workers must be 1..256, not '%s'", optarg);
                break;
            case OPT_INSECURE_RUN: self.insecure = true; break;
            case OPT_RAW: self.raw_path = optarg; break;
            case OPT_SKIP_RAW: self.skip_raw = true; break;
            case OPT_JSON: self.json = true; break;
            case OPT_SKIP_STATE: self.skip_state = true; break;
            case OPT_STATE_SETS:
                if (cli_parse_long (optarg, 0, 100000000, &self.state_sets))
                    return cli_usage (cmd, "--state-sets must be 0..100000000, not '%s'", optarg);
                break;
            case OPT_STATE_WRITERS:
                if (cli_parse_long (optarg, 1, 256, &self.state_writers))
                    return cli_usage (cmd, "--state-writers must be 1..256, not '%s'", optarg);
                break;
            case OPT_STATE_LATENCY:
                if (cli_parse_long (optarg, 0, 10000000, &self.state_latency_sets))
                    return cli_usage (cmd, "--state-latency-sets must be 0..10000000, not '%s'",
                                      optarg);
                break;
            case OPT_LOCK_PAIRS:
                if (cli_parse_long (optarg, 0, 100000000, &self.lock_pairs))
                    return cli_usage (cmd, "--lock-pairs must be 0..100000000, not '%s'", optarg);
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
    if (self.raw_path && self.skip_raw)
        return cli_usage (cmd, "--raw and --skip-raw do not go together");
    if (self.raw_path && access (self.raw_path, X_OK))
        return cli_usage (cmd, "--raw: '%s' is not an executable file", self.raw_path);
    //  The broker and workers speak up for warnings only.
    setenv ("DROVER_LOG_LEVEL", "warn", 0);

    bench_mode_t *modes [2] = { &self.inmem, &self.durable };
    for (int index = 0; index < 2; index++) {
        bench_mode_t *mode = modes [index];
        mode->durable = mode == &self.durable;
        mode->run = streq (self.durability, "both")
                 || streq (self.durability, mode->durable? "fsync": "none");
        mode->seconds = mode->jobs_per_s = -1;
        mode->p50_ms = mode->p99_ms = mode->mean_ms = mode->max_ms = -1;
        mode->cpu_broker_s = mode->cpu_workers_s = mode->cpu_producer_s = -1;
        mode->rss_after_throughput_kb = -1;
    }
    self.memory_durable = !self.inmem.run;
    self.rss_before_kb = self.rss_after_kb = -1;
    self.bytes_per_job = -1;
    self.journal_seconds = self.journal_jobs_per_s = -1;
    self.journal_peak_bytes = self.journal_end_bytes = self.journal_idle_bytes = -1;
    self.journal_samples = self.journal_compactions = -1;
    self.raw_jobs_per_s = self.raw_batch10_jobs_per_s = self.raw_other_jobs_per_s = -1;
    self.state_durable = !streq (self.durability, "none");
    self.state_seconds = self.state_set_per_s = self.state_catchup_ms = -1;
    self.state_checked = self.state_updates_seen = -1;
    self.prop_p50_ms = self.prop_p99_ms = self.prop_mean_ms = self.prop_max_ms = -1;
    self.prop_missed = -1;
    self.lock_seconds = self.lock_pairs_per_s = -1;
    self.lock_pairs_done = -1;
    if (self.skip_state)
        snprintf (self.lock_note, sizeof self.lock_note, "skipped (--skip-state)");
    char *raw_found = NULL;

    self.payload = malloc ((size_t) self.size);
    if (!self.payload) {
        cli_error ("out of memory");
        return CLI_EXIT_FAILED;
    }
    for (long index = 0; index < self.size; index++)
        ((unsigned char *) self.payload) [index] = (unsigned char) ('a' + index % 26);

    self.droverd = cli_find_program (BROKER_PROGRAM, "broker");
    if (!self.droverd) {
        cli_error ("bench: cannot find %s (looked next to drover, in ../broker, and on PATH)",
                   BROKER_PROGRAM);
        goto done;
    }
    self.self = cli_self_exe ();
    if (!self.self) {
        cli_error ("bench: cannot find our own executable (/proc/self/exe)");
        goto done;
    }
    if (!self.skip_raw && !self.raw_path) {
        raw_found = cli_find_program (RAW_PROGRAM, "bench");
        self.raw_path = raw_found;
        if (!raw_found)
            snprintf (self.raw_note, sizeof self.raw_note,
                      "skipped: %s not found (next to drover, ../bench, PATH); give --raw PATH",
                      RAW_PROGRAM);
    }
    else
    if (self.skip_raw)
        snprintf (self.raw_note, sizeof self.raw_note, "skipped (--skip-raw)");

    self.tmp_dir = cli_temp_dir (cmd);
    if (!self.tmp_dir)
        goto done;
    char *keys_dir = zsys_sprintf ("%s/keys", self.tmp_dir);
    bool reused;
    int keys_rc = keys_dir? cli_keyring_open (&self.ring, keys_dir, &reused): -1;
    zstr_free (&keys_dir);
    if (keys_rc)
        goto done;

    if (!self.json) {
        printf ("drover bench: %ld jobs (window %ld), %ld latency jobs, durability %s, "
                "%ld queued for memory, %ld through the journal",
                self.jobs, self.window, self.latency_jobs, self.durability, self.memory_jobs,
                self.journal_jobs);
        if (self.skip_state)
            printf (", no state phase");
        else
            printf (", %ld state SETs (%ld writers), %ld propagation SETs, %ld lock pairs",
                    self.state_sets, self.state_writers, self.state_latency_sets,
                    self.lock_pairs);
        printf ("; this takes a little while\n");
        fflush (stdout);
    }
    for (int index = 0; index < 2; index++)
        if (modes [index]->run && !cli_interrupted () && s_phase_jobs (&self, modes [index]))
            self.failures++;
    if (!cli_interrupted () && !self.skip_state
    &&  (self.state_sets > 0 || self.state_latency_sets > 0 || self.lock_pairs > 0)
    &&  s_phase_state (&self))
        self.failures++;
    if (!cli_interrupted () && self.memory_jobs > 0 && s_phase_memory (&self))
        self.failures++;
    if (!cli_interrupted () && self.journal_jobs > 0 && s_phase_journal (&self))
        self.failures++;
    if (!cli_interrupted () && self.raw_path) {
        //  The floor runs alone: every Drover process is stopped by now.
        if (s_raw_run (&self, !self.insecure, 1, &self.raw_jobs_per_s))
            self.failures++;
        if (!cli_interrupted () && s_raw_run (&self, !self.insecure, 10,
                                              &self.raw_batch10_jobs_per_s))
            self.failures++;
        if (!cli_interrupted () && s_raw_run (&self, self.insecure, 1,
                                              &self.raw_other_jobs_per_s))
            self.failures++;
    }
    if (cli_interrupted ())
        self.failures++;
    if (self.json)
        s_report_json (&self);
    else {
        printf ("\n");
        s_report_text (&self);
    }

done:
    {
        int exit_code = self.failures == 0 && self.tmp_dir && s_primary (&self)->jobs_per_s >= 0
                      ? CLI_EXIT_OK: CLI_EXIT_FAILED;
        if (self.tmp_dir)
            cli_remove_tree (self.tmp_dir);
        zstr_free (&self.tmp_dir);
        cli_keyring_close (&self.ring);
        free (self.droverd);
        free (self.self);
        free (raw_found);
        free (self.payload);
        return exit_code;
    }
}
