/*  worker.c - serve a queue with a handler written in C.

    Usage: worker QUEUE
    Connects with DROVER_BROKER (the broker's worker endpoint),
    DROVER_SERVER_KEY and DROVER_CERT, and answers each job with its
    payload reversed. Ctrl-C drains: held jobs finish, then it exits.
*/
#include <drover.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static drover_worker_t *s_worker;

static void
s_on_signal (int signum)
{
    drover_worker_stop (s_worker);      //  async-signal-safe
}

static int
s_reverse (drover_job_t *job, void *arg)
{
    size_t size;
    const char *in = drover_job_payload (job, &size);
    char *out = malloc (size? size: 1);
    if (!out)
        return drover_job_set_error (job, "out of memory", false), -1;
    for (size_t i = 0; i < size; i++)
        out [i] = in [size - 1 - i];
    return drover_job_take_result (job, out, size);
}

int
main (int argc, char *argv [])
{
    if (argc != 2) {
        fprintf (stderr, "usage: worker QUEUE\n");
        return 2;
    }
    drover_connect_t cfg = {0};
    drover_connect_from_env (&cfg);
    s_worker = drover_worker_new (&cfg);
    if (!s_worker || drover_worker_handle (s_worker, argv [1], s_reverse, NULL)) {
        fprintf (stderr, "worker: bad settings (see above)\n");
        return 2;
    }
    drover_worker_set_concurrency (s_worker, 2);
    signal (SIGINT, s_on_signal);
    signal (SIGTERM, s_on_signal);
    int rc = drover_worker_run (s_worker);
    if (rc)
        fprintf (stderr, "worker: %s\n", drover_strerror (rc));
    drover_worker_destroy (&s_worker);
    return rc? 3: 0;
}
