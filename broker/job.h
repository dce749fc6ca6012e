/*  job.h - a job as the broker holds it, and the store of all jobs.

    The store owns every job from acceptance until its result expires: a
    slab pool (no malloc per job on the hot path) and an open-addressing
    table keyed by the 128-bit job id (ids are random, so their first bytes
    are already a good hash).
*/
#ifndef BROKER_JOB_H_INCLUDED
#define BROKER_JOB_H_INCLUDED

#include "codec.h"

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

typedef struct _queue_t queue_t;
typedef struct _peer_t peer_t;

//  A key that submitted jobs, shared by all its jobs: who they belong to
//  (shown to workers and admins) and how many of them have not ended (the
//  per-key in-flight limit). The broker keeps one per key for its lifetime.
typedef struct {
    char key [41];                  //  Z85 public key, "" without CURVE
    uint32_t unfinished;            //  its jobs queued, scheduled or running
} submitter_t;

typedef struct _job_t {
    uint8_t id [DRV_ID_SIZE];       //  client-chosen id
    struct _job_t *prev;            //  neighbours in a queue level or a worker's in-flight list
    struct _job_t *next;
    queue_t *queue;                 //  queue it belongs to
    peer_t *worker;                 //  worker running it (state RUNNING)
    uint8_t owner [DRV_ID_SIZE];    //  session of the submitting client
    submitter_t *submitter;         //  key of the submitting client (never NULL once accepted)
    uint8_t (*watchers) [DRV_ID_SIZE];  //  other sessions to deliver to (malloc'd, rare)
    uint32_t watcher_count;         //  entries in watchers
    zmq_msg_t payload;              //  input, shared (refcounted) when sent
    zmq_msg_t result;               //  output once done
    char *error;                    //  last failure text (malloc'd) or NULL
    drv_job_state_t state;          //  life-cycle state
    int32_t priority;               //  0..9
    uint32_t attempts;              //  dispatches so far
    uint32_t max_attempts;          //  then it fails
    uint32_t timeout_ms;            //  per attempt
    uint32_t backoff_ms;            //  retry backoff base
    uint32_t result_ttl_s;          //  result retention
    uint64_t created_wall;          //  Unix ms accepted
    uint64_t finished_wall;         //  Unix ms ended
    uint64_t wake_wall;             //  Unix ms a scheduled job becomes ready (survives restarts)
    uint64_t due;                   //  monotonic ms of its timer (run-at, timeout, expiry);
                                    //  while queued (no timer), when it became ready
    size_t heap_index;              //  position in the timer heap, or JOB_NOT_IN_HEAP
    uint32_t pinned;                //  outgoing messages still referring to it
    uint32_t journal_bytes;         //  its share of the broker's live journal size
    uint32_t payload_size;          //  input size (the payload is freed once the job ends)
    uint32_t progress;              //  percent last reported while running
    char *progress_message;         //  its text (malloc'd) or NULL
} job_t;

#define JOB_NOT_IN_HEAP ((size_t) -1)

typedef struct _job_store_t job_store_t;

job_store_t *job_store_new (void);
//  Frees every job still held.
void job_store_destroy (job_store_t **self_p);

//  Returns the job with this id, or NULL.
job_t *job_store_find (job_store_t *self, const uint8_t *id);
//  Creates a zeroed job with this id and enters it in the table; NULL when
//  out of memory. The id must not be present already.
job_t *job_store_add (job_store_t *self, const uint8_t *id);
//  Removes the job from the table and returns it to the pool, closing its
//  payload and result and freeing its error and watchers.
void job_store_remove (job_store_t *self, job_t *job);
//  Jobs held.
size_t job_store_size (job_store_t *self);
//  Iterates over all jobs: start with *cursor = 0; returns NULL at the end.
//  The store must not change during the walk.
job_t *job_store_next (job_store_t *self, size_t *cursor);

//  Adds session to the job's watchers unless it is the owner or present.
//  Returns 0 or -1 when out of memory.
int job_watch (job_t *job, const uint8_t *session);
//  Replaces the job's error text (copied; NULL clears).
void job_set_error (job_t *job, const char *error);

//  Timer heap: a min-heap of jobs ordered by job->due. A job is in it at
//  most once (job->heap_index); all operations are O(log n).
typedef struct _job_heap_t job_heap_t;

job_heap_t *job_heap_new (void);
void job_heap_destroy (job_heap_t **self_p);
//  Inserts job with job->due already set. Returns 0 or -1 (out of memory).
int job_heap_push (job_heap_t *self, job_t *job);
//  Removes job if present.
void job_heap_remove (job_heap_t *self, job_t *job);
//  Earliest job, or NULL.
job_t *job_heap_peek (job_heap_t *self);
size_t job_heap_size (job_heap_t *self);

#endif
