/*  test_exec.c - unit tests of the --exec runner (workers/exec_run.c).

    No broker needed. Each case runs in a forked process with an alarm, so
    a hang or crash fails that case alone and names it.
*/
#define _GNU_SOURCE
#include "exec_run.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond) do { if (!(cond)) { \
    fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    exit (1); } } while (0)

static uint64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static char *
s_pattern (size_t size)
{
    char *data = malloc (size);
    CHECK (data);
    for (size_t i = 0; i < size; i++)
        data [i] = (char) ('a' + (i * 7 + i / 251) % 26);
    return data;
}

//  1 MiB through cat comes back byte for byte: feeding and reading run
//  together, so a payload far above the pipe size cannot deadlock.
static void
test_cat_round_trip (void)
{
    size_t size = 1024 * 1024;
    char *data = s_pattern (size);
    exec_result_t result;
    CHECK (exec_run ("cat", data, size, NULL, &result) == 0);
    CHECK (exec_result_ok (&result));
    CHECK (result.exit_code == 0);
    CHECK (result.out_size == size);
    CHECK (memcmp (result.out, data, size) == 0);
    CHECK (result.err_size == 0);
    size_t out_size;
    char *out = exec_result_take_output (&result, &out_size);
    CHECK (out && out_size == size && result.out == NULL);
    free (out);
    exec_result_free (&result);
    free (data);
}

//  The same payload copied to stdout and stderr at once: both pipes drain
//  concurrently, and only the tail of stderr is kept.
static void
test_both_streams (void)
{
    size_t size = 1024 * 1024;
    char *data = s_pattern (size);
    exec_result_t result;
    CHECK (exec_run ("tee /dev/stderr", data, size, NULL, &result) == 0);
    CHECK (exec_result_ok (&result));
    CHECK (result.out_size == size);
    CHECK (memcmp (result.out, data, size) == 0);
    CHECK (result.err_size == 4096);
    CHECK (result.err_truncated);
    CHECK (memcmp (result.err, data + size - 4096, 4096) == 0);
    exec_result_free (&result);
    free (data);
}

static void
test_echo_no_input (void)
{
    exec_result_t result;
    CHECK (exec_run ("echo hello", NULL, 0, NULL, &result) == 0);
    CHECK (exec_result_ok (&result));
    CHECK (result.out_size == 6);
    CHECK (strcmp (result.out, "hello\n") == 0);
    exec_result_free (&result);
}

//  Non-zero exit is a failure whose text carries the trimmed stderr.
static void
test_exit_status (void)
{
    exec_result_t result;
    CHECK (exec_run ("echo partial; printf '\\n  bad thing happened \\n\\n' >&2; exit 3",
                     "x", 1, NULL, &result) == 0);
    CHECK (!exec_result_ok (&result));
    CHECK (result.exit_code == 3);
    CHECK (result.signal == 0);
    char text [256];
    exec_result_describe (&result, NULL, text, sizeof text);
    CHECK (strcmp (text, "exit status 3: bad thing happened") == 0);
    exec_result_free (&result);
}

static void
test_killed_by_signal (void)
{
    exec_result_t result;
    CHECK (exec_run ("kill -SEGV $$", NULL, 0, NULL, &result) == 0);
    CHECK (!exec_result_ok (&result));
    CHECK (result.signal == SIGSEGV);
    CHECK (result.exit_code == -1);
    char text [256];
    exec_result_describe (&result, NULL, text, sizeof text);
    CHECK (strncmp (text, "killed by signal 11", 19) == 0);
    exec_result_free (&result);
}

//  Missing command: the shell says so and exits 127.
static void
test_missing_command (void)
{
    exec_result_t result;
    CHECK (exec_run ("drover-no-such-command-xyz", "in", 2, NULL, &result) == 0);
    CHECK (result.exit_code == 127);
    CHECK (!exec_result_ok (&result));
    char text [512];
    exec_result_describe (&result, NULL, text, sizeof text);
    CHECK (strstr (text, "exit status 127 (command not found)") == text);
    CHECK (strstr (text, "drover-no-such-command-xyz"));
    exec_result_free (&result);
}

