/*  persist.c - job records: encoding, replay and compaction.

    Layouts, little-endian, after the journal's own framing:
      JOB_NEW    u8 version, id[16], owner[16], u8 priority, u32 max_attempts,
                 u32 timeout_ms, u32 backoff_ms, u32 result_ttl_s,
                 u64 created_wall, u64 wake_wall, u8 queue length, queue,
                 [version 2: u8 submitter key length, key,]
                 then the payload to the end of the record
      JOB_RETRY  id[16], u32 attempts, u64 wake_wall, u16 error length, error
      JOB_END    id[16], u8 state, u32 attempts, u64 finished_wall,
                 u16 error length, error, then the result to the end
      JOB_FORGET id[16]
      QUEUE      u8 paused, u8 name length, name
      STATE_SET  u8 ns length, ns, u16 key length, key, u64 version, u64 seq,
                 then the value to the end of the record
      STATE_DEL  u8 ns length, ns, u16 key length, key, u64 seq
      STATE_SEQ  u8 ns length, ns, u64 seq
    A namespace's seq on replay is the highest seen, so a compacted journal
    (which writes each entry with the namespace's current seq) and the
    STATE_SEQ record keep it from ever going back.
*/
#include "persist.h"
#include "queue.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_VERSION 2             //  JOB_NEW; version 1 (no submitter) still replays
#define ERROR_MAX 1024

//  Little-endian writer into a caller's buffer.
typedef struct {
    uint8_t *data;      //  buffer
    size_t size;        //  bytes written
} writer_t;

static void
s_put (writer_t *w, const void *data, size_t size)
{
    memcpy (w->data + w->size, data, size);
    w->size += size;
}

static void
s_put_u8 (writer_t *w, uint8_t v)
{
    w->data [w->size++] = v;
}

static void
s_put_u16 (writer_t *w, uint16_t v)
{
    for (int i = 0; i < 2; i++)
        w->data [w->size++] = (uint8_t) (v >> (8 * i));
}

static void
s_put_u32 (writer_t *w, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        w->data [w->size++] = (uint8_t) (v >> (8 * i));
}

static void
s_put_u64 (writer_t *w, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        w->data [w->size++] = (uint8_t) (v >> (8 * i));
}

//  Bounds-checked reader: a short record sets failed instead of reading past.
typedef struct {
    const uint8_t *data;    //  record body
    size_t size;            //  its length
    size_t pos;             //  read position
    bool failed;            //  read past the end
} reader_t;

static const uint8_t *
s_get (reader_t *r, size_t size)
{
    if (r->failed || r->size - r->pos < size) {
        r->failed = true;
        return NULL;
    }
    const uint8_t *p = r->data + r->pos;
    r->pos += size;
    return p;
}

static uint64_t
s_get_le (reader_t *r, size_t size)
{
    const uint8_t *p = s_get (r, size);
    uint64_t v = 0;
    for (size_t i = 0; p && i < size; i++)
        v |= (uint64_t) p [i] << (8 * i);
    return v;
}

static size_t
s_error_len (const job_t *job)
{
    size_t len = job->error? strlen (job->error): 0;
    return len > ERROR_MAX? ERROR_MAX: len;
}

//  journal_append or journal_compact_append: the same records serve both
typedef int (append_fn) (journal_t *journal, uint8_t type, const void *head, size_t head_size,
                         const void *tail, size_t tail_size);

static int
s_write_new (journal_t *journal, append_fn *append, const job_t *job)
{
    uint8_t head [128 + QUEUE_NAME_MAX + 41];
    writer_t w = {head, 0};
    size_t qlen = strlen (job->queue->name);
    s_put_u8 (&w, RECORD_VERSION);
    s_put (&w, job->id, DRV_ID_SIZE);
    s_put (&w, job->owner, DRV_ID_SIZE);
    s_put_u8 (&w, (uint8_t) job->priority);
    s_put_u32 (&w, job->max_attempts);
    s_put_u32 (&w, job->timeout_ms);
    s_put_u32 (&w, job->backoff_ms);
    s_put_u32 (&w, job->result_ttl_s);
    s_put_u64 (&w, job->created_wall);
    s_put_u64 (&w, job->wake_wall);
    s_put_u8 (&w, (uint8_t) qlen);
    s_put (&w, job->queue->name, qlen);
    const char *key = job->submitter? job->submitter->key: "";
    size_t klen = strlen (key);
    s_put_u8 (&w, (uint8_t) klen);
    s_put (&w, key, klen);
    return append (journal, PERSIST_JOB_NEW, head, w.size,
                   zmq_msg_data ((zmq_msg_t *) &job->payload),
                   zmq_msg_size ((zmq_msg_t *) &job->payload));
}

