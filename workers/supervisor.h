/*  supervisor.h - keeps N worker processes running (internal).

    The supervisor forks one child per slot, restarts a child that dies
    (after a backoff that grows while the child keeps dying young, so a
    crash loop does not spin), and on SIGTERM or SIGINT drains: it passes
    SIGTERM to every child, starts no more, waits for all of them and
    returns 0. A second signal while draining kills the children
    (SIGKILL) and the supervisor returns 1.

    A child that ends with status 2 (bad usage) or, before any child has
    lived past settle_ms, status 3 (cannot reach or authenticate to the
    broker) is not restarted: that would only repeat the failure. The
    supervisor stops the others and returns that status, after printing
    the child's reason once. Status 3 after the fleet has settled (a
    broker that went away later, a revoked key) is restarted with backoff
    like any crash.

    Children run fn with SIGTERM and SIGINT blocked: fn waits for them
    with sigwait() (or sigtimedwait) and drains. A child whose supervisor
    dies gets SIGTERM (Linux), so no orphan fleet is left serving.
*/
#ifndef SUPERVISOR_H_INCLUDED
#define SUPERVISOR_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

//  The body of one child process. slot is 0..processes-1. On a failure it
//  may write a one-line reason into why (why_size bytes) and return the
//  exit status (0 = drained after a stop signal).
typedef int (supervisor_child_fn) (void *arg, int slot, char *why, size_t why_size);

typedef struct {
    int processes;              //  children to keep running, >= 1
    uint32_t settle_ms;         //  a child alive this long proves the setup works
    uint32_t backoff_min_ms;    //  first restart delay; 0 = 100
    uint32_t backoff_max_ms;    //  restart delay cap; 0 = 30000
    uint32_t healthy_ms;        //  a child that lived this long resets the backoff; 0 = 10000
    const char *program;        //  prefix of the fatal message, e.g. "drover-worker"
} supervisor_config_t;

//  Runs the fleet until it has drained or failed; returns the exit status
//  for the process (0 drained, 1 forced or internal error, 2 or 3 as
//  above). Blocks SIGTERM, SIGINT and SIGCHLD in the calling process and
//  leaves them blocked.
//  Call it from a single-threaded process: it forks.
int supervisor_run (const supervisor_config_t *config, supervisor_child_fn *fn, void *arg);

#endif
