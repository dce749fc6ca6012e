/*  fake_broker.h - a tiny in-test broker speaking just enough of the
    protocol (plaintext) to exercise the SDK without droverd: Welcome,
    SubmitAck, Deliver, QueryReply, StatsReply, Dispatch, Bye and
    heartbeats, QueueControl and DeadLetter (admin requests; queue "secret"
    is denied, queue "nope" unknown; failed jobs are the dead letters), and
    ProgressReport (counted, latest kept per job), plus switches to inject REHELLO, a restart and silence.
    Shared state: StateRequests answered from an in-memory map, each change
    published on a PUB socket (port in Welcome.state_port) with per-namespace
    sequences; switches to skip a sequence number (a gap) or to drop the
    next publications (a subscriber that missed them).
    Sync primitives: locks (holder = routing id, fencing token), semaphores,
    events and barriers with waiters answered at their deadline with
    CODE_TIMEOUT; name "secret" is denied; switches to delay every
    SyncReply (a grant that comes after the client gave up) and to ignore
    waiters' deadlines; a restart (forget) drops all of it.

    One ROUTER on tcp://127.0.0.1:* in its own thread and ZeroMQ context.
    Tests read and set fields under fb->lock.
*/
#ifndef FAKE_BROKER_H_INCLUDED
#define FAKE_BROKER_H_INCLUDED

#undef NDEBUG
#include "codec.h"
#include "idmap.h"
#include "util.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int state;                  //  drv_job_state_t
    zmq_msg_t payload;          //  result (client side) or input (worker side)
    char error [128];           //  failure text from a Report
    uint32_t progress;          //  latest progress percent
    char progress_message [512];    //  its text
} fb_job_t;

typedef struct {
    pthread_mutex_t lock;       //  guards everything below but the thread
    pthread_t thread;           //  broker loop
    atomic_bool stop;           //  ends the loop
    char endpoint [64];         //  where it listens
    void *ctx;                  //  its context
    bool shared_ctx;            //  ctx belongs to someone else
    void *router;               //  the socket (broker thread only)
    //  behaviour
    uint32_t heartbeat_ms;      //  announced and sent
    uint32_t max_payload;       //  announced
    uint32_t max_batch;         //  announced
    bool deliver;               //  deliver results right after acking
    int rehello_submits;        //  answer this many Submits with REHELLO
    bool forget;                //  next turn: forget peers and jobs (restart)
    bool silent;                //  ignore everything, send nothing
    bool deny_hello;            //  answer Hello with CODE_DENIED
    //  client-side counters
    int hellos;                 //  Hellos received
    int submit_msgs;            //  Submit messages received
    int jobs;                   //  jobs received in them (incl. resends)
    int max_jobs_per_msg;       //  largest Submit
    int queries;                //  Query messages
    int byes;                   //  Byes received
    bool known;                 //  the peer is registered
    zmq_msg_t peer;             //  its routing id
    drv_idmap_t *store;         //  id -> fb_job_t
    //  worker side
    uint32_t credit;            //  worker's credit
    int reports;                //  Report messages
    int results;                //  results in them
    int dispatched;             //  jobs sent
    uint8_t (*todo) [16];       //  ids queued for dispatch
    size_t todo_count;          //  how many
    uint32_t job_timeout_ms;    //  Job.timeout_ms sent
    uint8_t cancel_id [16];     //  send Cancel for this id when set
    bool cancel_pending;        //  cancel_id is set
    uint64_t last_send;         //  for heartbeats
    uint32_t last_hello_credit; //  credit in the last Hello
    //  admin requests
    int queue_controls;         //  QueueControl messages
    int dead_letters;           //  DeadLetter messages
    //  progress (worker side)
    int progress_msgs;          //  ProgressReport messages
    int progress_entries;       //  entries in them
    int progress_dups;          //  entries repeating an id in the same message
    size_t progress_longest;    //  longest text received
    //  shared state
    void *pub;                  //  state PUB socket
    uint32_t state_port;        //  its port, announced
    uint32_t max_value;         //  announced
    struct fb_kv *kv;           //  entries
    size_t kv_count;            //  in use
    size_t kv_cap;              //  allocated
    struct fb_seq *seqs;        //  per-namespace sequence
    size_t seq_count;           //  namespaces
    int state_requests;         //  StateRequest messages
    int snapshots;              //  SNAPSHOT requests among them
    int skip_seq;               //  skip this many sequence numbers at the next change
    int drop_pubs;              //  changes not to publish (still counted)
    int snapshot_races;         //  changes to make just before answering a SNAPSHOT
    uint8_t broker_id_byte;     //  Welcome.broker_id fill (a restart changes it)
    //  sync primitives
    struct fb_prim *prims;      //  locks, semaphores, events, barriers
    size_t prim_count;          //  in use
    struct fb_waiter *waiters;  //  blocked requests, in arrival order
    size_t waiter_count;        //  in use
    struct fb_waiter *late;     //  delayed replies (sync_delay_ms)
    size_t late_count;          //  in use
    int sync_requests;          //  SyncRequest messages
    int sync_ops [9];           //  of them, per drv_sync_op_t
    uint32_t last_sync_timeout; //  timeout_ms of the last one
    uint32_t sync_delay_ms;     //  hold every SyncReply this long
    bool sync_no_deadline;      //  never time waiters out
} fb_t;

#define FB_PEER_MAX 256

struct fb_prim {
    int kind;                   //  1 lock, 2 semaphore, 3 event, 4 barrier
    char name [129];            //  its name
    uint8_t holder [FB_PEER_MAX];   //  lock: routing id of the holder
    size_t holder_size;         //  0 = free
    uint64_t fence;             //  lock: grants so far
    uint32_t permits;           //  semaphore: left
    bool set;                   //  event
    uint32_t parties;           //  barrier: of the current round
    uint32_t arrived;           //  barrier: waiting now
    uint32_t generation;        //  barrier: rounds released
};