//  A command that stops reading early: our writes hit EPIPE, which must
//  neither kill us (SIGPIPE) nor fail the run.
static void
test_stdin_closed_early (void)
{
    size_t size = 4 * 1024 * 1024;
    char *data = s_pattern (size);
    exec_result_t result;
    CHECK (exec_run ("head -c 10", data, size, NULL, &result) == 0);
    CHECK (exec_result_ok (&result));
    CHECK (result.out_size == 10);
    CHECK (memcmp (result.out, data, 10) == 0);
    CHECK (result.stdin_closed);
    exec_result_free (&result);

    //  And one that closes stdin explicitly but goes on working.
    CHECK (exec_run ("exec 0<&-; sleep 0.2; echo done", data, size, NULL, &result) == 0);
    CHECK (exec_result_ok (&result));
    CHECK (strcmp (result.out, "done\n") == 0);
    exec_result_free (&result);

    //  SIGPIPE must be pending nowhere and unblocked again on this thread.
    sigset_t mask;
    pthread_sigmask (SIG_BLOCK, NULL, &mask);
    CHECK (!sigismember (&mask, SIGPIPE));
    free (data);
}

//  The time limit kills sleep 100 quickly, through the whole group.
static void
test_timeout (void)
{
    exec_opts_t opts = {.timeout_ms = 200};
    exec_result_t result;
    uint64_t start = s_now_ms ();
    CHECK (exec_run ("sleep 100", NULL, 0, &opts, &result) == 0);
    uint64_t took = s_now_ms () - start;
    CHECK (took >= 190);
    //  Ended by SIGTERM, not by the SIGKILL that follows the 1 s grace
    CHECK (result.signal == SIGTERM);
    CHECK (result.timed_out);
    CHECK (!exec_result_ok (&result));
    char text [128];
    exec_result_describe (&result, &opts, text, sizeof text);
    CHECK (strcmp (text, "timed out after 200 ms") == 0);
    exec_result_free (&result);

    //  A background child holding stdout open dies with its group, and
    //  the run does not wait for the pipe it held.
    start = s_now_ms ();
    CHECK (exec_run ("sleep 100 & sleep 100", NULL, 0, &opts, &result) == 0);
    took = s_now_ms () - start;
    CHECK (took < 2000);
    CHECK (result.timed_out);
    exec_result_free (&result);
}

//  A command that ignores SIGTERM gets SIGKILL after the grace period.
static void
test_timeout_ignores_term (void)
{
    exec_opts_t opts = {.timeout_ms = 100, .kill_grace_ms = 300};
    exec_result_t result;
    uint64_t start = s_now_ms ();
    CHECK (exec_run ("trap '' TERM; sleep 100; sleep 100", NULL, 0, &opts, &result) == 0);
    uint64_t took = s_now_ms () - start;
    CHECK (took >= 390 && took < 2000);
    CHECK (result.timed_out);
    CHECK (result.signal == SIGKILL);
    exec_result_free (&result);
}

static bool
s_flag_set (void *arg)
{
    return *(volatile int *) arg != 0;
}

static void *
s_set_flag_later (void *arg)
{
    usleep (200 * 1000);
    *(volatile int *) arg = 1;
    return NULL;
}

//  Cancelling from another thread ends the run within a tick or two.
static void
test_cancel (void)
{
    volatile int flag = 0;
    exec_opts_t opts = {.cancelled = s_flag_set, .cancel_arg = (void *) &flag};
    pthread_t thread;
    uint64_t start = s_now_ms ();
    pthread_create (&thread, NULL, s_set_flag_later, (void *) &flag);
    exec_result_t result;
    CHECK (exec_run ("sleep 100", NULL, 0, &opts, &result) == 0);
    uint64_t took = s_now_ms () - start;
    pthread_join (thread, NULL);
    CHECK (took >= 190);
    CHECK (result.signal == SIGTERM);      //  not the SIGKILL after the grace
    CHECK (result.cancelled);
    CHECK (!exec_result_ok (&result));
    exec_result_free (&result);
}

//  stdout past max_output kills the command and fails the run.
static void
test_overflow (void)
{
    exec_opts_t opts = {.max_output = 100000};
    exec_result_t result;
    CHECK (exec_run ("yes", NULL, 0, &opts, &result) == 0);
    CHECK (result.overflow);
    CHECK (result.out_size == 100000);
    CHECK (!exec_result_ok (&result));
    exec_result_free (&result);
}

//  The job's variables reach the command, replacing inherited ones.
static void
test_environment (void)
{
    setenv ("DROVER_QUEUE", "inherited", 1);
    const char *env [] = {"DROVER_JOB_ID=0123456789abcdef0123456789abcdef",
                          "DROVER_QUEUE=images", "DROVER_ATTEMPT=2", NULL};
    exec_opts_t opts = {.env = env};
    exec_result_t result;
    CHECK (exec_run ("echo \"$DROVER_JOB_ID $DROVER_QUEUE $DROVER_ATTEMPT\"; env | grep -c DROVER_QUEUE=",
                     NULL, 0, &opts, &result) == 0);
    CHECK (exec_result_ok (&result));
    CHECK (strcmp (result.out, "0123456789abcdef0123456789abcdef images 2\n1\n") == 0);
    exec_result_free (&result);
}

