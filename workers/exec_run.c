/*  exec_run.c - runs one shell command with a payload on stdin (internal).

    posix_spawn rather than fork: the worker process has ZeroMQ and handler
    threads, and after fork() only async-signal-safe calls are allowed,
    while posix_spawn does the process-group, signal and descriptor set-up
    for us (and uses a vfork-like clone, cheap even for a large process).
*/
#define _GNU_SOURCE
#include "exec_run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define S_CHUNK          65536      //  bytes per read() or write()
#define S_DEFAULT_GRACE  1000       //  ms between SIGTERM and SIGKILL
#define S_DEFAULT_ERROR  4096       //  stderr bytes kept
#define S_CANCEL_TICK    50         //  ms between cancel checks
#define S_REAP_TICK      10         //  ms between reap checks once pipes are shut

//  The state of one run while its loop turns.
typedef struct {
    pid_t pid;                  //  the shell; also its process group id
    int in_fd;                  //  our end of its stdin, -1 once closed
    int out_fd;                 //  our end of its stdout, -1 at EOF
    int err_fd;                 //  our end of its stderr, -1 at EOF
    const uint8_t *in;          //  payload
    size_t in_size;             //  payload size
    size_t in_done;             //  payload bytes written
    size_t out_cap;             //  bytes allocated for result->out
    size_t max_output;          //  stdout bound, 0 = none
    size_t max_error;           //  stderr bytes kept
    bool killing;               //  SIGTERM sent to the group
    bool killed_hard;           //  SIGKILL sent to the group
    uint64_t kill_at;           //  when to send SIGKILL
    bool reaped;                //  waitpid collected the shell
} s_run_t;

static uint64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void
s_close (int *fd)
{
    if (*fd >= 0) {
        close (*fd);
        *fd = -1;
    }
}

//  A close-on-exec pipe whose ends are never 0, 1 or 2: if the process
//  runs with a standard descriptor closed, pipe() could hand one out, and
//  the child's dup2 onto 0..2 would then clobber the other pipe's end.
static int
s_pipe (int fds [2])
{
    if (pipe2 (fds, O_CLOEXEC))
        return -1;
    for (int i = 0; i < 2; i++)
        if (fds [i] < 3) {
            int moved = fcntl (fds [i], F_DUPFD_CLOEXEC, 3);
            if (moved < 0) {
                int saved = errno;
                close (fds [0]);
                close (fds [1]);
                errno = saved;
                return -1;
            }
            close (fds [i]);
            fds [i] = moved;
        }
    return 0;
}

static void
s_nonblock (int fd)
{
    int flags = fcntl (fd, F_GETFL);
    if (flags >= 0)
        fcntl (fd, F_SETFL, flags | O_NONBLOCK);
}

//  The environment for the child: ours with the extra entries replacing
//  any of the same name. Built before spawning because setenv() in a
//  threaded process is not safe. The strings stay owned by their owners;
//  only the array is allocated.
static char **
s_build_env (const char *const *extra)
{
    size_t ours = 0, more = 0;
    while (environ && environ [ours])
        ours++;
    while (extra && extra [more])
        more++;
    char **env = malloc ((ours + more + 1) * sizeof (char *));
    if (!env)
        return NULL;
    size_t count = 0;
    for (size_t i = 0; i < ours; i++) {
        bool replaced = false;
        for (size_t j = 0; j < more && !replaced; j++) {
            const char *eq = strchr (extra [j], '=');
            size_t name_len = eq ? (size_t) (eq - extra [j]) : strlen (extra [j]);
            replaced = strncmp (environ [i], extra [j], name_len) == 0
                    && environ [i][name_len] == '=';
        }
        if (!replaced)
            env [count++] = environ [i];
    }
    for (size_t j = 0; j < more; j++)
        env [count++] = (char *) extra [j];
    env [count] = NULL;
    return env;
}

//  Starts /bin/sh -c cmd in a new process group with the three pipes as
//  its standard descriptors, every signal at its default and none blocked
//  (the worker ignores or blocks several, and both would be inherited).
static int
s_spawn (const char *cmd, char **env, int in [2], int out [2], int err [2], pid_t *pid_p)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init (&actions);
    if (rc)
        return rc;
    rc = posix_spawnattr_init (&attr);
    if (rc) {
        posix_spawn_file_actions_destroy (&actions);
        return rc;
    }
    sigset_t none, all;
    sigemptyset (&none);
    sigfillset (&all);
    if (!rc) rc = posix_spawn_file_actions_adddup2 (&actions, in [0], 0);
    if (!rc) rc = posix_spawn_file_actions_adddup2 (&actions, out [1], 1);
    if (!rc) rc = posix_spawn_file_actions_adddup2 (&actions, err [1], 2);