struct fb_waiter {
    int op;                     //  drv_sync_op_t
    char name [129];            //  primitive
    uint8_t peer [FB_PEER_MAX]; //  routing id to answer
    size_t peer_size;
    uint64_t corr;              //  request to answer
    uint64_t due;               //  ms: deadline (waiter) or send time (late)
    int code;                   //  late: the answer
    uint64_t fence;             //  late: its fence
    uint32_t value;             //  late: its value
};

struct fb_kv {
    char ns [129];              //  namespace
    char *key;                  //  NUL-terminated key
    void *value;                //  value bytes
    size_t size;                //  their size
    uint64_t version;           //  key version
};

struct fb_seq {
    char ns [129];              //  namespace
    uint64_t seq;               //  last change
};

static void
fb_send (fb_t *fb, drv_codec_t *codec, drv_msg_t *msg, zmq_msg_t *payloads, size_t count)
{
    zmq_msg_t envelope;
    assert (drv_codec_encode (codec, msg, &envelope) == 0);
    assert (drv_send (fb->router, &fb->peer, &envelope, payloads, count, false) == 0);
    fb->last_send = drv_now_ms ();
}

static fb_job_t *
fb_job (fb_t *fb, const uint8_t *id, bool create)
{
    fb_job_t *job = (fb_job_t *) drv_idmap_get (fb->store, id);
    if (!job && create) {
        job = calloc (1, sizeof *job);
        zmq_msg_init (&job->payload);
        drv_idmap_put (fb->store, id, job);
    }
    return job;
}

static void
fb_free_job (const uint8_t *id, void *value, void *arg)
{
    fb_job_t *job = (fb_job_t *) value;
    zmq_msg_close (&job->payload);
    free (job);
}

static void
fb_forget_all (fb_t *fb)
{
    drv_idmap_each (fb->store, fb_free_job, NULL);
    drv_idmap_destroy (&fb->store);
    fb->store = drv_idmap_new ();
    fb->known = false;
}

static void
fb_error (fb_t *fb, drv_codec_t *codec, uint64_t corr, drv_code_t code, const char *text)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_ERROR, corr);
    msg.error.code = code;
    msg.error.message = text;
    fb_send (fb, codec, &msg, NULL, 0);
}

typedef struct {
    uint8_t (*ids) [16];        //  collected ids
    size_t count;               //  how many
} fb_collect_t;

static void
fb_collect_dead (const uint8_t *id, void *value, void *arg)
{
    fb_collect_t *collect = (fb_collect_t *) arg;
    if (((fb_job_t *) value)->state == DRV_JOB_FAILED)
        memcpy (collect->ids [collect->count++], id, 16);
}

//  DeadLetter: failed jobs are the dead letters of every queue; like the
//  broker, at most max_batch (LIST: limit, default 100) per request.
static void
fb_dead_letter (fb_t *fb, drv_codec_t *codec, drv_msg_t *in)
{
    fb->dead_letters++;
    if (strcmp (in->dead.queue, "secret") == 0) {
        fb_error (fb, codec, in->corr, DRV_CODE_DENIED, "dead-letter handling needs an admin key");
        return;
    }
    if (strcmp (in->dead.queue, "nope") == 0) {
        fb_error (fb, codec, in->corr, DRV_CODE_UNKNOWN_QUEUE, "invalid queue name");
        return;
    }
    size_t limit = fb->max_batch;
    size_t asked = in->dead.limit? in->dead.limit: 100;
    if (in->dead.action == DRV_DEAD_LIST && asked < limit)
        limit = asked;
    fb_collect_t collect = {calloc (drv_idmap_size (fb->store) + in->count + 1, 16), 0};
    if (in->count) {
        memcpy (collect.ids, in->ids, in->count * 16);
        collect.count = in->count;
    }
    else {
        drv_idmap_each (fb->store, fb_collect_dead, &collect);
        if (collect.count > limit)
            collect.count = limit;
    }
    size_t n = collect.count;
    drv_jobinfo_t *infos = calloc (n? n: 1, sizeof *infos);
    zmq_msg_t *payloads = calloc (n? n: 1, sizeof (zmq_msg_t));
    for (size_t i = 0; i < n; i++) {
        memcpy (infos [i].id, collect.ids [i], 16);
        infos [i].queue = "q";
        infos [i].error = "";
        infos [i].progress_message = "";
        zmq_msg_init (&payloads [i]);
        fb_job_t *job = fb_job (fb, collect.ids [i], false);
        if (!job)
            continue;
        infos [i].state = job->state;
        infos [i].attempts = 3;
        infos [i].error = "boom";
        infos [i].finished_ms = 1700000000000ull;
        if (job->state != DRV_JOB_FAILED)
            continue;
        if (in->dead.action == DRV_DEAD_RETRY)
            job->state = infos [i].state = DRV_JOB_QUEUED;
        else
        if (in->dead.action == DRV_DEAD_PURGE) {
            infos [i].state = DRV_JOB_UNKNOWN;
            fb_free_job (collect.ids [i], drv_idmap_remove (fb->store, collect.ids [i]), NULL);
        }
    }
    drv_msg_t out;
    drv_msg_init (&out, DRV_CMD_QUERY_REPLY, in->corr);
    out.infos = infos;
    out.count = n;
    fb_send (fb, codec, &out, payloads, n);
    free (infos);
    free (payloads);
    free (collect.ids);
}

static struct fb_kv *
fb_kv_find (fb_t *fb, const char *ns, const uint8_t *key, size_t key_size)
{
    for (size_t i = 0; i < fb->kv_count; i++)
        if (strcmp (fb->kv [i].ns, ns) == 0 && strlen (fb->kv [i].key) == key_size
        &&  memcmp (fb->kv [i].key, key, key_size) == 0)
            return &fb->kv [i];
    return NULL;
}

static uint64_t *
fb_seq (fb_t *fb, const char *ns)
{
    for (size_t i = 0; i < fb->seq_count; i++)
        if (strcmp (fb->seqs [i].ns, ns) == 0)
            return &fb->seqs [i].seq;
    fb->seqs = realloc (fb->seqs, (fb->seq_count + 1) * sizeof *fb->seqs);
    memset (&fb->seqs [fb->seq_count], 0, sizeof *fb->seqs);
    snprintf (fb->seqs [fb->seq_count].ns, 129, "%s", ns);
    return &fb->seqs [fb->seq_count++].seq;
}