//  Signals the worker ignores or blocks must not reach the command so:
//  `yes | head` relies on SIGPIPE killing yes.
static void
test_signals_reset (void)
{
    signal (SIGPIPE, SIG_IGN);
    signal (SIGTERM, SIG_IGN);
    sigset_t set;
    sigemptyset (&set);
    sigaddset (&set, SIGINT);
    pthread_sigmask (SIG_BLOCK, &set, NULL);
    exec_opts_t opts = {.timeout_ms = 5000};
    exec_result_t result;
    CHECK (exec_run ("yes | head -n 2; grep -E '^Sig(Blk|Ign)' /proc/self/status",
                     NULL, 0, &opts, &result) == 0);
    CHECK (exec_result_ok (&result));
    CHECK (strncmp (result.out, "y\ny\n", 4) == 0);
    //  Standard signals (1..31) only: glibc's posix_spawn leaves its own
    //  internal real-time signals (32, 33) ignored, harmlessly.
    const char *blocked = strstr (result.out, "SigBlk:");
    const char *ignored = strstr (result.out, "SigIgn:");
    CHECK (blocked && ignored);
    CHECK ((strtoull (blocked + 7, NULL, 16) & 0x7fffffffull) == 0);
    CHECK ((strtoull (ignored + 7, NULL, 16) & 0x7fffffffull) == 0);
    exec_result_free (&result);

    //  The command runs in its own process group.
    CHECK (exec_run ("echo $$ $(cut -d' ' -f5 /proc/$$/stat)", NULL, 0, NULL, &result) == 0);
    long pid = 0, pgid = -1;
    CHECK (sscanf (result.out, "%ld %ld", &pid, &pgid) == 2);
    CHECK (pgid == pid);
    CHECK (pgid != getpgrp ());
    exec_result_free (&result);
}

//  Several runs at once on different threads keep their outputs apart.
static void *
s_parallel_run (void *arg)
{
    long index = (long) arg;
    char cmd [64];
    snprintf (cmd, sizeof cmd, "cat; echo %ld", index);
    for (int i = 0; i < 20; i++) {
        exec_result_t result;
        if (exec_run (cmd, "x", 1, NULL, &result) != 0)
            return (void *) 1;
        char expected [32];
        snprintf (expected, sizeof expected, "x%ld\n", index);
        bool good = exec_result_ok (&result) && strcmp (result.out, expected) == 0;
        exec_result_free (&result);
        if (!good)
            return (void *) 1;
    }
    return NULL;
}

static void
test_threads (void)
{
    pthread_t threads [4];
    for (long i = 0; i < 4; i++)
        pthread_create (&threads [i], NULL, s_parallel_run, (void *) i);
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join (threads [i], &rc);
        CHECK (rc == NULL);
    }
}

typedef struct {
    const char *name;           //  case name, as printed
    void (*fn) (void);          //  case body; exits non-zero on failure
} s_case_t;

int
main (int argc, char *argv [])
{
    s_case_t cases [] = {
        {"cat_round_trip", test_cat_round_trip},
        {"both_streams", test_both_streams},
        {"echo_no_input", test_echo_no_input},
        {"exit_status", test_exit_status},
        {"killed_by_signal", test_killed_by_signal},
        {"missing_command", test_missing_command},
        {"stdin_closed_early", test_stdin_closed_early},
        {"timeout", test_timeout},
        {"timeout_ignores_term", test_timeout_ignores_term},
        {"cancel", test_cancel},
        {"overflow", test_overflow},
        {"environment", test_environment},
        {"signals_reset", test_signals_reset},
        {"threads", test_threads},
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        if (argc > 1 && strcmp (argv [1], cases [i].name) != 0)
            continue;
        fflush (stdout);        //  or the child would print our buffer again
        pid_t pid = fork ();
        CHECK (pid >= 0);
        if (pid == 0) {
            alarm (30);
            cases [i].fn ();
            _exit (0);
        }
        int status;
        waitpid (pid, &status, 0);
        bool good = WIFEXITED (status) && WEXITSTATUS (status) == 0;
        printf ("%-24s %s", cases [i].name, good ? "ok" : "FAILED");
        if (WIFSIGNALED (status))
            printf (" (signal %d)", WTERMSIG (status));
        printf ("\n");
        failed += !good;
    }
    return failed ? 1 : 0;
}