#if defined (__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    //  Descriptors someone opened without close-on-exec must not leak
    //  into user commands (nor keep our pipes open behind our back).
    if (!rc) rc = posix_spawn_file_actions_addclosefrom_np (&actions, 3);
#endif
    if (!rc) rc = posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETPGROUP
                                                 | POSIX_SPAWN_SETSIGMASK
                                                 | POSIX_SPAWN_SETSIGDEF);
    if (!rc) rc = posix_spawnattr_setpgroup (&attr, 0);
    if (!rc) rc = posix_spawnattr_setsigmask (&attr, &none);
    if (!rc) rc = posix_spawnattr_setsigdefault (&attr, &all);
    if (!rc) {
        char *argv [] = {"sh", "-c", (char *) cmd, NULL};
        rc = posix_spawn (pid_p, "/bin/sh", &actions, &attr, argv, env);
    }
    posix_spawnattr_destroy (&attr);
    posix_spawn_file_actions_destroy (&actions);
    return rc;
}

//  Starts the kill sequence: SIGTERM to the whole group now, SIGKILL later.
static void
s_kill (s_run_t *self, uint32_t grace_ms)
{
    if (self->killing)
        return;
    self->killing = true;
    self->kill_at = s_now_ms () + grace_ms;
    kill (-self->pid, SIGTERM);
}

//  Writes as much payload as the pipe takes. A command may exit or close
//  stdin without reading it all (head -c 10): that is its right, not an
//  error, so EPIPE just ends the input.
static void
s_feed (s_run_t *self, exec_result_t *result)
{
    while (self->in_done < self->in_size) {
        size_t want = self->in_size - self->in_done;
        ssize_t rc = write (self->in_fd, self->in + self->in_done,
                            want < S_CHUNK ? want : S_CHUNK);
        if (rc > 0)
            self->in_done += (size_t) rc;
        else
        if (rc < 0 && errno == EINTR)
            continue;
        else
        if (rc < 0 && errno == EAGAIN)
            return;
        else {
            result->stdin_closed = true;
            break;
        }
    }
    s_close (&self->in_fd);
}

//  Reads what stdout has into result->out, growing it; past max_output
//  the command is killed and the rest discarded.
static void
s_drain_out (s_run_t *self, exec_result_t *result, uint32_t grace_ms)
{
    while (true) {
        if (self->out_cap - result->out_size < S_CHUNK + 1) {
            size_t cap = self->out_cap ? self->out_cap * 2 : S_CHUNK * 2;
            char *grown = realloc (result->out, cap);
            if (!grown) {
                //  Treat like an oversized result: we cannot hold it.
                result->overflow = true;
                s_kill (self, grace_ms);
                s_close (&self->out_fd);
                return;
            }
            result->out = grown;
            self->out_cap = cap;
        }
        ssize_t rc = read (self->out_fd, result->out + result->out_size, S_CHUNK);
        if (rc > 0) {
            if (!result->overflow)
                result->out_size += (size_t) rc;
            if (self->max_output && result->out_size > self->max_output) {
                result->overflow = true;
                result->out_size = self->max_output;
                s_kill (self, grace_ms);
            }
        }
        else
        if (rc < 0 && errno == EINTR)
            continue;
        else
        if (rc < 0 && errno == EAGAIN)
            return;
        else {
            s_close (&self->out_fd);
            return;
        }
    }
}

//  Reads what stderr has, keeping only the last max_error bytes: the end
//  of an error output (the exception, the last log line) says the most.
static void
s_drain_err (s_run_t *self, exec_result_t *result)
{
    char chunk [S_CHUNK];
    while (true) {
        ssize_t rc = read (self->err_fd, chunk, sizeof chunk);
        if (rc > 0) {
            size_t n = (size_t) rc;
            size_t cap = self->max_error;
            const char *from = chunk;
            if (n > cap) {
                result->err_truncated = true;
                from += n - cap;
                n = cap;
            }
            if (result->err_size + n > cap) {
                size_t keep = cap - n;
                memmove (result->err, result->err + result->err_size - keep, keep);
                result->err_size = keep;
                result->err_truncated = true;
            }
            memcpy (result->err + result->err_size, from, n);
            result->err_size += n;
        }
        else
        if (rc < 0 && errno == EINTR)
            continue;
        else
        if (rc < 0 && errno == EAGAIN)
            return;
        else {
            s_close (&self->err_fd);
            return;
        }
    }
}