//  Takes the next sequence number of ns and publishes the change of kv
//  (deleted: kv's key is gone; version is the new one).
static void
fb_publish (fb_t *fb, drv_codec_t *codec, const char *ns, const char *key, uint64_t version,
            const void *value, size_t size, bool deleted)
{
    uint64_t *seq = fb_seq (fb, ns);
    *seq += 1 + (uint64_t) fb->skip_seq;
    fb->skip_seq = 0;
    if (fb->drop_pubs > 0) {
        fb->drop_pubs--;
        return;
    }
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_STATE_UPDATE, 0);
    msg.update.ns = ns;
    msg.update.seq = *seq;
    msg.update.key = (const uint8_t *) key;
    msg.update.key_size = strlen (key);
    msg.update.version = deleted? 0: version;    //  as droverd: a deleted key has no version
    msg.update.deleted = deleted;
    zmq_msg_t envelope;
    assert (drv_codec_encode (codec, &msg, &envelope) == 0);
    assert (zmq_send (fb->pub, ns, strlen (ns) + 1, ZMQ_SNDMORE) >= 0);
    assert (zmq_msg_send (&envelope, fb->pub, ZMQ_SNDMORE) >= 0);
    assert (zmq_send (fb->pub, deleted? "": value, deleted? 0: size, 0) >= 0);
}

static int
fb_kv_cmp (const void *a, const void *b)
{
    return strcmp ((*(struct fb_kv *const *) a)->key, (*(struct fb_kv *const *) b)->key);
}

//  Sets (creating) a key's value; returns the entry.
static struct fb_kv *
fb_kv_set (fb_t *fb, const char *ns, const uint8_t *key, size_t key_size, const void *value, size_t size)
{
    struct fb_kv *kv = fb_kv_find (fb, ns, key, key_size);
    if (!kv) {
        if (fb->kv_count == fb->kv_cap) {
            fb->kv_cap = fb->kv_cap? fb->kv_cap * 2: 16;
            fb->kv = realloc (fb->kv, fb->kv_cap * sizeof *fb->kv);
        }
        kv = &fb->kv [fb->kv_count++];
        memset (kv, 0, sizeof *kv);
        snprintf (kv->ns, sizeof kv->ns, "%s", ns);
        kv->key = strndup ((const char *) key, key_size);
    }
    free (kv->value);
    kv->value = malloc (size + 1);
    if (size)
        memcpy (kv->value, value, size);
    kv->size = size;
    kv->version++;
    return kv;
}

//  Test helper (lock held or broker thread): a change made "by another
//  client", published like any other.
static void
fb_state_set (fb_t *fb, drv_codec_t *codec, const char *ns, const char *key, const char *value)
{
    struct fb_kv *kv = fb_kv_set (fb, ns, (const uint8_t *) key, strlen (key), value, strlen (value));
    fb_publish (fb, codec, ns, kv->key, kv->version, kv->value, kv->size, false);
}

static void
fb_state (fb_t *fb, drv_codec_t *codec, drv_msg_t *in, drv_frames_t *frames)
{
    fb->state_requests++;
    drv_msg_t out;
    drv_msg_init (&out, DRV_CMD_STATE_REPLY, in->corr);
    out.state_reply.message = "";
    if (frames->count != 3) {
        fb_error (fb, codec, in->corr, DRV_CODE_BAD_REQUEST, "one payload frame expected");
        return;
    }
    zmq_msg_t *value = &frames->msg [2];
    const char *ns = in->state.ns;
    if (strcmp (ns, "secret") == 0) {
        fb_error (fb, codec, in->corr, DRV_CODE_DENIED, "no state for you");
        return;
    }
    struct fb_kv *kv = fb_kv_find (fb, ns, in->state.key, in->state.key_size);
    drv_state_entry_t entry = {in->state.key, in->state.key_size, kv? kv->version: 0};
    zmq_msg_t payload;
    zmq_msg_init (&payload);
    size_t count = 1;
    char text [32];
    switch (in->state.op) {
        case DRV_STATE_GET:
            if (!kv)
                out.state_reply.code = DRV_CODE_NOT_FOUND;
            else {
                zmq_msg_init_size (&payload, kv->size);
                memcpy (zmq_msg_data (&payload), kv->value, kv->size);
            }
            break;
        case DRV_STATE_SET:
        case DRV_STATE_CAS:
            if (in->state.op == DRV_STATE_CAS && in->state.expect_version != entry.version) {
                out.state_reply.code = DRV_CODE_CONFLICT;
                if (kv) {
                    zmq_msg_init_size (&payload, kv->size);
                    memcpy (zmq_msg_data (&payload), kv->value, kv->size);
                }
                break;
            }
            kv = fb_kv_set (fb, ns, in->state.key, in->state.key_size,
                            zmq_msg_data (value), zmq_msg_size (value));
            entry.version = kv->version;
            fb_publish (fb, codec, ns, kv->key, kv->version, kv->value, kv->size, false);
            break;
        case DRV_STATE_DEL:
            if (!kv) {
                out.state_reply.code = DRV_CODE_NOT_FOUND;
                break;
            }
            {
                char *key = kv->key;
                uint64_t version = kv->version + 1;
                free (kv->value);
                *kv = fb->kv [--fb->kv_count];
                fb_publish (fb, codec, ns, key, version, NULL, 0, true);
                free (key);
                entry.version = 0;
            }
            break;
        case DRV_STATE_INCR: {
            long long now = 0;
            if (kv) {
                char buffer [32] = "";
                snprintf (buffer, sizeof buffer, "%.*s", (int) kv->size, (char *) kv->value);
                char *end;
                now = strtoll (buffer, &end, 10);
                if (!kv->size || *end) {
                    out.state_reply.code = DRV_CODE_BAD_REQUEST;
                    out.state_reply.message = "not a decimal integer";
                    break;
                }
            }
            int length = snprintf (text, sizeof text, "%lld", now + (long long) in->state.delta);
            kv = fb_kv_set (fb, ns, in->state.key, in->state.key_size, text, (size_t) length);
            entry.version = kv->version;
            zmq_msg_init_size (&payload, (size_t) length);
            memcpy (zmq_msg_data (&payload), text, (size_t) length);
            fb_publish (fb, codec, ns, kv->key, kv->version, kv->value, kv->size, false);
            break;
        }
        case DRV_STATE_LIST:
        case DRV_STATE_SNAPSHOT: {
            if (in->state.op == DRV_STATE_SNAPSHOT)
                fb->snapshots++;
            //  Changes the subscriber also gets, at or below the snapshot's seq
            for (; in->state.op == DRV_STATE_SNAPSHOT && fb->snapshot_races > 0; fb->snapshot_races--)
                fb_state_set (fb, codec, ns, "race", "x");
            struct fb_kv **list = calloc (fb->kv_count + 1, sizeof *list);
            size_t n = 0;
            for (size_t i = 0; i < fb->kv_count; i++)
                if (strcmp (fb->kv [i].ns, ns) == 0
                &&  (in->state.op == DRV_STATE_SNAPSHOT
                ||   !in->state.key_size || strncmp (fb->kv [i].key, (const char *) in->state.key, in->state.key_size) == 0))
                    list [n++] = &fb->kv [i];
            qsort (list, n, sizeof *list, fb_kv_cmp);
            drv_state_entry_t *entries = calloc (n + 1, sizeof *entries);
            zmq_msg_t *payloads = calloc (n + 1, sizeof (zmq_msg_t));
            for (size_t i = 0; i < n; i++) {
                entries [i].key = (const uint8_t *) list [i]->key;
                entries [i].key_size = strlen (list [i]->key);
                entries [i].version = list [i]->version;
                zmq_msg_init_size (&payloads [i], list [i]->size);
                memcpy (zmq_msg_data (&payloads [i]), list [i]->value, list [i]->size);
            }
            out.entries = entries;
            out.count = n;
            out.state_reply.seq = *fb_seq (fb, ns);
            fb_send (fb, codec, &out, payloads, n);
            free (payloads);
            free (entries);
            free (list);
            zmq_msg_close (&payload);
            return;
        }
        default:
            fb_error (fb, codec, in->corr, DRV_CODE_BAD_REQUEST, "bad op");
            zmq_msg_close (&payload);
            return;
    }
    out.entries = &entry;
    out.count = count;
    out.state_reply.seq = *fb_seq (fb, ns);
    fb_send (fb, codec, &out, &payload, 1);
    zmq_msg_close (&payload);
}

