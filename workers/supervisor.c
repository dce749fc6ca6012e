/*  supervisor.c - keeps N worker processes running (internal).

    Signals are taken synchronously: SIGTERM, SIGINT and SIGCHLD stay
    blocked and the loop waits for them with sigtimedwait(), so there are
    no handlers, no races between a signal and the loop's state, and the
    timer for delayed restarts is just the wait's timeout.
*/
#define _GNU_SOURCE
#include "supervisor.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

//  One place in the fleet and the child currently filling it.
typedef struct {
    pid_t pid;                  //  running child, 0 when none
    int report_fd;              //  read end of the child's reason pipe, -1 when none
    uint64_t started_ms;        //  when the running child was started
    uint64_t restart_at;        //  when to start a child here, 0 when not due
    uint32_t failures;          //  deaths in a row, each young; drives the backoff
} s_slot_t;

//  The supervisor's whole state.
typedef struct {
    supervisor_config_t config; //  copy, with defaults filled in
    supervisor_child_fn *fn;    //  child body
    void *arg;                  //  argument for fn
    s_slot_t *slots;            //  config.processes slots
    bool draining;              //  stop signal seen or fatal child: start no more
    bool forced;                //  second stop signal: children were killed
    bool settled;               //  some child lived past settle_ms
    int status;                 //  what supervisor_run returns
    char why [512];             //  reason for a fatal status, printed at the end
} s_fleet_t;

static int
s_running (s_fleet_t *self)
{
    int count = 0;
    for (int i = 0; i < self->config.processes; i++)
        count += self->slots [i].pid > 0;
    return count;
}

static void
s_signal_all (s_fleet_t *self, int signum)
{
    for (int i = 0; i < self->config.processes; i++)
        if (self->slots [i].pid > 0)
            kill (self->slots [i].pid, signum);
}

//  Stops the fleet: no restarts; running children are asked to drain.
static void
s_drain (s_fleet_t *self)
{
    self->draining = true;
    for (int i = 0; i < self->config.processes; i++)
        self->slots [i].restart_at = 0;
    s_signal_all (self, SIGTERM);
}

//  The child side of a fork: never returns.
static void
s_child (s_fleet_t *self, int slot, int report_fd, pid_t parent)
{
    //  The other slots' pipes belong to the parent.
    for (int i = 0; i < self->config.processes; i++)
        if (self->slots [i].report_fd >= 0)
            close (self->slots [i].report_fd);
#ifdef __linux__
    //  If the supervisor is killed outright, drain rather than serve on
    //  unsupervised. The check after catches a parent that died before.
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    if (getppid () != parent)
        kill (getpid (), SIGTERM);
#endif
    //  Keep SIGTERM and SIGINT blocked for fn; SIGCHLD is the parent's.
    sigset_t chld;
    sigemptyset (&chld);
    sigaddset (&chld, SIGCHLD);
    sigprocmask (SIG_UNBLOCK, &chld, NULL);

    char why [512] = "";
    int status = self->fn (self->arg, slot, why, sizeof why);
    if (why [0]) {
        //  Fits in one pipe buffer, so it is there when the parent reaps us.
        ssize_t rc = write (report_fd, why, strnlen (why, sizeof why - 1));
        (void) rc;
    }
    exit (status);
}

//  Forks a child into slot; on failure schedules another try.
static void
s_start (s_fleet_t *self, int slot)
{
    s_slot_t *entry = &self->slots [slot];
    entry->restart_at = 0;
    int fds [2];
    if (pipe2 (fds, O_CLOEXEC | O_NONBLOCK)) {
        fds [0] = -1;
        fds [1] = -1;
    }
    fflush (stdout);
    fflush (stderr);
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        if (fds [0] >= 0)
            close (fds [0]);
        s_child (self, slot, fds [1], parent);
    }
    if (fds [1] >= 0)
        close (fds [1]);
    if (pid < 0) {
        drv_log (DRV_LOG_ERROR, "supervisor", "cannot start worker %d: %s",
                 slot, strerror (errno));
        if (fds [0] >= 0)
            close (fds [0]);
        entry->restart_at = drv_now_ms () + self->config.backoff_max_ms;
        return;
    }
    entry->pid = pid;
    entry->report_fd = fds [0];
    entry->started_ms = drv_now_ms ();
    drv_log (DRV_LOG_INFO, "supervisor", "started worker %d (pid %d)", slot, (int) pid);
}

//  Reads what the child wrote before it ended, if anything.
static void
s_read_report (s_slot_t *entry, char *why, size_t why_size)
{
    why [0] = 0;
    if (entry->report_fd < 0)
        return;
    ssize_t size = read (entry->report_fd, why, why_size - 1);
    why [size > 0 ? size : 0] = 0;
    close (entry->report_fd);
    entry->report_fd = -1;
}

static void
s_describe (int status, char *text, size_t size)
{
    if (WIFEXITED (status))
        snprintf (text, size, "exited with status %d", WEXITSTATUS (status));
    else
    if (WIFSIGNALED (status))
        snprintf (text, size, "killed by signal %d (%s)", WTERMSIG (status),
                  strsignal (WTERMSIG (status)));
    else
        snprintf (text, size, "ended (status 0x%x)", (unsigned) status);
}