static void
s_reap (s_run_t *self, exec_result_t *result)
{
    int status;
    pid_t rc = waitpid (self->pid, &status, WNOHANG);
    if (rc == self->pid) {
        self->reaped = true;
        if (WIFEXITED (status))
            result->exit_code = WEXITSTATUS (status);
        else
        if (WIFSIGNALED (status))
            result->signal = WTERMSIG (status);
    }
    else
    if (rc < 0 && errno != EINTR)
        self->reaped = true;    //  ECHILD: someone else reaped it; nothing to wait for
}

//  Turns the loop until the shell is reaped and its output read (or, once
//  we are killing it, just reaped: a descendant that escaped the process
//  group may hold the pipes open forever).
static void
s_loop (s_run_t *self, const exec_opts_t *opts, exec_result_t *result, uint64_t started)
{
    uint32_t grace = opts->kill_grace_ms ? opts->kill_grace_ms : S_DEFAULT_GRACE;
    uint64_t deadline = opts->timeout_ms ? started + opts->timeout_ms : 0;
    while (true) {
        if (!self->reaped)
            s_reap (self, result);
        bool pipes_open = self->out_fd >= 0 || self->err_fd >= 0;
        if (self->reaped && !pipes_open && !self->killing)
            break;

        uint64_t now = s_now_ms ();
        if (self->reaped && self->killing) {
            //  The shell is gone, but what it started in its group may
            //  linger (trapping SIGTERM, or holding our pipes). Give them
            //  until SIGKILL time or until the pipes close, then SIGKILL
            //  the group: its id stays reserved while any member lives, so
            //  this reaches only them. (Orphans become zombies of a reaper
            //  we do not control, so "group empty" is no usable signal.)
            if (!pipes_open || now >= self->kill_at) {
                kill (-self->pid, SIGKILL);
                break;
            }
        }
        if (!self->killing) {
            if (deadline && now >= deadline) {
                result->timed_out = true;
                s_kill (self, grace);
            }
            else
            if (opts->cancelled && opts->cancelled (opts->cancel_arg)) {
                result->cancelled = true;
                s_kill (self, grace);
            }
        }
        if (self->killing && !self->killed_hard && now >= self->kill_at) {
            self->killed_hard = true;
            kill (-self->pid, SIGKILL);
        }
        //  Once killing, the input is moot.
        if (self->killing)
            s_close (&self->in_fd);

        //  Sleep until I/O or the next thing we must check.
        int64_t wait = -1;
        if (!pipes_open || self->killing)
            wait = S_REAP_TICK;
        if (self->killing && !self->killed_hard) {
            int64_t left = now < self->kill_at ? (int64_t) (self->kill_at - now) : 0;
            if (left < wait)
                wait = left;
        }
        if (opts->cancelled && (wait < 0 || wait > S_CANCEL_TICK))
            wait = S_CANCEL_TICK;
        if (deadline && !self->killing) {
            int64_t left = now < deadline ? (int64_t) (deadline - now) : 0;
            if (wait < 0 || left < wait)
                wait = left;
        }
        struct pollfd fds [3];
        int count = 0;
        if (self->in_fd >= 0)
            fds [count++] = (struct pollfd) {self->in_fd, POLLOUT, 0};
        if (self->out_fd >= 0)
            fds [count++] = (struct pollfd) {self->out_fd, POLLIN, 0};
        if (self->err_fd >= 0)
            fds [count++] = (struct pollfd) {self->err_fd, POLLIN, 0};
        int rc = poll (fds, (nfds_t) count, (int) wait);
        if (rc <= 0)
            continue;           //  timeout or EINTR: the checks above run again
        for (int i = 0; i < count; i++) {
            if (!fds [i].revents)
                continue;
            if (fds [i].fd == self->in_fd)
                s_feed (self, result);
            else
            if (fds [i].fd == self->out_fd)
                s_drain_out (self, result, grace);
            else
            if (fds [i].fd == self->err_fd)
                s_drain_err (self, result);
        }
    }
}