//  Sync primitives ---------------------------------------------------------

static struct fb_prim *
fb_prim (fb_t *fb, int kind, const char *name)
{
    for (size_t i = 0; i < fb->prim_count; i++)
        if (fb->prims [i].kind == kind && strcmp (fb->prims [i].name, name) == 0)
            return &fb->prims [i];
    fb->prims = realloc (fb->prims, (fb->prim_count + 1) * sizeof *fb->prims);
    struct fb_prim *prim = &fb->prims [fb->prim_count++];
    memset (prim, 0, sizeof *prim);
    prim->kind = kind;
    snprintf (prim->name, sizeof prim->name, "%s", name);
    return prim;
}

static int
fb_prim_kind (int op)
{
    switch (op) {
        case DRV_SYNC_LOCK: case DRV_SYNC_UNLOCK: return 1;
        case DRV_SYNC_SEM_ACQUIRE: case DRV_SYNC_SEM_RELEASE: return 2;
        case DRV_SYNC_EVENT_SET: case DRV_SYNC_EVENT_CLEAR: case DRV_SYNC_EVENT_WAIT: return 3;
        default: return 4;
    }
}

//  Sends a SyncReply to peer now, or later with sync_delay_ms.
static void
fb_sync_reply (fb_t *fb, drv_codec_t *codec, const uint8_t *peer, size_t peer_size,
               uint64_t corr, int code, uint64_t fence, uint32_t value)
{
    if (fb->sync_delay_ms) {
        fb->late = realloc (fb->late, (fb->late_count + 1) * sizeof *fb->late);
        struct fb_waiter *late = &fb->late [fb->late_count++];
        memset (late, 0, sizeof *late);
        memcpy (late->peer, peer, peer_size);
        late->peer_size = peer_size;
        late->corr = corr;
        late->code = code;
        late->fence = fence;
        late->value = value;
        late->due = drv_now_ms () + fb->sync_delay_ms;
        return;
    }
    zmq_msg_t saved;
    zmq_msg_init (&saved);
    zmq_msg_move (&saved, &fb->peer);
    zmq_msg_init_size (&fb->peer, peer_size);
    memcpy (zmq_msg_data (&fb->peer), peer, peer_size);
    drv_msg_t out;
    drv_msg_init (&out, DRV_CMD_SYNC_REPLY, corr);
    out.sync_reply.code = (drv_code_t) code;
    out.sync_reply.message = code == DRV_CODE_OK? "": "refused";
    out.sync_reply.fence = fence;
    out.sync_reply.value = value;
    fb_send (fb, codec, &out, NULL, 0);
    zmq_msg_close (&fb->peer);
    zmq_msg_init (&fb->peer);
    zmq_msg_move (&fb->peer, &saved);
    zmq_msg_close (&saved);
}

static void
fb_waiter_done (fb_t *fb, drv_codec_t *codec, size_t index, int code, uint64_t fence, uint32_t value)
{
    struct fb_waiter w = fb->waiters [index];
    memmove (fb->waiters + index, fb->waiters + index + 1,
             (fb->waiter_count - index - 1) * sizeof w);
    fb->waiter_count--;
    fb_sync_reply (fb, codec, w.peer, w.peer_size, w.corr, code, fence, value);
}

