/*  queue.h - a named queue: ready jobs by priority, and the workers serving it.

    Ready jobs sit in one FIFO per priority level (intrusive lists through
    job->prev/next), so push, pop and removal are O(1) and equal-priority
    jobs run in submission order.
*/
#ifndef BROKER_QUEUE_H_INCLUDED
#define BROKER_QUEUE_H_INCLUDED

#include "job.h"
#include "prom.h"

#include <stdbool.h>

#define QUEUE_LEVELS 10
#define QUEUE_NAME_MAX DRV_QUEUE_NAME_MAX

typedef struct {
    job_t *head;                    //  oldest
    job_t *tail;                    //  newest
} job_list_t;

struct _queue_t {
    char name [QUEUE_NAME_MAX + 1]; //  queue name
    job_list_t levels [QUEUE_LEVELS];   //  ready jobs, index = priority
    uint64_t ready;                 //  jobs in levels
    uint64_t scheduled;             //  jobs waiting for a time
    uint64_t running;               //  jobs at workers
    uint64_t submitted;             //  counters since start
    uint64_t done;
    uint64_t failed;
    uint64_t retried;
    job_list_t dead;                //  failed jobs, oldest first (the dead-letter list)
    uint64_t dead_count;            //  jobs in dead
    bool paused;                    //  an admin stopped dispatch
    double submit_rate;             //  accepted per second, moving average
    double done_rate;               //  finished per second, moving average
    uint64_t rate_submitted;        //  submitted at the last rate sample
    uint64_t rate_done;             //  done + failed at the last rate sample
    peer_t **workers;               //  workers serving this queue
    size_t worker_count;            //  entries in workers
    size_t worker_cap;              //  allocated entries
    size_t next_worker;             //  round-robin position
    bool dirty;                     //  needs a dispatch pass this turn
    struct _queue_t *next_dirty;    //  dirty list link
    prom_histogram_t wait_s;        //  seconds from ready to dispatched, per attempt
    prom_histogram_t run_s;         //  seconds from dispatched to a result, per attempt
};

queue_t *queue_new (const char *name);
void queue_destroy (queue_t **self_p);

void job_list_append (job_list_t *list, job_t *job);
void job_list_unlink (job_list_t *list, job_t *job);

//  Appends a ready job at its priority level.
void queue_push (queue_t *self, job_t *job);
//  Takes the oldest job of the highest non-empty level, or NULL.
job_t *queue_pop (queue_t *self);
//  Removes a ready job from wherever it sits.
void queue_unlink (queue_t *self, job_t *job);

int queue_add_worker (queue_t *self, peer_t *worker);
void queue_remove_worker (queue_t *self, peer_t *worker);

#endif