int
exec_run (const char *cmd, const void *in, size_t in_size,
          const exec_opts_t *opts, exec_result_t *result)
{
    static const exec_opts_t defaults = {0};
    if (!opts)
        opts = &defaults;
    memset (result, 0, sizeof *result);
    result->exit_code = -1;
    if (!cmd || (in_size && !in)) {
        errno = EINVAL;
        return -1;
    }
    s_run_t self = {
        .in_fd = -1, .out_fd = -1, .err_fd = -1,
        .in = in, .in_size = in_size,
        .max_output = opts->max_output,
        .max_error = opts->max_error ? opts->max_error : S_DEFAULT_ERROR
    };
    result->err = malloc (self.max_error + 1);
    char **env = s_build_env (opts->env);
    int in_pipe [2] = {-1, -1}, out_pipe [2] = {-1, -1}, err_pipe [2] = {-1, -1};
    if (!result->err || !env
    ||  s_pipe (in_pipe) || s_pipe (out_pipe) || s_pipe (err_pipe)) {
        int saved = result->err && env ? errno : ENOMEM;
        for (int i = 0; i < 2; i++) {
            s_close (&in_pipe [i]);
            s_close (&out_pipe [i]);
            s_close (&err_pipe [i]);
        }
        free (env);
        exec_result_free (result);
        result->exit_code = -1;
        errno = saved;
        return -1;
    }
    //  A command that exits without reading its stdin makes our write()
    //  raise SIGPIPE, which by default would kill the whole worker. Block
    //  it on this thread only (a write's SIGPIPE goes to the writing
    //  thread), and discard any we caused before restoring the mask.
    sigset_t pipe_set, old_mask;
    sigemptyset (&pipe_set);
    sigaddset (&pipe_set, SIGPIPE);
    pthread_sigmask (SIG_BLOCK, &pipe_set, &old_mask);

    uint64_t started = s_now_ms ();
    int rc = s_spawn (cmd, env, in_pipe, out_pipe, err_pipe, &self.pid);
    free (env);
    s_close (&in_pipe [0]);
    s_close (&out_pipe [1]);
    s_close (&err_pipe [1]);
    self.in_fd = in_pipe [1];
    self.out_fd = out_pipe [0];
    self.err_fd = err_pipe [0];
    if (rc) {
        s_close (&self.in_fd);
        s_close (&self.out_fd);
        s_close (&self.err_fd);
        pthread_sigmask (SIG_SETMASK, &old_mask, NULL);
        exec_result_free (result);
        result->exit_code = -1;
        errno = rc;
        return -1;
    }
    s_nonblock (self.in_fd);
    s_nonblock (self.out_fd);
    s_nonblock (self.err_fd);
    if (in_size == 0)
        s_close (&self.in_fd);      //  EOF at once, as for </dev/null

    s_loop (&self, opts, result, started);

    s_close (&self.in_fd);
    s_close (&self.out_fd);
    s_close (&self.err_fd);
    if (!sigismember (&old_mask, SIGPIPE)) {
        struct timespec zero = {0, 0};
        while (sigtimedwait (&pipe_set, NULL, &zero) == SIGPIPE)
            ;
    }
    pthread_sigmask (SIG_SETMASK, &old_mask, NULL);

    result->elapsed_ms = s_now_ms () - started;
    if (result->out)
        result->out [result->out_size] = 0;
    result->err [result->err_size] = 0;
    return 0;
}

bool
exec_result_ok (const exec_result_t *result)
{
    return result->exit_code == 0 && !result->signal
        && !result->timed_out && !result->cancelled && !result->overflow;
}

const char *
exec_result_describe (const exec_result_t *result, const exec_opts_t *opts,
                      char *text, size_t size)
{
    if (!size)
        return text;
    if (result->timed_out)
        snprintf (text, size, "timed out after %u ms", opts ? opts->timeout_ms : 0);
    else
    if (result->cancelled)
        snprintf (text, size, "cancelled");
    else
    if (result->overflow)
        snprintf (text, size, "output larger than %zu bytes", opts ? opts->max_output : 0);
    else
    if (result->signal)
        snprintf (text, size, "killed by signal %d (%s)", result->signal,
                  strsignal (result->signal));
    else
    if (result->exit_code == 127)
        snprintf (text, size, "exit status 127 (command not found)");
    else
    if (result->exit_code == 126)
        snprintf (text, size, "exit status 126 (command not executable)");
    else
        snprintf (text, size, "exit status %d", result->exit_code);

    //  Then stderr, without the surrounding blank lines and spaces.
    const char *start = result->err ? result->err : "";
    const char *end = start + (result->err ? result->err_size : 0);
    while (start < end && (*start == ' ' || (*start >= '\t' && *start <= '\r')))
        start++;
    while (end > start && (end [-1] == ' ' || (end [-1] >= '\t' && end [-1] <= '\r')))
        end--;
    size_t used = strlen (text);
    if (end > start && used + 3 < size)
        snprintf (text + used, size - used, ": %s%.*s",
                  result->err_truncated ? "..." : "", (int) (end - start), start);
    return text;
}

void
exec_result_free (exec_result_t *result)
{
    free (result->out);
    free (result->err);
    memset (result, 0, sizeof *result);
}

char *
exec_result_take_output (exec_result_t *result, size_t *size_p)
{
    char *out = result->out;
    *size_p = result->out_size;
    result->out = NULL;
    result->out_size = 0;
    return out;
}