static int
s_write_retry (journal_t *journal, append_fn *append, const job_t *job)
{
    uint8_t head [64];
    writer_t w = {head, 0};
    size_t elen = s_error_len (job);
    s_put (&w, job->id, DRV_ID_SIZE);
    s_put_u32 (&w, job->attempts);
    s_put_u64 (&w, job->wake_wall);
    s_put_u16 (&w, (uint16_t) elen);
    return append (journal, PERSIST_JOB_RETRY, head, w.size, job->error, elen);
}

static int
s_write_end (journal_t *journal, append_fn *append, const job_t *job)
{
    uint8_t head [64 + ERROR_MAX];
    writer_t w = {head, 0};
    size_t elen = s_error_len (job);
    s_put (&w, job->id, DRV_ID_SIZE);
    s_put_u8 (&w, (uint8_t) job->state);
    s_put_u32 (&w, job->attempts);
    s_put_u64 (&w, job->finished_wall);
    s_put_u16 (&w, (uint16_t) elen);
    if (elen)
        s_put (&w, job->error, elen);
    return append (journal, PERSIST_JOB_END, head, w.size,
                   zmq_msg_data ((zmq_msg_t *) &job->result),
                   zmq_msg_size ((zmq_msg_t *) &job->result));
}

int
persist_job_new (journal_t *journal, const job_t *job)
{
    return s_write_new (journal, journal_append, job);
}

int
persist_job_retry (journal_t *journal, const job_t *job)
{
    return s_write_retry (journal, journal_append, job);
}

int
persist_job_end (journal_t *journal, const job_t *job)
{
    return s_write_end (journal, journal_append, job);
}

int
persist_job_forget (journal_t *journal, const uint8_t *id)
{
    return journal_append (journal, PERSIST_JOB_FORGET, id, DRV_ID_SIZE, NULL, 0);
}

static int
s_write_queue (journal_t *journal, append_fn *append, const queue_t *queue)
{
    uint8_t head [2 + QUEUE_NAME_MAX];
    writer_t w = {head, 0};
    size_t qlen = strlen (queue->name);
    s_put_u8 (&w, queue->paused);
    s_put_u8 (&w, (uint8_t) qlen);
    s_put (&w, queue->name, qlen);
    return append (journal, PERSIST_QUEUE, head, w.size, NULL, 0);
}

int
persist_queue (journal_t *journal, const queue_t *queue)
{
    return s_write_queue (journal, journal_append, queue);
}

//  Namespace name and key, the common start of the state records.
static void
s_put_ns_key (writer_t *w, const char *ns, const uint8_t *key, size_t key_size)
{
    size_t nlen = strlen (ns);
    s_put_u8 (w, (uint8_t) nlen);
    s_put (w, ns, nlen);
    s_put_u16 (w, (uint16_t) key_size);
    s_put (w, key, key_size);
}

static int
s_write_state_set (journal_t *journal, append_fn *append, const char *ns,
                   const state_entry_t *entry, uint64_t seq)
{
    uint8_t head [32 + QUEUE_NAME_MAX + STATE_KEY_MAX];
    writer_t w = {head, 0};
    s_put_ns_key (&w, ns, entry->key, entry->key_size);
    s_put_u64 (&w, entry->version);
    s_put_u64 (&w, seq);
    return append (journal, PERSIST_STATE_SET, head, w.size,
                   zmq_msg_data ((zmq_msg_t *) &entry->value),
                   zmq_msg_size ((zmq_msg_t *) &entry->value));
}

int
persist_state_set (journal_t *journal, const char *ns, const state_entry_t *entry, uint64_t seq)
{
    return s_write_state_set (journal, journal_append, ns, entry, seq);
}

int
persist_state_del (journal_t *journal, const char *ns, const uint8_t *key, size_t key_size,
                   uint64_t seq)
{
    uint8_t head [32 + QUEUE_NAME_MAX + STATE_KEY_MAX];
    writer_t w = {head, 0};
    s_put_ns_key (&w, ns, key, key_size);
    s_put_u64 (&w, seq);
    return journal_append (journal, PERSIST_STATE_DEL, head, w.size, NULL, 0);
}