//  Deals with one child's end.
static void
s_ended (s_fleet_t *self, pid_t pid, int status)
{
    int slot = -1;
    for (int i = 0; i < self->config.processes && slot < 0; i++)
        if (self->slots [i].pid == pid)
            slot = i;
    if (slot < 0)
        return;                 //  an orphan we adopted as PID 1: just reaped

    s_slot_t *entry = &self->slots [slot];
    uint64_t now = drv_now_ms ();
    uint64_t lived = now - entry->started_ms;
    char why [512], how [128];
    s_read_report (entry, why, sizeof why);
    s_describe (status, how, sizeof how);
    entry->pid = 0;

    //  Has the setup proved itself? This child or a sibling lived long
    //  enough that a first connection must have worked.
    if (lived >= self->config.settle_ms)
        self->settled = true;
    for (int i = 0; i < self->config.processes; i++)
        if (self->slots [i].pid > 0 && now - self->slots [i].started_ms >= self->config.settle_ms)
            self->settled = true;

    if (self->draining) {
        bool clean = WIFEXITED (status) && WEXITSTATUS (status) == 0;
        drv_log (clean ? DRV_LOG_INFO : DRV_LOG_WARN, "supervisor",
                 "worker %d (pid %d) %s%s%s", slot, (int) pid,
                 clean ? "stopped" : how, why [0] ? ": " : "", why);
        return;
    }
    int code = WIFEXITED (status) ? WEXITSTATUS (status) : -1;
    if (code == 2 || (code == 3 && !self->settled)) {
        //  Restarting would fail the same way: give up, say why once.
        self->status = code;
        if (why [0])
            snprintf (self->why, sizeof self->why, "%s", why);
        else
            snprintf (self->why, sizeof self->why, "worker process %s", how);
        s_drain (self);
        return;
    }
    if (lived >= self->config.healthy_ms)
        entry->failures = 0;
    uint64_t delay = self->config.backoff_min_ms;
    for (uint32_t i = 0; i < entry->failures && delay < self->config.backoff_max_ms; i++)
        delay *= 2;
    if (delay > self->config.backoff_max_ms)
        delay = self->config.backoff_max_ms;
    entry->failures++;
    entry->restart_at = now + delay;
    drv_log (code == 0 ? DRV_LOG_INFO : DRV_LOG_WARN, "supervisor",
             "worker %d (pid %d) %s%s%s; restarting in %llu ms", slot, (int) pid, how,
             why [0] ? ": " : "", why, (unsigned long long) delay);
}

int
supervisor_run (const supervisor_config_t *config, supervisor_child_fn *fn, void *arg)
{
    s_fleet_t self = {.config = *config, .fn = fn, .arg = arg};
    if (self.config.processes < 1 || !fn)
        return 1;
    if (!self.config.backoff_min_ms)
        self.config.backoff_min_ms = 100;
    if (!self.config.backoff_max_ms)
        self.config.backoff_max_ms = 30000;
    if (!self.config.healthy_ms)
        self.config.healthy_ms = 10000;
    if (!self.config.program)
        self.config.program = "supervisor";
    self.slots = calloc ((size_t) self.config.processes, sizeof (s_slot_t));
    if (!self.slots) {
        fprintf (stderr, "%s: out of memory\n", self.config.program);
        return 1;
    }
    for (int i = 0; i < self.config.processes; i++)
        self.slots [i].report_fd = -1;

    sigset_t set;
    sigemptyset (&set);
    sigaddset (&set, SIGTERM);
    sigaddset (&set, SIGINT);
    sigaddset (&set, SIGCHLD);
    sigprocmask (SIG_BLOCK, &set, NULL);

    for (int i = 0; i < self.config.processes; i++)
        s_start (&self, i);

    while (true) {
        int status;
        pid_t pid;
        while ((pid = waitpid (-1, &status, WNOHANG)) > 0)
            s_ended (&self, pid, status);
        if (self.draining && s_running (&self) == 0)
            break;

        uint64_t now = drv_now_ms ();
        uint64_t next = 0;
        for (int i = 0; i < self.config.processes && !self.draining; i++) {
            s_slot_t *entry = &self.slots [i];
            if (entry->pid > 0 || !entry->restart_at)
                continue;
            if (entry->restart_at <= now)
                s_start (&self, i);
            else
            if (!next || entry->restart_at < next)
                next = entry->restart_at;
        }
        //  Wake for the next restart, or every second as a safety net.
        uint64_t wait = next ? next - now : 1000;
        if (wait > 1000)
            wait = 1000;
        struct timespec timeout = {(time_t) (wait / 1000), (long) (wait % 1000) * 1000000};
        int signum = sigtimedwait (&set, NULL, &timeout);
        if (signum == SIGTERM || signum == SIGINT) {
            if (!self.draining) {
                drv_log (DRV_LOG_INFO, "supervisor",
                         "%s: draining %d worker(s); signal again to kill them",
                         signum == SIGTERM ? "SIGTERM" : "SIGINT", s_running (&self));
                s_drain (&self);
            }
            else
            if (!self.forced) {
                drv_log (DRV_LOG_WARN, "supervisor", "second signal: killing workers");
                self.forced = true;
                if (self.status == 0)
                    self.status = 1;
                s_signal_all (&self, SIGKILL);
            }
        }
    }
    for (int i = 0; i < self.config.processes; i++)
        if (self.slots [i].report_fd >= 0)
            close (self.slots [i].report_fd);
    free (self.slots);
    //  The signals stay blocked: a late SIGTERM must not turn our exit
    //  status into a death by signal.
    if (self.why [0])
        fprintf (stderr, "%s: %s\n", self.config.program, self.why);
    return self.status;
}
