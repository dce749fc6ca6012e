/*  persist.h - job records in the journal: what is written when a job
    changes, and how the store is rebuilt from them at start-up.

    Records (see persist.c for the byte layout):
      JOB_NEW     accepted: options, owner, payload
      JOB_RETRY   an attempt failed; when it may run again
      JOB_END     done, failed or cancelled, with result or error
      JOB_FORGET  result expired; the id is free again
      QUEUE       a queue's settings (paused)
      STATE_SET   a shared-state key's new value, version and namespace seq
      STATE_DEL   a shared-state key removed, with the namespace seq
      STATE_SEQ   a namespace's seq (compaction: seq never goes back)
    A dispatch is not recorded: after a restart a running job is queued
    again with the attempts its recorded failures counted.
*/
#ifndef BROKER_PERSIST_H_INCLUDED
#define BROKER_PERSIST_H_INCLUDED

#include "job.h"
#include "journal.h"
#include "state.h"

enum {
    PERSIST_JOB_NEW = 1,
    PERSIST_JOB_RETRY = 2,
    PERSIST_JOB_END = 3,
    PERSIST_JOB_FORGET = 4,
    PERSIST_QUEUE = 5,
    PERSIST_STATE_SET = 6,
    PERSIST_STATE_DEL = 7,
    PERSIST_STATE_SEQ = 8
};

//  Each appends one record to the journal's current batch; 0 or -1.
int persist_job_new (journal_t *journal, const job_t *job);
int persist_job_retry (journal_t *journal, const job_t *job);
int persist_job_end (journal_t *journal, const job_t *job);
int persist_job_forget (journal_t *journal, const uint8_t *id);
//  A queue's settings (paused or not).
int persist_queue (journal_t *journal, const queue_t *queue);

//  A shared-state change: the entry as it now stands, at namespace seq.
int persist_state_set (journal_t *journal, const char *ns, const state_entry_t *entry,
                       uint64_t seq);
int persist_state_del (journal_t *journal, const char *ns, const uint8_t *key, size_t key_size,
                       uint64_t seq);

//  Finds or creates the queue of that name for a replayed job.
typedef queue_t *(persist_queue_fn) (const char *name, void *arg);
//  Finds or creates the submitter of that key for a replayed job.
typedef submitter_t *(persist_submitter_fn) (const char *key, void *arg);

//  Replays the journal into store. Jobs come back with their options,
//  attempts, error, result and wake/finish times, in state QUEUED (to be
//  placed by the caller), SCHEDULED (wake_wall in the future), or ended.
//  They are in no queue list or timer yet. Returns 0, or -1 with why.
//  Shared-state records rebuild the namespaces of state, with their seq.
int persist_replay (journal_t *journal, job_store_t *store, state_t *state,
                    persist_queue_fn *queue_fn, persist_submitter_fn *submitter_fn,
                    void *arg, char *why, size_t why_size);

//  Rewrites the journal with only the live jobs of store and the
//  settings of the given queues, plus every shared-state entry and each
//  namespace's seq. 0 or -1.
int persist_compact (journal_t *journal, job_store_t *store, state_t *state,
                     queue_t **queues, size_t queue_count,
                     char *why, size_t why_size);

//  Bytes a job costs in a compacted journal (for the compaction trigger).
uint64_t persist_job_bytes (const job_t *job);

#endif