static int
s_write_state_seq (journal_t *journal, append_fn *append, const state_ns_t *ns)
{
    uint8_t head [16 + QUEUE_NAME_MAX];
    writer_t w = {head, 0};
    size_t nlen = strlen (ns->name);
    s_put_u8 (&w, (uint8_t) nlen);
    s_put (&w, ns->name, nlen);
    s_put_u64 (&w, ns->seq);
    return append (journal, PERSIST_STATE_SEQ, head, w.size, NULL, 0);
}

uint64_t
persist_job_bytes (const job_t *job)
{
    //  Framing and fixed fields of one JOB_NEW, plus JOB_END when ended
    uint64_t bytes = 96 + strlen (job->queue->name) + zmq_msg_size ((zmq_msg_t *) &job->payload);
    if (job->state >= DRV_JOB_DONE || job->attempts)
        bytes += 48 + s_error_len (job) + zmq_msg_size ((zmq_msg_t *) &job->result);
    return bytes;
}

//  Replay -------------------------------------------------------------------

typedef struct {
    job_store_t *store;             //  being rebuilt
    state_t *state;                 //  shared state being rebuilt
    persist_queue_fn *queue_fn;     //  resolves queue names
    persist_submitter_fn *submitter_fn; //  resolves submitter keys (may be NULL)
    void *arg;                      //  for both
    char *why;                      //  error text out
    size_t why_size;                //  its size
    uint64_t records;               //  records applied
} replay_t;

static int
s_replay_fail (replay_t *self, const char *what)
{
    snprintf (self->why, self->why_size, "journal record %" PRIu64 " (%s) is malformed",
              self->records + 1, what);
    return -1;
}

static char *
s_error_copy (const uint8_t *text, size_t len)
{
    char *copy = malloc (len + 1);
    if (copy) {
        memcpy (copy, text, len);
        copy [len] = 0;
    }
    return copy;
}

static int
s_replay_new (replay_t *self, reader_t *r)
{
    uint64_t version = s_get_le (r, 1);
    if (version != 1 && version != RECORD_VERSION)
        return s_replay_fail (self, "unknown JOB_NEW version");
    const uint8_t *id = s_get (r, DRV_ID_SIZE);
    const uint8_t *owner = s_get (r, DRV_ID_SIZE);
    uint8_t priority = (uint8_t) s_get_le (r, 1);
    uint32_t max_attempts = (uint32_t) s_get_le (r, 4);
    uint32_t timeout_ms = (uint32_t) s_get_le (r, 4);
    uint32_t backoff_ms = (uint32_t) s_get_le (r, 4);
    uint32_t ttl = (uint32_t) s_get_le (r, 4);
    uint64_t created = s_get_le (r, 8);
    uint64_t wake = s_get_le (r, 8);
    size_t qlen = (size_t) s_get_le (r, 1);
    const uint8_t *qname = s_get (r, qlen);
    size_t klen = version >= 2? (size_t) s_get_le (r, 1): 0;
    const uint8_t *kbytes = s_get (r, klen);
    if (r->failed || priority >= QUEUE_LEVELS || klen > 40)
        return s_replay_fail (self, "JOB_NEW");
    char key [41];
    memcpy (key, kbytes, klen);
    key [klen] = 0;
    char name [QUEUE_NAME_MAX + 1];
    memcpy (name, qname, qlen);
    name [qlen] = 0;
    if (!drv_queue_name_valid (name))
        return s_replay_fail (self, "JOB_NEW queue name");
    //  A compaction may write a job again; the later record wins
    job_t *job = job_store_find (self->store, id);
    if (job)
        job_store_remove (self->store, job);
    queue_t *queue = self->queue_fn (name, self->arg);
    job = queue? job_store_add (self->store, id): NULL;
    if (!job) {
        snprintf (self->why, self->why_size, "out of memory replaying the journal");
        return -1;
    }
    job->queue = queue;
    job->submitter = self->submitter_fn? self->submitter_fn (key, self->arg): NULL;
    memcpy (job->owner, owner, DRV_ID_SIZE);
    job->priority = priority;
    job->max_attempts = max_attempts;
    job->timeout_ms = timeout_ms;
    job->backoff_ms = backoff_ms;
    job->result_ttl_s = ttl;
    job->created_wall = created;
    job->wake_wall = wake;
    job->state = DRV_JOB_QUEUED;
    size_t size = r->size - r->pos;
    if (zmq_msg_init_size (&job->payload, size)) {
        snprintf (self->why, self->why_size, "out of memory replaying the journal");
        return -1;
    }
    memcpy (zmq_msg_data (&job->payload), r->data + r->pos, size);
    job->payload_size = (uint32_t) size;
    return 0;
}