//  Grants what waiters of prim can now have, in arrival order.
static void
fb_sync_wake (fb_t *fb, drv_codec_t *codec, struct fb_prim *prim)
{
    for (size_t i = 0; i < fb->waiter_count; ) {
        struct fb_waiter *w = &fb->waiters [i];
        if (fb_prim_kind (w->op) != prim->kind || strcmp (w->name, prim->name)) {
            i++;
            continue;
        }
        if (prim->kind == 1 && !prim->holder_size) {
            memcpy (prim->holder, w->peer, w->peer_size);
            prim->holder_size = w->peer_size;
            fb_waiter_done (fb, codec, i, DRV_CODE_OK, ++prim->fence, 0);
        }
        else
        if (prim->kind == 2 && prim->permits) {
            prim->permits--;
            fb_waiter_done (fb, codec, i, DRV_CODE_OK, 0, prim->permits);
        }
        else
        if (prim->kind == 3 && prim->set)
            fb_waiter_done (fb, codec, i, DRV_CODE_OK, 0, 0);
        else
            i++;
    }
}

static void
fb_sync (fb_t *fb, drv_codec_t *codec, drv_msg_t *in)
{
    fb->sync_requests++;
    if ((unsigned) in->sync.op < 9)
        fb->sync_ops [in->sync.op]++;
    fb->last_sync_timeout = in->sync.timeout_ms;
    const uint8_t *peer = zmq_msg_data (&fb->peer);
    size_t peer_size = zmq_msg_size (&fb->peer);
    if (peer_size > FB_PEER_MAX)
        peer_size = FB_PEER_MAX;
    if (strcmp (in->sync.name, "secret") == 0) {
        fb_sync_reply (fb, codec, peer, peer_size, in->corr, DRV_CODE_DENIED, 0, 0);
        return;
    }
    struct fb_prim *prim = fb_prim (fb, fb_prim_kind (in->sync.op), in->sync.name);
    bool wait = false;
    switch (in->sync.op) {
        case DRV_SYNC_LOCK:
            if (prim->holder_size == peer_size && memcmp (prim->holder, peer, peer_size) == 0) {
                fb_sync_reply (fb, codec, peer, peer_size, in->corr, DRV_CODE_BAD_STATE, 0, 0);
                return;
            }
            wait = true;
            break;
        case DRV_SYNC_UNLOCK:
            if (prim->holder_size != peer_size || memcmp (prim->holder, peer, peer_size)) {
                fb_sync_reply (fb, codec, peer, peer_size, in->corr, DRV_CODE_BAD_STATE, 0, 0);
                return;
            }
            prim->holder_size = 0;
            fb_sync_reply (fb, codec, peer, peer_size, in->corr, DRV_CODE_OK, 0, 0);
            break;
        case DRV_SYNC_SEM_ACQUIRE:
            if (!prim->generation) {
                prim->generation = 1;       //  created: initial permits
                prim->permits = in->sync.count;
            }
            wait = true;
            break;
        case DRV_SYNC_SEM_RELEASE:
            prim->permits++;
            fb_sync_reply (fb, codec, peer, peer_size, in->corr, DRV_CODE_OK, 0, prim->permits);
            break;
        case DRV_SYNC_EVENT_SET:
        case DRV_SYNC_EVENT_CLEAR:
            prim->set = in->sync.op == DRV_SYNC_EVENT_SET;
            fb_sync_reply (fb, codec, peer, peer_size, in->corr, DRV_CODE_OK, 0, 0);
            break;
        case DRV_SYNC_EVENT_WAIT:
            wait = true;
            break;
        case DRV_SYNC_BARRIER_WAIT:
            if (prim->arrived && prim->parties != in->sync.count) {
                fb_sync_reply (fb, codec, peer, peer_size, in->corr, DRV_CODE_BAD_STATE, 0, 0);
                return;
            }
            prim->parties = in->sync.count;
            if (++prim->arrived == prim->parties) {
                //  Release the round: every waiter of this barrier, and us
                prim->arrived = 0;
                prim->generation++;
                for (size_t i = 0; i < fb->waiter_count; )
                    if (fb->waiters [i].op == DRV_SYNC_BARRIER_WAIT
                    &&  strcmp (fb->waiters [i].name, prim->name) == 0)
                        fb_waiter_done (fb, codec, i, DRV_CODE_OK, 0, prim->generation);
                    else
                        i++;
                fb_sync_reply (fb, codec, peer, peer_size, in->corr, DRV_CODE_OK, 0, prim->generation);
                return;
            }
            if (in->sync.timeout_ms == 0) {
                prim->arrived--;
                fb_sync_reply (fb, codec, peer, peer_size, in->corr, DRV_CODE_TIMEOUT, 0, 0);
                return;
            }
            break;
        default:
            fb_sync_reply (fb, codec, peer, peer_size, in->corr, DRV_CODE_BAD_REQUEST, 0, 0);
            return;
    }
    if (in->sync.op == DRV_SYNC_BARRIER_WAIT || wait) {
        fb->waiters = realloc (fb->waiters, (fb->waiter_count + 1) * sizeof *fb->waiters);
        struct fb_waiter *w = &fb->waiters [fb->waiter_count++];
        memset (w, 0, sizeof *w);
        w->op = in->sync.op;
        snprintf (w->name, sizeof w->name, "%s", in->sync.name);
        memcpy (w->peer, peer, peer_size);
        w->peer_size = peer_size;
        w->corr = in->corr;
        w->due = drv_now_ms () + in->sync.timeout_ms;
    }
    fb_sync_wake (fb, codec, prim);
    //  A try (timeout 0) that was not granted at once
    for (size_t i = 0; i < fb->waiter_count; i++)
        if (fb->waiters [i].corr == in->corr && in->sync.timeout_ms == 0
        &&  fb->waiters [i].peer_size == peer_size && memcmp (fb->waiters [i].peer, peer, peer_size) == 0) {
            fb_waiter_done (fb, codec, i, DRV_CODE_TIMEOUT, 0, 0);
            break;
        }
}

