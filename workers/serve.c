/*  serve.c - one worker process: a drover worker serving until told to stop
    (internal).
*/
#include "serve.h"
#include "util.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

//  What the signal thread needs.
typedef struct {
    drover_worker_t *worker;    //  the worker to stop
    sigset_t set;               //  SIGTERM and SIGINT
    atomic_bool done;           //  the worker has returned: just exit
} s_stopper_t;

static void *
s_stopper (void *arg)
{
    s_stopper_t *self = (s_stopper_t *) arg;
    bool stopped = false;
    while (true) {
        int signum;
        if (sigwait (&self->set, &signum))
            continue;
        if (atomic_load (&self->done))
            break;
        //  A second signal changes nothing here: forcing is the
        //  supervisor's call (it kills us).
        if (!stopped) {
            drv_log (DRV_LOG_INFO, "worker", "%s: draining",
                     signum == SIGTERM ? "SIGTERM" : "SIGINT");
            drover_worker_stop (self->worker);
            stopped = true;
        }
    }
    return NULL;
}

//  Maps the SDK's answer to the exit status the CLI contract promises.
static int
s_status (int rc)
{
    switch (rc) {
        case DROVER_OK:
            return 0;
        case DROVER_EUNREACHABLE:
        case DROVER_EUNAUTH:
        case DROVER_EDENIED:
        case DROVER_EKEY:
        case DROVER_EPROTO:
            return 3;
        case DROVER_EINVAL:
        case DROVER_ENOQUEUE:
            return 2;
        default:
            return 1;
    }
}

int
serve_run (const serve_config_t *config, char *why, size_t why_size)
{
    why [0] = 0;
    s_stopper_t stopper;
    memset (&stopper, 0, sizeof stopper);
    atomic_init (&stopper.done, false);
    sigemptyset (&stopper.set);
    sigaddset (&stopper.set, SIGTERM);
    sigaddset (&stopper.set, SIGINT);
    //  Blocked before any thread exists, so every thread inherits it and
    //  only our sigwait() ever sees these signals.
    pthread_sigmask (SIG_BLOCK, &stopper.set, NULL);
    //  A write to a closed pipe or socket is an error to handle, not a
    //  reason for the worker to die (plugins may not think of it).
    signal (SIGPIPE, SIG_IGN);

    drover_worker_t *worker = drover_worker_new (&config->connect);
    if (!worker) {
        snprintf (why, why_size, "invalid worker settings");
        return 2;
    }
    int rc = 0;
    for (size_t i = 0; i < config->queue_count && !rc; i++) {
        rc = drover_worker_handle (worker, config->queues [i],
                                   config->handler, config->handler_arg);
        if (rc)
            snprintf (why, why_size, "cannot serve queue '%s': %s",
                      config->queues [i], drover_strerror (rc));
    }
    if (!rc && config->concurrency
    &&  (rc = drover_worker_set_concurrency (worker, config->concurrency)))
        snprintf (why, why_size, "bad concurrency %d: %s",
                  config->concurrency, drover_strerror (rc));
    if (!rc && config->prefetch >= 0
    &&  (rc = drover_worker_set_prefetch (worker, config->prefetch)))
        snprintf (why, why_size, "bad prefetch %d: %s",
                  config->prefetch, drover_strerror (rc));
    if (rc) {
        drover_worker_destroy (&worker);
        return 2;
    }
    stopper.worker = worker;
    pthread_t thread;
    if (pthread_create (&thread, NULL, s_stopper, &stopper)) {
        snprintf (why, why_size, "cannot start the signal thread");
        drover_worker_destroy (&worker);
        return 1;
    }
    rc = drover_worker_run (worker);

    atomic_store (&stopper.done, true);
    pthread_kill (thread, SIGTERM);     //  wakes its sigwait()
    pthread_join (thread, NULL);
    drover_worker_destroy (&worker);

    int status = s_status (rc);
    if (status == 3)
        snprintf (why, why_size, "cannot connect to broker %s: %s",
                  config->connect.endpoint ? config->connect.endpoint : "(none)",
                  drover_strerror (rc));
    else
    if (status)
        snprintf (why, why_size, "worker stopped: %s", drover_strerror (rc));
    return status;
}