static int
s_replay_retry (replay_t *self, reader_t *r)
{
    const uint8_t *id = s_get (r, DRV_ID_SIZE);
    uint32_t attempts = (uint32_t) s_get_le (r, 4);
    uint64_t wake = s_get_le (r, 8);
    size_t elen = (size_t) s_get_le (r, 2);
    const uint8_t *error = s_get (r, elen);
    if (r->failed)
        return s_replay_fail (self, "JOB_RETRY");
    job_t *job = job_store_find (self->store, id);
    if (!job)
        return 0;       //  forgotten already: nothing to update
    //  A retry also brings a dead job back to life
    job->state = DRV_JOB_QUEUED;
    job->attempts = attempts;
    job->wake_wall = wake;
    free (job->error);
    job->error = s_error_copy (error, elen);
    return 0;
}

static int
s_replay_end (replay_t *self, reader_t *r)
{
    const uint8_t *id = s_get (r, DRV_ID_SIZE);
    uint8_t state = (uint8_t) s_get_le (r, 1);
    uint32_t attempts = (uint32_t) s_get_le (r, 4);
    uint64_t finished = s_get_le (r, 8);
    size_t elen = (size_t) s_get_le (r, 2);
    const uint8_t *error = s_get (r, elen);
    if (r->failed || state < DRV_JOB_DONE || state > DRV_JOB_CANCELLED)
        return s_replay_fail (self, "JOB_END");
    job_t *job = job_store_find (self->store, id);
    if (!job)
        return 0;
    job->state = (drv_job_state_t) state;
    job->attempts = attempts;
    job->finished_wall = finished;
    free (job->error);
    job->error = elen? s_error_copy (error, elen): NULL;
    size_t size = r->size - r->pos;
    zmq_msg_close (&job->result);
    if (zmq_msg_init_size (&job->result, size)) {
        snprintf (self->why, self->why_size, "out of memory replaying the journal");
        return -1;
    }
    memcpy (zmq_msg_data (&job->result), r->data + r->pos, size);
    return 0;
}

//  Reads a state record's namespace (validated, into name) and finds or
//  creates it; NULL on a malformed name (with why set) or no memory.
static state_ns_t *
s_replay_ns (replay_t *self, reader_t *r, const char *what)
{
    size_t nlen = (size_t) s_get_le (r, 1);
    const uint8_t *text = s_get (r, nlen);
    char name [QUEUE_NAME_MAX + 1];
    if (r->failed || nlen > QUEUE_NAME_MAX) {
        s_replay_fail (self, what);
        return NULL;
    }
    memcpy (name, text, nlen);
    name [nlen] = 0;
    if (!drv_queue_name_valid (name)) {
        s_replay_fail (self, what);
        return NULL;
    }
    state_ns_t *ns = state_ns_require (self->state, name);
    if (!ns)
        snprintf (self->why, self->why_size, "out of memory replaying the journal");
    return ns;
}

static int
s_replay_state (replay_t *self, uint8_t type, reader_t *r)
{
    const char *what = type == PERSIST_STATE_SET? "STATE_SET"
                     : type == PERSIST_STATE_DEL? "STATE_DEL": "STATE_SEQ";
    state_ns_t *ns = s_replay_ns (self, r, what);
    if (!ns)
        return -1;
    const uint8_t *key = NULL;
    size_t klen = 0;
    uint64_t version = 0;
    if (type != PERSIST_STATE_SEQ) {
        klen = (size_t) s_get_le (r, 2);
        key = s_get (r, klen);
        if (type == PERSIST_STATE_SET)
            version = s_get_le (r, 8);
    }
    uint64_t seq = s_get_le (r, 8);
    if (r->failed || (type != PERSIST_STATE_SEQ && (klen == 0 || klen > STATE_KEY_MAX)))
        return s_replay_fail (self, what);
    if (seq > ns->seq)
        ns->seq = seq;
    if (type == PERSIST_STATE_DEL)
        state_remove (self->state, ns, key, klen);
    else
    if (type == PERSIST_STATE_SET) {
        zmq_msg_t value;
        size_t size = r->size - r->pos;
        if (zmq_msg_init_size (&value, size)) {
            snprintf (self->why, self->why_size, "out of memory replaying the journal");
            return -1;
        }
        memcpy (zmq_msg_data (&value), r->data + r->pos, size);
        if (!state_put (self->state, ns, key, klen, version, &value)) {
            zmq_msg_close (&value);
            snprintf (self->why, self->why_size, "out of memory replaying the journal");
            return -1;
        }
    }
    return 0;
}