//  Each loop turn: waiters past their deadline, delayed replies now due.
static void
fb_sync_timers (fb_t *fb, drv_codec_t *codec)
{
    uint64_t now = drv_now_ms ();
    for (size_t i = 0; i < fb->waiter_count; ) {
        if (!fb->sync_no_deadline && now >= fb->waiters [i].due) {
            if (fb->waiters [i].op == DRV_SYNC_BARRIER_WAIT) {
                struct fb_prim *prim = fb_prim (fb, 4, fb->waiters [i].name);
                if (prim->arrived)
                    prim->arrived--;
            }
            fb_waiter_done (fb, codec, i, DRV_CODE_TIMEOUT, 0, 0);
        }
        else
            i++;
    }
    uint32_t delay = fb->sync_delay_ms;
    fb->sync_delay_ms = 0;
    for (size_t i = 0; i < fb->late_count; ) {
        struct fb_waiter late = fb->late [i];
        if (now >= late.due) {
            memmove (fb->late + i, fb->late + i + 1, (fb->late_count - i - 1) * sizeof late);
            fb->late_count--;
            fb_sync_reply (fb, codec, late.peer, late.peer_size, late.corr, late.code,
                           late.fence, late.value);
        }
        else
            i++;
    }
    fb->sync_delay_ms = delay;
}

//  A restart: every primitive and waiter is forgotten.
static void
fb_sync_forget (fb_t *fb)
{
    fb->prim_count = 0;
    fb->waiter_count = 0;
    fb->late_count = 0;
}

//  Marks lock name as held by someone else (a peer the tests do not run).
__attribute__ ((unused)) static void
fb_lock_held_elsewhere (fb_t *fb, const char *name)
{
    pthread_mutex_lock (&fb->lock);
    struct fb_prim *prim = fb_prim (fb, 1, name);
    memcpy (prim->holder, "ghost", 5);
    prim->holder_size = 5;
    prim->fence++;
    pthread_mutex_unlock (&fb->lock);
}

//  True while someone holds lock name.
__attribute__ ((unused)) static bool
fb_lock_is_held (fb_t *fb, const char *name)
{
    pthread_mutex_lock (&fb->lock);
    bool held = fb_prim (fb, 1, name)->holder_size != 0;
    pthread_mutex_unlock (&fb->lock);
    return held;
}

