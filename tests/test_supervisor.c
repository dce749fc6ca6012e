/*  test_supervisor.c - unit tests of drover-worker's supervisor
    (workers/supervisor.c), with stand-in children instead of real workers.

    Each case runs in a forked process with its own temporary directory;
    inside it the supervisor runs in a further process, so the case can
    signal it, and the stand-in children leave marks as files.
*/
#define _GNU_SOURCE
#include "supervisor.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond) do { if (!(cond)) { \
    fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    exit (1); } } while (0)

//  How the stand-in children behave.
typedef enum {
    S_SERVE,            //  wait for SIGTERM, leave a mark, return 0
    S_CRASH_TWICE,      //  slot 0 aborts on its first two starts, then serves
    S_CRASH_ALWAYS,     //  every start aborts
    S_REFUSED,          //  slot 0 returns 3 at once ("cannot connect"); others serve
    S_REFUSED_LATER,    //  slot 0 serves 400 ms, then returns 3 once; then serves
    S_USAGE,            //  slot 0 returns 2
    S_SLOW_DRAIN,       //  like serve, but takes 500 ms to drain
    S_STUBBORN          //  ignores SIGTERM
} s_mode_t;

static s_mode_t s_mode;

//  Appends one byte to NAME-slot and returns the file's new size.
static long
s_mark (const char *name, int slot)
{
    char path [64];
    snprintf (path, sizeof path, "%s-%d", name, slot);
    int fd = open (path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    CHECK (fd >= 0);
    CHECK (write (fd, "x", 1) == 1);
    struct stat st;
    fstat (fd, &st);
    close (fd);
    return (long) st.st_size;
}

static long
s_count (const char *name, int slot)
{
    char path [64];
    snprintf (path, sizeof path, "%s-%d", name, slot);
    struct stat st;
    return stat (path, &st) == 0 ? (long) st.st_size : 0;
}

//  Waits for SIGTERM/SIGINT (blocked by the supervisor) up to ms; true if one came.
static bool
s_wait_stop (int ms)
{
    sigset_t set;
    sigemptyset (&set);
    sigaddset (&set, SIGTERM);
    sigaddset (&set, SIGINT);
    struct timespec timeout = {ms / 1000, (long) (ms % 1000) * 1000000};
    return sigtimedwait (&set, NULL, ms < 0 ? NULL : &timeout) > 0;
}

static int
s_child (void *arg, int slot, char *why, size_t why_size)
{
    (void) arg;
    long starts = s_mark ("start", slot);
    switch (s_mode) {
        case S_CRASH_TWICE:
            if (slot == 0 && starts <= 2)
                abort ();
            break;
        case S_CRASH_ALWAYS:
            abort ();
        case S_REFUSED:
            if (slot == 0) {
                snprintf (why, why_size, "cannot connect to broker tcp://x: refused");
                return 3;
            }
            break;
        case S_REFUSED_LATER:
            if (slot == 0 && starts == 1) {
                if (s_wait_stop (400))
                    break;
                snprintf (why, why_size, "cannot connect to broker tcp://x: gone");
                return 3;
            }
            break;
        case S_USAGE:
            if (slot == 0) {
                snprintf (why, why_size, "bad queue");
                return 2;
            }
            break;
        case S_STUBBORN:
            while (true)
                pause ();
        default:
            break;
    }
    s_wait_stop (-1);
    if (s_mode == S_SLOW_DRAIN)
        usleep (500 * 1000);
    s_mark ("drained", slot);
    return 0;
}

static uint64_t
s_now_ms (void)
{
    return drv_now_ms ();
}

//  Starts the supervisor in its own process; its stderr goes to "stderr".
static pid_t
s_start (s_mode_t mode, int processes, uint32_t settle_ms)
{
    s_mode = mode;
    fflush (stdout);
    pid_t pid = fork ();
    CHECK (pid >= 0);
    if (pid == 0) {
        int fd = open ("stderr", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2 (fd, 2);
        close (fd);
        supervisor_config_t config = {
            .processes = processes,
            .settle_ms = settle_ms,
            .program = "test"
        };
        _exit (supervisor_run (&config, s_child, NULL));
    }
    return pid;
}

//  Waits for the supervisor's exit status, at most ms.
static int
s_join (pid_t pid, int ms)
{
    uint64_t until = s_now_ms () + (uint64_t) ms;
    while (s_now_ms () < until) {
        int status;
        if (waitpid (pid, &status, WNOHANG) == pid) {
            CHECK (WIFEXITED (status));
            return WEXITSTATUS (status);
        }
        usleep (10 * 1000);
    }
    kill (pid, SIGKILL);
    fprintf (stderr, "supervisor still running after %d ms\n", ms);
    exit (1);
}

static void
s_wait_count (const char *name, int slot, long count, int ms)
{
    uint64_t until = s_now_ms () + (uint64_t) ms;
    while (s_count (name, slot) < count) {
        CHECK (s_now_ms () < until);
        usleep (10 * 1000);
    }
}

//  Lines of "stderr" that start with prefix.
static int
s_stderr_lines (const char *prefix)
{
    FILE *file = fopen ("stderr", "r");
    CHECK (file);
    char line [1024];
    int count = 0;
    while (fgets (line, sizeof line, file))
        count += strncmp (line, prefix, strlen (prefix)) == 0;
    fclose (file);
    return count;
}

//  All children start; SIGTERM drains each and the supervisor exits 0.
static void
test_drain (void)
{
    pid_t pid = s_start (S_SLOW_DRAIN, 3, 1000);
    for (int i = 0; i < 3; i++)
        s_wait_count ("start", i, 1, 2000);
    uint64_t start = s_now_ms ();
    kill (pid, SIGTERM);
    CHECK (s_join (pid, 5000) == 0);
    CHECK (s_now_ms () - start >= 450);     //  it waited for the slow drains
    for (int i = 0; i < 3; i++) {
        CHECK (s_count ("drained", i) == 1);
        CHECK (s_count ("start", i) == 1);
    }
}

//  A crashed child is restarted (with a short backoff); the others are not
//  disturbed.
static void
test_restart (void)
{
    pid_t pid = s_start (S_CRASH_TWICE, 2, 1000);
    s_wait_count ("start", 0, 3, 3000);
    usleep (100 * 1000);
    kill (pid, SIGINT);
    CHECK (s_join (pid, 5000) == 0);
    CHECK (s_count ("start", 0) == 3);
    CHECK (s_count ("start", 1) == 1);
    CHECK (s_count ("drained", 0) == 1);
    CHECK (s_count ("drained", 1) == 1);
    CHECK (s_stderr_lines ("test: ") == 0);
}

//  A crash loop backs off (100, 200, 400, 800 ms...) instead of spinning.
static void
test_backoff (void)
{
    pid_t pid = s_start (S_CRASH_ALWAYS, 1, 1000);
    usleep (1400 * 1000);
    kill (pid, SIGTERM);
    CHECK (s_join (pid, 2000) == 0);
    long starts = s_count ("start", 0);
    CHECK (starts >= 3 && starts <= 5);
}

//  Status 3 before the fleet settled: no restart, siblings drained, exit 3
//  with the child's reason printed once.
static void
test_refused (void)
{
    uint64_t start = s_now_ms ();
    pid_t pid = s_start (S_REFUSED, 3, 5000);
    CHECK (s_join (pid, 3000) == 3);
    CHECK (s_now_ms () - start < 2000);
    CHECK (s_count ("start", 0) == 1);
    CHECK (s_count ("drained", 1) == 1 || s_count ("start", 1) == 0);
    CHECK (s_stderr_lines ("test: cannot connect to broker tcp://x: refused") == 1);
    CHECK (s_stderr_lines ("test: ") == 1);
}

//  Status 3 after a child proved the setup works: restarted like a crash.
static void
test_refused_later (void)
{
    pid_t pid = s_start (S_REFUSED_LATER, 2, 200);
    s_wait_count ("start", 0, 2, 3000);
    kill (pid, SIGTERM);
    CHECK (s_join (pid, 3000) == 0);
    CHECK (s_count ("drained", 0) == 1);
    CHECK (s_count ("drained", 1) == 1);
}

//  Status 2 is never worth a restart.
static void
test_usage (void)
{
    pid_t pid = s_start (S_USAGE, 2, 200);
    CHECK (s_join (pid, 3000) == 2);
    CHECK (s_count ("start", 0) == 1);
    CHECK (s_stderr_lines ("test: bad queue") == 1);
}

//  A second signal kills children that do not drain; exit 1.
static void
test_force (void)
{
    pid_t pid = s_start (S_STUBBORN, 2, 1000);
    s_wait_count ("start", 0, 1, 2000);
    s_wait_count ("start", 1, 1, 2000);
    kill (pid, SIGTERM);
    usleep (200 * 1000);
    CHECK (waitpid (pid, NULL, WNOHANG) == 0);  //  still waiting for them
    kill (pid, SIGTERM);
    CHECK (s_join (pid, 2000) == 1);
}

//  Children of a supervisor killed outright drain by themselves.
static void
test_orphans_drain (void)
{
    pid_t pid = s_start (S_SERVE, 2, 1000);
    s_wait_count ("start", 0, 1, 2000);
    s_wait_count ("start", 1, 1, 2000);
    kill (pid, SIGKILL);
    waitpid (pid, NULL, 0);
    s_wait_count ("drained", 0, 1, 2000);
    s_wait_count ("drained", 1, 1, 2000);
}

typedef struct {
    const char *name;           //  case name, as printed
    void (*fn) (void);          //  case body; exits non-zero on failure
} s_case_t;

int
main (int argc, char *argv [])
{
    s_case_t cases [] = {
        {"drain", test_drain},
        {"restart", test_restart},
        {"backoff", test_backoff},
        {"refused", test_refused},
        {"refused_later", test_refused_later},
        {"usage", test_usage},
        {"force", test_force},
        {"orphans_drain", test_orphans_drain},
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        if (argc > 1 && strcmp (argv [1], cases [i].name) != 0)
            continue;
        char dir [] = "/tmp/drover-test-supervisor-XXXXXX";
        CHECK (mkdtemp (dir));
        fflush (stdout);
        pid_t pid = fork ();
        CHECK (pid >= 0);
        if (pid == 0) {
            CHECK (chdir (dir) == 0);
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
        if (!good) {
            //  Show what the supervisor said, for the log.
            char cmd [128];
            snprintf (cmd, sizeof cmd, "cat %s/stderr >&2 2>/dev/null", dir);
            if (system (cmd)) {}
        }
        failed += !good;
        char cmd [128];
        snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
        if (system (cmd)) {}
    }
    return failed ? 1 : 0;
}