static int
s_replay_record (uint8_t type, const uint8_t *body, size_t size, void *arg)
{
    replay_t *self = (replay_t *) arg;
    reader_t r = {body, size, 0, false};
    int rc;
    switch (type) {
        case PERSIST_JOB_NEW:
            rc = s_replay_new (self, &r);
            break;
        case PERSIST_JOB_RETRY:
            rc = s_replay_retry (self, &r);
            break;
        case PERSIST_JOB_END:
            rc = s_replay_end (self, &r);
            break;
        case PERSIST_JOB_FORGET: {
            const uint8_t *id = s_get (&r, DRV_ID_SIZE);
            if (!id)
                return s_replay_fail (self, "JOB_FORGET");
            job_t *job = job_store_find (self->store, id);
            if (job)
                job_store_remove (self->store, job);
            rc = 0;
            break;
        }
        case PERSIST_QUEUE: {
            uint8_t paused = (uint8_t) s_get_le (&r, 1);
            size_t qlen = (size_t) s_get_le (&r, 1);
            const uint8_t *qname = s_get (&r, qlen);
            if (r.failed || paused > 1)
                return s_replay_fail (self, "QUEUE");
            char name [QUEUE_NAME_MAX + 1];
            memcpy (name, qname, qlen);
            name [qlen] = 0;
            queue_t *queue = drv_queue_name_valid (name)? self->queue_fn (name, self->arg): NULL;
            if (!queue)
                return s_replay_fail (self, "QUEUE name");
            queue->paused = paused;
            rc = 0;
            break;
        }
        case PERSIST_STATE_SET:
        case PERSIST_STATE_DEL:
        case PERSIST_STATE_SEQ:
            rc = s_replay_state (self, type, &r);
            break;
        default:
            return s_replay_fail (self, "unknown record type");
    }
    self->records++;
    return rc;
}

int
persist_replay (journal_t *journal, job_store_t *store, state_t *state,
                persist_queue_fn *queue_fn, persist_submitter_fn *submitter_fn,
                void *arg, char *why, size_t why_size)
{
    replay_t replay = {store, state, queue_fn, submitter_fn, arg, why, why_size, 0};
    return journal_replay (journal, s_replay_record, &replay, why, why_size);
}

int
persist_compact (journal_t *journal, job_store_t *store, state_t *state,
                 queue_t **queues, size_t queue_count, char *why, size_t why_size)
{
    if (journal_compact_begin (journal, why, why_size))
        return -1;
    for (size_t i = 0; i < queue_count; i++)
        if (queues [i]->paused && s_write_queue (journal, journal_compact_append, queues [i])) {
            snprintf (why, why_size, "cannot write the compacted journal");
            journal_compact_abort (journal);
            return -1;
        }
    //  Each live job as it stands: NEW, then END if it ended, or RETRY if
    //  attempts were made (a running job counts its current attempt)
    size_t cursor = 0;
    job_t *job;
    while ((job = job_store_next (store, &cursor))) {
        int rc = s_write_new (journal, journal_compact_append, job);
        if (!rc && job->state >= DRV_JOB_DONE)
            rc = s_write_end (journal, journal_compact_append, job);
        else
        if (!rc && job->attempts)
            rc = s_write_retry (journal, journal_compact_append, job);
        if (rc) {
            snprintf (why, why_size, "cannot write the compacted journal");
            journal_compact_abort (journal);
            return -1;
        }
    }
    //  Each namespace's seq first (an empty namespace keeps it too), then
    //  its entries as they stand
    for (state_ns_t *ns = state_ns_first (state); ns; ns = state_ns_next (state)) {
        int rc = s_write_state_seq (journal, journal_compact_append, ns);
        for (size_t i = 0; !rc && i < ns->count; i++)
            rc = s_write_state_set (journal, journal_compact_append, ns->name, ns->entries [i],
                                    ns->seq);
        if (rc) {
            snprintf (why, why_size, "cannot write the compacted journal");
            journal_compact_abort (journal);
            return -1;
        }
    }
    return journal_compact_end (journal, why, why_size);
}