static void
fb_handle (fb_t *fb, drv_codec_t *codec, drv_frames_t *frames)
{
    drv_msg_t in;
    zmq_msg_copy (&fb->peer, &frames->msg [0]);
    if (drv_codec_decode (codec, zmq_msg_data (&frames->msg [1]), zmq_msg_size (&frames->msg [1]), &in))
        return;
    if (in.cmd == DRV_CMD_HELLO) {
        fb->hellos++;
        if (fb->deny_hello) {
            fb_error (fb, codec, in.corr, DRV_CODE_DENIED, "role may not");
            return;
        }
        fb->known = true;
        fb->credit = in.hello.credit;
        fb->last_hello_credit = in.hello.credit;
        drv_msg_t out;
        drv_msg_init (&out, DRV_CMD_WELCOME, in.corr);
        memset (out.welcome.broker_id, fb->broker_id_byte, 16);
        out.welcome.version = 1;
        out.welcome.heartbeat_ms = fb->heartbeat_ms;
        out.welcome.max_payload = fb->max_payload;
        out.welcome.max_batch = fb->max_batch;
        out.welcome.role = "admin";
        out.welcome.state_port = fb->state_port;
        out.welcome.max_value = fb->max_value;
        fb_send (fb, codec, &out, NULL, 0);
        return;
    }
    if (!fb->known) {
        fb_error (fb, codec, in.corr, DRV_CODE_REHELLO, "hello first");
        return;
    }
    switch (in.cmd) {
        case DRV_CMD_SUBMIT: {
            fb->submit_msgs++;
            if (fb->rehello_submits > 0) {
                fb->rehello_submits--;
                fb->known = false;
                fb_error (fb, codec, in.corr, DRV_CODE_REHELLO, "who are you");
                return;
            }
            fb->jobs += (int) in.count;
            if ((int) in.count > fb->max_jobs_per_msg)
                fb->max_jobs_per_msg = (int) in.count;
            size_t n = in.count;
            drv_joback_t *acks = calloc (n? n: 1, sizeof *acks);
            drv_result_t *results = calloc (n? n: 1, sizeof *results);
            zmq_msg_t *payloads = calloc (n? n: 1, sizeof (zmq_msg_t));
            size_t delivered = 0;
            for (size_t i = 0; i < n; i++) {
                memcpy (acks [i].id, in.specs [i].id, 16);
                acks [i].message = "";
                if (strcmp (in.specs [i].queue, "refuse") == 0) {
                    acks [i].code = DRV_CODE_UNKNOWN_QUEUE;
                    acks [i].message = "no such queue here";
                    continue;
                }
                fb_job_t *job = fb_job (fb, in.specs [i].id, true);
                //  The result is the input, as if an echo worker ran it
                zmq_msg_close (&job->payload);
                zmq_msg_init (&job->payload);
                zmq_msg_copy (&job->payload, &frames->msg [2 + i]);
                job->state = strcmp (in.specs [i].queue, "fail") == 0? DRV_JOB_FAILED: DRV_JOB_DONE;
                if (fb->deliver) {
                    memcpy (results [delivered].id, in.specs [i].id, 16);
                    results [delivered].state = job->state;
                    results [delivered].error = job->state == DRV_JOB_FAILED? "boom": "";
                    results [delivered].attempts = 1;
                    zmq_msg_init (&payloads [delivered]);
                    if (job->state == DRV_JOB_DONE)
                        zmq_msg_copy (&payloads [delivered], &job->payload);
                    delivered++;
                }
                else
                    job->state = DRV_JOB_QUEUED;
            }
            drv_msg_t out;
            drv_msg_init (&out, DRV_CMD_SUBMIT_ACK, in.corr);
            out.acks = acks;
            out.count = n;
            fb_send (fb, codec, &out, NULL, 0);
            if (delivered) {
                drv_msg_init (&out, DRV_CMD_DELIVER, 0);
                out.results = results;
                out.count = delivered;
                fb_send (fb, codec, &out, payloads, delivered);
            }
            free (acks);
            free (results);
            free (payloads);
            break;
        }
        case DRV_CMD_QUERY:
        case DRV_CMD_CANCEL: {
            fb->queries++;
            size_t n = in.count;
            drv_jobinfo_t *infos = calloc (n? n: 1, sizeof *infos);
            zmq_msg_t *payloads = calloc (n? n: 1, sizeof (zmq_msg_t));
            for (size_t i = 0; i < n; i++) {
                memcpy (infos [i].id, in.ids [i], 16);
                infos [i].queue = "q";
                infos [i].error = "";
                infos [i].progress_message = "";
                zmq_msg_init (&payloads [i]);
                fb_job_t *job = fb_job (fb, in.ids [i], false);
                if (!job)
                    continue;
                infos [i].progress = job->progress;
                infos [i].progress_message = job->progress_message;
                if (in.cmd == DRV_CMD_CANCEL && job->state < DRV_JOB_DONE)
                    job->state = DRV_JOB_CANCELLED;
                infos [i].state = job->state;
                infos [i].attempts = 1;
                infos [i].payload_size = (uint32_t) zmq_msg_size (&job->payload);
                if (in.cmd == DRV_CMD_QUERY && in.query.want_result && job->state == DRV_JOB_DONE)
                    zmq_msg_copy (&payloads [i], &job->payload);
            }
            drv_msg_t out;
            drv_msg_init (&out, DRV_CMD_QUERY_REPLY, in.corr);
            out.infos = infos;
            out.count = n;
            fb_send (fb, codec, &out, payloads, n);
            free (infos);
            free (payloads);
            break;
        }
        case DRV_CMD_STATS: {
            drv_queue_stats_t queue = {.name = "q", .queued = 3, .done = 5, .workers = 1,
                                       .paused = true, .dead = 2, .submit_rate = 1.5,
                                       .done_rate = 0.25};
            drv_msg_t out;
            drv_msg_init (&out, DRV_CMD_STATS_REPLY, in.corr);
            out.queues = &queue;
            out.count = 1;
            out.stats.workers = 1;
            out.stats.clients = 2;
            out.stats.uptime_ms = 1234;
            fb_send (fb, codec, &out, NULL, 0);
            break;
        }
        case DRV_CMD_QUEUE_CONTROL: {
            fb->queue_controls++;
            if (strcmp (in.queue_control.queue, "secret") == 0) {
                fb_error (fb, codec, in.corr, DRV_CODE_DENIED, "pausing a queue needs an admin key");
                break;
            }
            if (strcmp (in.queue_control.queue, "nope") == 0) {
                fb_error (fb, codec, in.corr, DRV_CODE_UNKNOWN_QUEUE, "invalid queue name");
                break;
            }
            drv_queue_stats_t queue = {.name = in.queue_control.queue, .queued = 1,
                                       .paused = in.queue_control.action == DRV_QUEUE_PAUSE};
            drv_msg_t out;
            drv_msg_init (&out, DRV_CMD_STATS_REPLY, in.corr);
            out.queues = &queue;
            out.count = 1;
            fb_send (fb, codec, &out, NULL, 0);
            break;
        }
        case DRV_CMD_DEAD_LETTER:
            fb_dead_letter (fb, codec, &in);
            break;
        case DRV_CMD_STATE_REQUEST:
            fb_state (fb, codec, &in, frames);
            break;
        case DRV_CMD_SYNC_REQUEST:
            fb_sync (fb, codec, &in);
            break;
        case DRV_CMD_PROGRESS:
            fb->progress_msgs++;
            for (size_t i = 0; i < in.count; i++) {
                fb->progress_entries++;
                for (size_t j = 0; j < i; j++)
                    if (memcmp (in.progress [j].id, in.progress [i].id, 16) == 0)
                        fb->progress_dups++;
                size_t length = strlen (in.progress [i].message);
                if (length > fb->progress_longest)
                    fb->progress_longest = length;
                fb_job_t *job = fb_job (fb, in.progress [i].id, true);
                job->progress = in.progress [i].percent;
                snprintf (job->progress_message, sizeof job->progress_message, "%s",
                          in.progress [i].message);
            }
            break;
        case DRV_CMD_REPORT:
            fb->reports++;
            for (size_t i = 0; i < in.count; i++) {
                fb->results++;
                fb->credit++;
                fb_job_t *job = fb_job (fb, in.results [i].id, true);
                job->state = in.results [i].state;
                snprintf (job->error, sizeof job->error, "%s", in.results [i].error);
                zmq_msg_close (&job->payload);
                zmq_msg_init (&job->payload);
                zmq_msg_copy (&job->payload, &frames->msg [2 + i]);
            }
            break;
        case DRV_CMD_BYE: {
            fb->byes++;
            fb->credit = 0;
            drv_msg_t out;
            drv_msg_init (&out, DRV_CMD_BYE, in.corr);
            fb_send (fb, codec, &out, NULL, 0);
            break;
        }
        default:
            break;
    }
}

//  Worker side: sends queued jobs while there is credit, one Dispatch.
static void
fb_dispatch (fb_t *fb, drv_codec_t *codec)
{
    if (fb->cancel_pending && fb->known) {
        fb->cancel_pending = false;
        drv_msg_t out;
        drv_msg_init (&out, DRV_CMD_CANCEL, 0);
        out.ids = &fb->cancel_id;
        out.count = 1;
        fb_send (fb, codec, &out, NULL, 0);
    }
    size_t n = fb->todo_count < fb->credit? fb->todo_count: fb->credit;
    if (!n || !fb->known)
        return;
    drv_job_t *jobs = calloc (n, sizeof *jobs);
    zmq_msg_t *payloads = calloc (n, sizeof (zmq_msg_t));
    for (size_t i = 0; i < n; i++) {
        memcpy (jobs [i].id, fb->todo [i], 16);
        jobs [i].queue = "q";
        jobs [i].attempt = 1;
        jobs [i].timeout_ms = fb->job_timeout_ms;
        //  Payload: the id's hex text, so handlers can echo it
        char text [33];
        drv_hex (fb->todo [i], 16, text);
        zmq_msg_init_size (&payloads [i], 32);
        memcpy (zmq_msg_data (&payloads [i]), text, 32);
    }
    drv_msg_t out;
    drv_msg_init (&out, DRV_CMD_DISPATCH, 0);
    out.jobs = jobs;
    out.count = n;
    fb_send (fb, codec, &out, payloads, n);
    memmove (fb->todo, fb->todo + n, (fb->todo_count - n) * 16);
    fb->todo_count -= n;
    fb->credit -= (uint32_t) n;
    fb->dispatched += (int) n;
    free (jobs);
    free (payloads);
}

