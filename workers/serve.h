/*  serve.h - one worker process: a drover worker serving until told to stop
    (internal).

    Runs in each child of the supervisor (or alone, with --processes 0).
    SIGTERM and SIGINT are taken by a thread of our own with sigwait() and
    turned into drover_worker_stop(): the worker finishes its in-flight
    jobs, reports them, takes no more and returns. Taking the signals on a
    dedicated thread means no handler competes with whatever the SDK or
    CZMQ may install.
*/
#ifndef SERVE_H_INCLUDED
#define SERVE_H_INCLUDED

#include "drover.h"
#include <stddef.h>

typedef struct {
    drover_connect_t connect;   //  broker and keys (strings stay the caller's)
    const char *const *queues;  //  queue names to serve
    size_t queue_count;         //  entries in queues
    drover_handler_fn *handler; //  the same handler for every queue
    void *handler_arg;          //  its argument
    int concurrency;            //  handler threads; 0 = SDK default (1)
    int prefetch;               //  jobs held ahead; -1 = SDK default
} serve_config_t;

//  Serves until SIGTERM or SIGINT, then drains. Returns the exit status:
//  0 drained; 2 the settings were refused; 3 the first connection failed
//  (unreachable, key refused, certificate unreadable, protocol mismatch);
//  1 anything else. On non-zero a one-line reason is written into why.
int serve_run (const serve_config_t *config, char *why, size_t why_size);

#endif