static void *
fb_thread (void *arg)
{
    fb_t *fb = (fb_t *) arg;
    drv_codec_t *codec = drv_codec_new ();
    drv_frames_t frames;
    drv_frames_init (&frames);
    while (!atomic_load (&fb->stop)) {
        //  The PUB socket is polled too (for nothing): that makes it take in
        //  new subscriptions now rather than at its next send
        zmq_pollitem_t items [2] = {{fb->router, 0, ZMQ_POLLIN, 0}, {fb->pub, 0, 0, 0}};
        zmq_poll (items, 2, 5);
        pthread_mutex_lock (&fb->lock);
        if (fb->forget) {
            fb->forget = false;
            fb_forget_all (fb);
            fb_sync_forget (fb);
        }
        while (drv_frames_recv (fb->router, &frames, ZMQ_DONTWAIT, 100000) > 0) {
            if (fb->silent || frames.count < 2)
                continue;
            fb_handle (fb, codec, &frames);
        }
        if (!fb->silent) {
            fb_sync_timers (fb, codec);
            fb_dispatch (fb, codec);
            if (fb->known && drv_now_ms () - fb->last_send >= fb->heartbeat_ms) {
                drv_msg_t out;
                drv_msg_init (&out, DRV_CMD_HEARTBEAT, 0);
                fb_send (fb, codec, &out, NULL, 0);
            }
        }
        pthread_mutex_unlock (&fb->lock);
    }
    drv_frames_destroy (&frames);
    drv_codec_destroy (&codec);
    return NULL;
}

//  Starts a fake broker. With ctx (e.g. CZMQ's, where a zauth actor runs)
//  and server_secret (Z85), it is a CURVE server in that context.
static fb_t *
fb_start_in (void *ctx, const char *server_secret)
{
    fb_t *fb = calloc (1, sizeof *fb);
    pthread_mutex_init (&fb->lock, NULL);
    fb->heartbeat_ms = 100;
    fb->max_payload = 1 << 20;
    fb->max_batch = 1000;
    fb->deliver = true;
    fb->store = drv_idmap_new ();
    fb->todo = calloc (100000, 16);
    fb->max_value = 1 << 20;
    fb->broker_id_byte = 7;
    zmq_msg_init (&fb->peer);
    fb->shared_ctx = ctx != NULL;
    fb->ctx = ctx? ctx: zmq_ctx_new ();
    fb->router = zmq_socket (fb->ctx, ZMQ_ROUTER);
    if (server_secret) {
        int on = 1;
        zmq_setsockopt (fb->router, ZMQ_CURVE_SERVER, &on, sizeof on);
        zmq_setsockopt (fb->router, ZMQ_CURVE_SECRETKEY, server_secret, 40);
        zmq_setsockopt (fb->router, ZMQ_ZAP_DOMAIN, "global", 6);
    }
    int linger = 0;
    zmq_setsockopt (fb->router, ZMQ_LINGER, &linger, sizeof linger);
    int hwm = 0;
    zmq_setsockopt (fb->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (fb->router, ZMQ_RCVHWM, &hwm, sizeof hwm);
    assert (zmq_bind (fb->router, "tcp://127.0.0.1:*") == 0);
    size_t size = sizeof fb->endpoint;
    zmq_getsockopt (fb->router, ZMQ_LAST_ENDPOINT, fb->endpoint, &size);
    fb->pub = zmq_socket (fb->ctx, ZMQ_PUB);
    if (server_secret) {
        int on = 1;
        zmq_setsockopt (fb->pub, ZMQ_CURVE_SERVER, &on, sizeof on);
        zmq_setsockopt (fb->pub, ZMQ_CURVE_SECRETKEY, server_secret, 40);
        zmq_setsockopt (fb->pub, ZMQ_ZAP_DOMAIN, "global", 6);
    }
    zmq_setsockopt (fb->pub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (fb->pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    assert (zmq_bind (fb->pub, "tcp://127.0.0.1:*") == 0);
    char pub_ep [64];
    size = sizeof pub_ep;
    zmq_getsockopt (fb->pub, ZMQ_LAST_ENDPOINT, pub_ep, &size);
    fb->state_port = (uint32_t) atoi (strrchr (pub_ep, ':') + 1);
    pthread_create (&fb->thread, NULL, fb_thread, fb);
    return fb;
}

static fb_t *
fb_start (void)
{
    return fb_start_in (NULL, NULL);
}

static void
fb_stop (fb_t **fb_p)
{
    fb_t *fb = *fb_p;
    atomic_store (&fb->stop, true);
    pthread_join (fb->thread, NULL);
    zmq_close (fb->router);
    zmq_close (fb->pub);
    for (size_t i = 0; i < fb->kv_count; i++) {
        free (fb->kv [i].key);
        free (fb->kv [i].value);
    }
    free (fb->kv);
    free (fb->seqs);
    free (fb->prims);
    free (fb->waiters);
    free (fb->late);
    if (!fb->shared_ctx)
        zmq_ctx_term (fb->ctx);
    drv_idmap_each (fb->store, fb_free_job, NULL);
    drv_idmap_destroy (&fb->store);
    zmq_msg_close (&fb->peer);
    free (fb->todo);
    pthread_mutex_destroy (&fb->lock);
    free (fb);
    *fb_p = NULL;
}

//  Reads an int field under the lock.
#define FB_GET(fb, field) \
    ({ pthread_mutex_lock (&(fb)->lock); __typeof__ ((fb)->field) v_ = (fb)->field; \
       pthread_mutex_unlock (&(fb)->lock); v_; })
#define FB_SET(fb, field, value) \
    do { pthread_mutex_lock (&(fb)->lock); (fb)->field = (value); \
         pthread_mutex_unlock (&(fb)->lock); } while (0)

//  Waits up to ms for cond to become true (polled).
#define WAIT_FOR(cond, ms) \
    do { uint64_t until_ = drv_now_ms () + (ms); \
         while (!(cond) && drv_now_ms () < until_) usleep (2000); } while (0)

#endif
