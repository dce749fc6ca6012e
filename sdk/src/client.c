/*  client.c - drover_client_t: submits jobs and collects results.

    Every client has a background I/O thread that owns its DEALER socket
    (and its own ZeroMQ context, so a broker actor in the same process keeps
    CZMQ's). API calls on any thread put work on a locked queue and raise a
    wake-up signal only when the queue goes from empty to non-empty. Each
    loop turn the I/O thread takes the whole queue and sends all new submits
    as one Submit message per max_batch jobs, with one payload frame per job
    that points at the caller's copied buffer; then it drains every message
    waiting on the socket before it sleeps again. That batching is what
    carries Drover past CURVE's per-message cost.

    Futures are reference counted (the caller's reference, the client's while
    the job is unresolved, and one per payload frame ZeroMQ still holds). The
    I/O thread keeps unresolved futures in an id map for routing SubmitAck,
    Deliver and QueryReply entries, and unacknowledged submits in a list, in
    submission order, so it can resend them after a re-hello.
*/
#include "common.h"
#include "idmap.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Future ------------------------------------------------------------------

struct _drover_future_t {
    atomic_int refs;                //  caller + client + frames in flight
    pthread_mutex_t lock;           //  guards the outcome fields below
    pthread_cond_t cond;            //  broadcast on acceptance and resolution
    bool acked;                     //  the broker answered the submit (or knows the job)
    int accept_err;                 //  0 when accepted, else the refusal
    bool resolved;                  //  the outcome is final
    int err;                        //  outcome: 0, DROVER_EFAILED, ...
    uint32_t attempts;              //  attempts the broker reported
    char *error;                    //  failure text, or NULL
    zmq_msg_t result;               //  result payload (moved from the wire)
    drover_future_fn *fn;           //  callback on resolution, or NULL
    void *fn_arg;                   //  its argument
    uint8_t id [DRV_ID_SIZE];       //  job id
    char id_text [DROVER_ID_TEXT + 1];  //  job id as hex

    //  Fields below belong to the I/O thread (or to the creator before
    //  the future is queued)
    bool fetch;                     //  made by drover_fetch, not by a submit
    drv_jobspec_t spec;             //  what to (re)send; queue is interned
    void *payload;                  //  our copy of the input, until acked
    size_t size;                    //  its size
    atomic_int payload_users;       //  our hold + payload frames in flight
    bool holding;                   //  we still hold the payload (unacked)
    bool listed;                    //  on the unacked list
    uint64_t corr;                  //  corr of the last Submit/Query carrying it
    drover_future_t *next;          //  API queue, then unacked list
    drover_future_t *prev;          //  unacked list
    drover_future_t *twin;          //  another future for the same id
};

//  Blocking request (status, cancel, stats, queue control, dead letters) ----

typedef enum { REQ_STATUS, REQ_CANCEL, REQ_STATS, REQ_QUEUE, REQ_DEAD, REQ_STATE, REQ_SYNC } req_kind_t;

typedef struct _request_t request_t;
struct _request_t {
    req_kind_t kind;                //  what to ask
    int refs;                       //  caller + I/O thread (client lock)
    bool done;                      //  answered (client lock)
    bool abandoned;                 //  caller gave up waiting (client lock)
    int err;                        //  outcome
    uint8_t id [DRV_ID_SIZE];       //  job concerned (status, cancel)
    uint64_t corr;                  //  corr of the request on the wire
    bool sent;                      //  sent on the current session
    drover_job_info_t info;         //  status/cancel answer
    drover_stats_t *stats;          //  stats answer
    request_t *next;                //  queue / pending list

    //  Queue control and dead letters (the fields below belong to the I/O
    //  thread while the request is pending)
    char queue [129];               //  queue concerned
    bool paused;                    //  queue control: pause, else resume
    drv_dead_action_t action;       //  dead letters: list, retry or purge
    uint32_t limit;                 //  dead letters: LIST bound (0 = broker's)
    uint8_t (*ids) [DRV_ID_SIZE];   //  dead letters: jobs chosen, NULL = all
    size_t id_count;                //  how many
    size_t id_next;                 //  first id no reply has covered yet
    size_t id_sent;                 //  ids the request on the wire carries
    drover_job_info_t *infos;       //  dead letters: the jobs concerned so far
    size_t info_count;              //  entries filled
    size_t info_cap;                //  entries allocated
    drv_idmap_t *seen;              //  "all" retry/purge: ids answered so far

    //  Shared state (the request is fixed once queued; the answer is
    //  written by the I/O thread before done)
    drv_state_op_t op;              //  operation
    char *key;                      //  key or prefix (owned)
    size_t key_size;                //  its length
    void *value;                    //  SET/CAS value (owned), or NULL
    size_t value_size;              //  its size
    uint64_t expect_version;        //  CAS
    int64_t delta;                  //  INCR
    uint32_t state_limit;           //  LIST
    uint64_t seq;                   //  answer: namespace sequence
    drover_state_entry_t *entries;  //  answer: entries (owned until taken)
    size_t entry_count;             //  how many

    //  Sync primitives (name in queue). A LOCK or SEM_ACQUIRE whose caller
    //  gave up stays pending until the broker answers, and if that answer
    //  is a grant it turns into the matching release (cleanup), so nothing
    //  stays held. Releases are sent even when their caller gave up.
    drv_sync_op_t sync_op;          //  operation
    uint32_t sync_count;            //  SEM_ACQUIRE: initial; BARRIER_WAIT: parties
    bool forever;                   //  wait while the session lives
    uint64_t sync_deadline;         //  ms (drv_now_ms) when the wait ends
    bool cleanup;                   //  I/O thread's own release of a late grant
    uint64_t fence;                 //  answer: LOCK fencing token
    uint32_t sync_value;            //  answer: permits left / generation
};

//  Longest wait asked of the broker per request when waiting forever; the
//  request is asked again when it runs out.
#define DRV_SYNC_FOREVER_MS (24u * 3600u * 1000u)
//  How much longer than the broker's deadline a caller waits for the answer.
#define DRV_SYNC_GRACE_MS 2000

//  Client ----------------------------------------------------------------

struct _drover_client_t {
    drv_config_t config;            //  our copy of the settings
    drv_keys_t keys;                //  CURVE keys, if any
    void *ctx;                      //  our own ZeroMQ context
    pthread_t thread;               //  the I/O thread
    drv_signal_t wake;              //  raised when work is queued
    uint8_t session [DRV_ID_SIZE];  //  Hello.session for this handle

    pthread_mutex_t lock;           //  guards the fields down to max_payload
    pthread_cond_t cond;            //  connect result and request answers
    drover_future_t *queue_head;    //  futures waiting for the I/O thread
    drover_future_t *queue_tail;    //  last of them
    request_t *req_head;            //  requests waiting for the I/O thread
    request_t *req_tail;            //  last of them
    bool closing;                   //  destroy has begun
    atomic_int revoked;             //  DROVER_EDENIED once the broker revoked our key
    int connect_result;             //  -1 while connecting, else the outcome
    char connect_why [256];         //  why connecting failed
    char **queues;                  //  interned queue names
    size_t queue_count;             //  names in use
    size_t queue_cap;               //  names allocated
    atomic_uint max_payload;        //  from Welcome
    atomic_uint max_value;          //  from Welcome: state value limit
    atomic_uint state_port;         //  from Welcome: state PUB port (0: none)
    atomic_uint epoch;              //  grows when a different broker welcomes us
    drv_signal_t *restart_hooks [DRV_RESTART_HOOKS];  //  raised then (client lock)

    //  I/O thread only
    drv_link_t link;                //  connection to the broker, and its liveness
    drv_codec_t *rx;                //  decodes what arrives
    drv_codec_t *tx;                //  encodes what leaves
    bool thread_started;            //  s_io_thread is running or ran
    drv_frames_t frames;            //  last message received
    drv_idmap_t *map;               //  id -> unresolved future chain
    drover_future_t *unacked_head;  //  submits not yet acknowledged, in order
    drover_future_t *unacked_tail;  //  last of them
    drover_future_t *unsent;        //  first unacked submit not yet sent
    drover_future_t *fetch_head;    //  fetches waiting to be queried
    drover_future_t *fetch_tail;    //  last of them
    request_t *pending;             //  requests not yet answered
    zmq_msg_t *payloads;            //  scratch payload frames for a batch
    size_t payload_cap;             //  frames allocated
    bool bye_sent;                  //  closing: Bye is out
    bool bye_received;              //  closing: the broker answered Bye
    uint64_t corr;                  //  last correlation number used
    uint64_t hello_corr;            //  corr of the outstanding Hello
    uint32_t max_batch;             //  from Welcome
    uint64_t bye_deadline;          //  ms, when closing
    uint8_t broker_id [DRV_ID_SIZE];    //  broker we last talked to
};

static const char *s_component = "client";

//  Future helpers ---------------------------------------------------------

static drover_future_t *
s_future_new (void)
{
    drover_future_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    atomic_init (&self->refs, 2);       //  caller + client
    atomic_init (&self->payload_users, 1);
    pthread_mutex_init (&self->lock, NULL);
    drv_cond_init (&self->cond);
    zmq_msg_init (&self->result);
    self->holding = true;
    return self;
}

static void
s_future_free (drover_future_t *self)
{
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->cond);
    zmq_msg_close (&self->result);
    free (self->error);
    free (self->payload);
    free (self);
}

static void
s_future_unref (drover_future_t *self)
{
    if (atomic_fetch_sub_explicit (&self->refs, 1, memory_order_acq_rel) == 1)
        s_future_free (self);
}

//  Drops one user of the payload copy; the last one frees it.
static void
s_payload_release (drover_future_t *self)
{
    if (atomic_fetch_sub_explicit (&self->payload_users, 1, memory_order_acq_rel) == 1) {
        free (self->payload);
        self->payload = NULL;
    }
}

//  ZeroMQ calls this (on its own thread) when a payload frame is done.
static void
s_frame_free (void *data, void *hint)
{
    drover_future_t *self = (drover_future_t *) hint;
    s_payload_release (self);
    s_future_unref (self);
}

//  Our own hold on the payload ends on acknowledgement or resolution.
static void
s_future_drop_payload (drover_future_t *self)
{
    if (self->holding) {
        self->holding = false;
        s_payload_release (self);
    }
}

//  Sets the final outcome once, wakes waiters and runs the callback.
//  payload (may be NULL) is moved into the future, or copied when copy.
static void
s_future_resolve (drover_future_t *self, int err, const char *error, uint32_t attempts,
                  zmq_msg_t *payload, bool copy, bool known)
{
    pthread_mutex_lock (&self->lock);
    if (self->resolved) {
        pthread_mutex_unlock (&self->lock);
        return;
    }
    self->resolved = true;
    self->err = err;
    self->attempts = attempts;
    if (self->error)
        ;                       //  a refusal's reason, set when it was refused
    else
    if (error && *error)
        self->error = strdup (error);
    else
    if (err && err != DROVER_ECANCELLED)
        self->error = strdup (drover_strerror (err));
    if (payload) {
        if (copy)
            zmq_msg_copy (&self->result, payload);
        else
            zmq_msg_move (&self->result, payload);
    }
    //  An outcome from the broker means it had accepted the job
    if (known && !self->acked) {
        self->acked = true;
        self->accept_err = 0;
    }
    drover_future_fn *fn = self->fn;
    void *fn_arg = self->fn_arg;
    self->fn = NULL;
    pthread_cond_broadcast (&self->cond);
    pthread_mutex_unlock (&self->lock);
    if (fn)
        fn (self, fn_arg);
}

static void
s_future_accept_why (drover_future_t *self, int accept_err, const char *why)
{
    pthread_mutex_lock (&self->lock);
    if (!self->acked) {
        self->acked = true;
        self->accept_err = accept_err;
        if (accept_err && why && *why && !self->error)
            self->error = strdup (why);
        pthread_cond_broadcast (&self->cond);
    }
    pthread_mutex_unlock (&self->lock);
}

static void
s_future_accept (drover_future_t *self, int accept_err)
{
    s_future_accept_why (self, accept_err, NULL);
}

//  Unacked list -----------------------------------------------------------

static void
s_unacked_append (drover_client_t *self, drover_future_t *f)
{
    f->next = NULL;
    f->prev = self->unacked_tail;
    if (self->unacked_tail)
        self->unacked_tail->next = f;
    else
        self->unacked_head = f;
    self->unacked_tail = f;
    f->listed = true;
    if (!self->unsent)
        self->unsent = f;
}

static void
s_unacked_remove (drover_client_t *self, drover_future_t *f)
{
    if (!f->listed)
        return;
    if (self->unsent == f)
        self->unsent = f->next;
    if (f->prev)
        f->prev->next = f->next;
    else
        self->unacked_head = f->next;
    if (f->next)
        f->next->prev = f->prev;
    else
        self->unacked_tail = f->prev;
    f->next = f->prev = NULL;
    f->listed = false;
}

//  Id map of future chains ------------------------------------------------

static int
s_map_add (drover_client_t *self, drover_future_t *f)
{
    drover_future_t *head = (drover_future_t *) drv_idmap_get (self->map, f->id);
    if (head) {
        //  A second future for a known id (a fetch): chain it
        f->twin = head->twin;
        head->twin = f;
        return 0;
    }
    f->twin = NULL;
    return drv_idmap_put (self->map, f->id, f);
}

//  Takes f out of its chain; the client's reference stays with the caller.
static void
s_map_remove (drover_client_t *self, drover_future_t *f)
{
    drover_future_t *head = (drover_future_t *) drv_idmap_get (self->map, f->id);
    if (!head)
        return;
    if (head == f) {
        if (f->twin)
            drv_idmap_put (self->map, f->id, f->twin);
        else
            drv_idmap_remove (self->map, f->id);
    }
    else {
        drover_future_t *prev = head;
        while (prev->twin && prev->twin != f)
            prev = prev->twin;
        if (prev->twin == f)
            prev->twin = f->twin;
    }
    f->twin = NULL;
}

//  Resolves f and lets the client's reference go.
static void
s_finish (drover_client_t *self, drover_future_t *f, int err, const char *error,
          uint32_t attempts, zmq_msg_t *payload, bool copy, bool known)
{
    s_map_remove (self, f);
    s_unacked_remove (self, f);
    s_future_drop_payload (f);
    s_future_resolve (f, err, error, attempts, payload, copy, known);
    s_future_unref (f);
}

//  Resolves every future of a chain with a job outcome from the broker.
static void
s_finish_chain (drover_client_t *self, const uint8_t *id, drv_job_state_t state,
                const char *error, uint32_t attempts, zmq_msg_t *payload)
{
    drover_future_t *f = (drover_future_t *) drv_idmap_remove (self->map, id);
    int err = state == DRV_JOB_DONE? 0:
              state == DRV_JOB_CANCELLED? DROVER_ECANCELLED: DROVER_EFAILED;
    while (f) {
        drover_future_t *twin = f->twin;
        f->twin = NULL;
        s_unacked_remove (self, f);
        s_future_drop_payload (f);
        //  The last future takes the frame; earlier ones share it
        s_future_resolve (f, err, error, attempts,
                          state == DRV_JOB_DONE? payload: NULL, twin != NULL, true);
        s_future_unref (f);
        f = twin;
    }
}

//  Sending ----------------------------------------------------------------

static int
s_send (drover_client_t *self, drv_msg_t *msg, zmq_msg_t *payloads, size_t count)
{
    int rc = drv_link_send (&self->link, self->tx, msg, payloads, count, s_component);
    if (rc)
        self->link.blocked = true;      //  try again when the socket can take more
    return rc;
}

static int
s_send_simple (drover_client_t *self, drv_cmd_t cmd, uint64_t corr)
{
    drv_msg_t msg;
    drv_codec_reset (self->tx);
    drv_msg_init (&msg, cmd, corr);
    return s_send (self, &msg, NULL, 0);
}

static void
s_send_hello (drover_client_t *self)
{
    drv_msg_t msg;
    drv_codec_reset (self->tx);
    self->hello_corr = ++self->corr;
    drv_msg_init (&msg, DRV_CMD_HELLO, self->hello_corr);
    msg.hello.kind = DRV_PEER_CLIENT;
    memcpy (msg.hello.session, self->session, DRV_ID_SIZE);
    msg.hello.name = self->config.name;
    msg.hello.version_min = DRV_PROTOCOL_VERSION;
    msg.hello.version_max = DRV_PROTOCOL_VERSION;
    //  If it cannot leave now, the liveness timer opens a fresh socket
    drv_link_send (&self->link, self->tx, &msg, NULL, 0, s_component);
    self->link.welcomed = false;
}

//  Sends unsent submits, max_batch per message. Returns when all are out
//  or the socket would block.
static void
s_flush_submits (drover_client_t *self)
{
    while (self->unsent && !self->link.blocked) {
        size_t n = 0;
        for (drover_future_t *f = self->unsent; f && n < self->max_batch; f = f->next)
            n++;
        if (drv_grow ((void **) &self->payloads, &self->payload_cap, n, sizeof (zmq_msg_t)))
            return;
        drv_codec_reset (self->tx);
        drv_msg_t msg;
        drv_msg_init (&msg, DRV_CMD_SUBMIT, ++self->corr);
        msg.specs = (drv_jobspec_t *) drv_codec_alloc (self->tx, n * sizeof (drv_jobspec_t));
        if (!msg.specs)
            return;
        msg.count = n;
        drover_future_t *f = self->unsent;
        for (size_t i = 0; i < n; i++, f = f->next) {
            msg.specs [i] = f->spec;
            if (f->size) {
                //  Zero copy: the frame points at our copy and holds a
                //  reference on the future until ZeroMQ is done with it
                atomic_fetch_add (&f->refs, 1);
                atomic_fetch_add (&f->payload_users, 1);
                zmq_msg_init_data (&self->payloads [i], f->payload, f->size, s_frame_free, f);
            }
            else
                zmq_msg_init (&self->payloads [i]);
        }
        if (s_send (self, &msg, self->payloads, n)) {
            for (size_t i = 0; i < n; i++)
                zmq_msg_close (&self->payloads [i]);
            return;
        }
        for (f = self->unsent; n--; f = f->next)
            f->corr = msg.corr;
        self->unsent = f;
    }
}

//  Sends Query{want_result, watch} for a list of ids.
static void
s_send_watch (drover_client_t *self, uint8_t (*ids) [DRV_ID_SIZE], size_t count)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_QUERY, ++self->corr);
    msg.query.want_result = true;
    msg.query.watch = true;
    msg.ids = ids;
    msg.count = count;
    s_send (self, &msg, NULL, 0);
}

static void
s_flush_fetches (drover_client_t *self)
{
    while (self->fetch_head && !self->link.blocked) {
        drv_codec_reset (self->tx);
        uint8_t (*ids) [DRV_ID_SIZE] = drv_codec_alloc (self->tx, self->max_batch * DRV_ID_SIZE);
        if (!ids)
            return;
        size_t n = 0;
        drover_future_t *f = self->fetch_head;
        for (; f && n < self->max_batch; f = f->next)
            memcpy (ids [n++], f->id, DRV_ID_SIZE);
        s_send_watch (self, ids, n);
        if (self->link.blocked)
            return;
        //  Fetch futures are kept alive by the map; only unlink them here
        while (self->fetch_head != f) {
            drover_future_t *next = self->fetch_head->next;
            self->fetch_head->corr = self->corr;
            self->fetch_head->next = NULL;
            self->fetch_head = next;
        }
        if (!self->fetch_head)
            self->fetch_tail = NULL;
    }
}

static bool
s_sync_is_acquire (drv_sync_op_t op)
{
    return op == DRV_SYNC_LOCK || op == DRV_SYNC_SEM_ACQUIRE;
}

static bool
s_sync_is_release (drv_sync_op_t op)
{
    return op == DRV_SYNC_UNLOCK || op == DRV_SYNC_SEM_RELEASE;
}

//  True if an unsent sync request is still worth sending: its caller
//  waits, or it is a release (given back even when nobody waits). An
//  acquire already on the wire is kept too (s_take_queue), since a grant
//  may come that must be given back. Client lock held.
static bool
s_sync_keep_locked (request_t *req)
{
    if (!req->abandoned || req->cleanup || s_sync_is_release (req->sync_op))
        return true;
    return false;
}

static bool
s_sync_keep (drover_client_t *self, request_t *req)
{
    pthread_mutex_lock (&self->lock);
    bool keep = s_sync_keep_locked (req);
    pthread_mutex_unlock (&self->lock);
    return keep;
}

static void
s_flush_requests (drover_client_t *self)
{
    for (request_t *req = self->pending; req && !self->link.blocked; req = req->next) {
        if (req->sent)
            continue;
        if (req->kind == REQ_SYNC && !s_sync_keep (self, req))
            continue;           //  its caller gave up; s_take_queue drops it
        drv_msg_t msg;
        drv_codec_reset (self->tx);
        req->corr = ++self->corr;
        if (req->kind == REQ_STATS)
            drv_msg_init (&msg, DRV_CMD_STATS, req->corr);
        else
        if (req->kind == REQ_QUEUE) {
            drv_msg_init (&msg, DRV_CMD_QUEUE_CONTROL, req->corr);
            msg.queue_control.queue = req->queue;
            msg.queue_control.action = req->paused? DRV_QUEUE_PAUSE: DRV_QUEUE_RESUME;
        }
        else
        if (req->kind == REQ_DEAD) {
            drv_msg_init (&msg, DRV_CMD_DEAD_LETTER, req->corr);
            msg.dead.queue = req->queue;
            msg.dead.action = req->action;
            msg.dead.limit = req->limit;
            //  Chosen ids travel max_batch per request, the rest after
            //  each reply
            size_t n = req->id_count - req->id_next;
            req->id_sent = n < self->max_batch? n: self->max_batch;
            msg.ids = req->id_count? req->ids + req->id_next: NULL;
            msg.count = req->id_sent;
        }
        else
        if (req->kind == REQ_STATE) {
            drv_msg_init (&msg, DRV_CMD_STATE_REQUEST, req->corr);
            msg.state.op = req->op;
            msg.state.ns = req->queue;
            msg.state.key = (const uint8_t *) req->key;
            msg.state.key_size = req->key_size;
            msg.state.expect_version = req->expect_version;
            msg.state.delta = req->delta;
            msg.state.limit = req->state_limit;
            //  Always one payload frame: the value, or empty
            zmq_msg_t value;
            if (zmq_msg_init_size (&value, req->value_size))
                break;
            if (req->value_size)
                memcpy (zmq_msg_data (&value), req->value, req->value_size);
            if (s_send (self, &msg, &value, 1) == 0)
                req->sent = true;
            else
                zmq_msg_close (&value);
            continue;
        }
        else
        if (req->kind == REQ_SYNC) {
            drv_msg_init (&msg, DRV_CMD_SYNC_REQUEST, req->corr);
            msg.sync.op = req->sync_op;
            msg.sync.name = req->queue;
            msg.sync.count = req->sync_count;
            if (req->forever)
                msg.sync.timeout_ms = DRV_SYNC_FOREVER_MS;
            else {
                //  What is left of the caller's wait (a resend after a
                //  restart asks only for the rest)
                uint64_t now = drv_now_ms ();
                msg.sync.timeout_ms = req->sync_deadline > now
                                    ? (uint32_t) (req->sync_deadline - now): 0;
            }
        }
        else {
            drv_msg_init (&msg, req->kind == REQ_STATUS? DRV_CMD_QUERY: DRV_CMD_CANCEL, req->corr);
            msg.ids = &req->id;
            msg.count = 1;
        }
        if (s_send (self, &msg, NULL, 0) == 0)
            req->sent = true;
    }
}

typedef struct {
    drover_client_t *client;        //  whose map this is
    uint8_t (*ids) [DRV_ID_SIZE];   //  ids to watch again
    size_t count;                   //  ids collected
} resync_t;

static void
s_collect_watch (const uint8_t *id, void *value, void *arg)
{
    resync_t *resync = (resync_t *) arg;
    drover_future_t *head = (drover_future_t *) value;
    //  Unacked submits are resent instead; their ack and outcome follow
    if (head->listed && !head->twin)
        return;
    memcpy (resync->ids [resync->count++], id, DRV_ID_SIZE);
}

//  After a new Welcome on a later session: redo what was outstanding.
static void
s_resync (drover_client_t *self)
{
    self->unsent = self->unacked_head;
    for (request_t *req = self->pending; req; req = req->next)
        req->sent = false;
    size_t total = drv_idmap_size (self->map);
    if (!total)
        return;
    resync_t resync = {self, malloc (total * DRV_ID_SIZE), 0};
    if (!resync.ids)
        return;
    drv_idmap_each (self->map, s_collect_watch, &resync);
    for (size_t start = 0; start < resync.count; start += self->max_batch) {
        size_t n = resync.count - start < self->max_batch? resync.count - start: self->max_batch;
        drv_codec_reset (self->tx);
        s_send_watch (self, resync.ids + start, n);
    }
    free (resync.ids);
}

//  Closes the socket and starts a fresh session on a new one.
static void
s_reconnect (drover_client_t *self, const char *why)
{
    if (drv_link_reopen (&self->link, self->ctx, &self->config, &self->keys, s_component, why) == 0)
        s_send_hello (self);
}

//  Requests ----------------------------------------------------------------

static void
s_request_unref (drover_client_t *self, request_t *req)
{
    //  Called with self->lock held
    if (--req->refs == 0) {
        drover_stats_destroy (&req->stats);
        free (req->ids);
        free (req->infos);
        drv_idmap_destroy (&req->seen);
        free (req->key);
        free (req->value);
        drover_state_entries_free (req->entries, req->entry_count);
        free (req);
    }
}

//  Takes req off the pending list and hands its outcome to the caller.
static void
s_request_done (drover_client_t *self, request_t *req, int err)
{
    request_t **link = &self->pending;
    while (*link && *link != req)
        link = &(*link)->next;
    if (*link)
        *link = req->next;
    req->next = NULL;
    pthread_mutex_lock (&self->lock);
    req->err = err;
    req->done = true;
    pthread_cond_broadcast (&self->cond);
    s_request_unref (self, req);
    pthread_mutex_unlock (&self->lock);
}

static request_t *
s_request_find (drover_client_t *self, uint64_t corr)
{
    if (!corr)
        return NULL;
    for (request_t *req = self->pending; req; req = req->next)
        if (req->sent && req->corr == corr)
            return req;
    return NULL;
}

//  Copies text into a buffer of size bytes, cutting it short at a UTF-8
//  character boundary rather than inside a character.
static void
s_copy_text (char *out, size_t size, const char *text)
{
    size_t length = text? strlen (text): 0;
    if (length >= size) {
        length = size - 1;
        while (length && ((unsigned char) text [length] & 0xC0) == 0x80)
            length--;
    }
    if (length)
        memcpy (out, text, length);
    out [length] = 0;
}

static void
s_info_fill (drover_job_info_t *info, const drv_jobinfo_t *in)
{
    memset (info, 0, sizeof *info);
    drover_id_format (in->id, info->id);
    info->state = drv_state_to_public (in->state);
    snprintf (info->queue, sizeof info->queue, "%s", in->queue);
    info->attempts = in->attempts;
    snprintf (info->error, sizeof info->error, "%s", in->error);
    info->created_ms = in->created_ms;
    info->finished_ms = in->finished_ms;
    info->priority = in->priority;
    info->payload_size = in->payload_size;
    info->progress = in->progress > 100? 100: in->progress;
    s_copy_text (info->progress_message, sizeof info->progress_message, in->progress_message);
    s_copy_text (info->submitter, sizeof info->submitter, in->submitter);
}

static void
s_on_query_reply_request (drover_client_t *self, request_t *req, drv_msg_t *msg)
{
    if (msg->count != 1 || memcmp (msg->infos [0].id, req->id, DRV_ID_SIZE)) {
        s_request_done (self, req, DROVER_EPROTO);
        return;
    }
    s_info_fill (&req->info, &msg->infos [0]);
    int err = 0;
    if (req->kind == REQ_CANCEL)
        switch (msg->infos [0].state) {
            case DRV_JOB_CANCELLED: err = 0; break;
            case DRV_JOB_UNKNOWN:   err = DROVER_ENOTFOUND; break;
            default:                err = DROVER_ESTATE; break;
        }
    s_request_done (self, req, err);
}

//  QueryReply to a DeadLetter: collects the jobs, and asks again while
//  some remain (chosen ids beyond one batch, or "all" of a long list).
static void
s_on_dead_reply (drover_client_t *self, request_t *req, drv_msg_t *msg)
{
    if (req->info_count + msg->count > req->info_cap) {
        size_t cap = req->info_cap? req->info_cap: 16;
        while (cap < req->info_count + msg->count)
            cap *= 2;
        drover_job_info_t *infos = realloc (req->infos, cap * sizeof *infos);
        if (!infos) {
            s_request_done (self, req, DROVER_ENOMEM);
            return;
        }
        req->infos = infos;
        req->info_cap = cap;
    }
    bool repeated = false;
    for (size_t i = 0; i < msg->count; i++) {
        s_info_fill (&req->infos [req->info_count++], &msg->infos [i]);
        //  A job retried by an earlier request of ours that failed back
        //  into the list already: we have been round once
        if (req->seen) {
            if (drv_idmap_get (req->seen, msg->infos [i].id))
                repeated = true;
            else
            if (drv_idmap_put (req->seen, msg->infos [i].id, req))
                repeated = true;
        }
    }
    bool more;
    if (req->id_count) {
        req->id_next += req->id_sent;
        more = req->id_next < req->id_count;
    }
    else
        //  The broker acts on at most max_batch dead jobs per request
        more = req->action != DRV_DEAD_LIST && msg->count && msg->count >= self->max_batch
            && !repeated;
    if (more)
        req->sent = false;          //  s_flush_requests sends the next one
    else
        s_request_done (self, req, 0);
}

//  Copies the StatsReply's peers into stats: the array, and per worker its
//  queue names in one block (the pointer array followed by the strings).
//  Returns 0 or -1 when out of memory (what was copied stays for
//  drover_stats_destroy).
static int
s_stats_copy_peers (drover_stats_t *stats, const drv_msg_t *msg)
{
    stats->peers = calloc (msg->stats.peer_count, sizeof (drover_peer_info_t));
    if (!stats->peers)
        return -1;
    stats->peer_count = msg->stats.peer_count;
    for (size_t i = 0; i < msg->stats.peer_count; i++) {
        const drv_peer_info_t *in = &msg->stats.peers [i];
        drover_peer_info_t *out = &stats->peers [i];
        out->kind = in->kind == DRV_PEER_WORKER? DROVER_PEER_WORKER: DROVER_PEER_CLIENT;
        snprintf (out->name, sizeof out->name, "%s", in->name? in->name: "");
        snprintf (out->key, sizeof out->key, "%s", in->key? in->key: "");
        snprintf (out->role, sizeof out->role, "%s", in->role? in->role: "");
        out->credit = in->credit;
        out->inflight = in->inflight;
        out->connected_ms = in->connected_ms;
        out->idle_ms = in->idle_ms;
        if (in->queue_count == 0)
            continue;
        size_t size = in->queue_count * sizeof (char *);
        for (size_t q = 0; q < in->queue_count; q++)
            size += strlen (in->queues [q]? in->queues [q]: "") + 1;
        char **block = malloc (size);
        if (!block)
            return -1;
        char *text = (char *) (block + in->queue_count);
        for (size_t q = 0; q < in->queue_count; q++) {
            const char *name = in->queues [q]? in->queues [q]: "";
            size_t length = strlen (name) + 1;
            memcpy (text, name, length);
            block [q] = text;
            text += length;
        }
        out->queues = (const char **) block;
        out->queue_count = in->queue_count;
    }
    return 0;
}

static void
s_on_stats_reply (drover_client_t *self, drv_msg_t *msg)
{
    request_t *req = s_request_find (self, msg->corr);
    if (!req || (req->kind != REQ_STATS && req->kind != REQ_QUEUE))
        return;
    if (req->kind == REQ_QUEUE) {
        //  The reply describes the queue alone, as it is now
        bool found = false;
        for (size_t i = 0; i < msg->count; i++)
            if (strcmp (msg->queues [i].name, req->queue) == 0)
                found = msg->queues [i].paused == req->paused;
        s_request_done (self, req, found? 0: DROVER_EPROTO);
        return;
    }
    drover_stats_t *stats = calloc (1, sizeof *stats);
    if (stats && msg->count) {
        stats->queues = calloc (msg->count, sizeof (drover_queue_stats_t));
        if (!stats->queues) {
            free (stats);
            stats = NULL;
        }
    }
    if (!stats) {
        s_request_done (self, req, DROVER_ENOMEM);
        return;
    }
    stats->workers = msg->stats.workers;
    stats->clients = msg->stats.clients;
    stats->uptime_ms = msg->stats.uptime_ms;
    stats->jobs_stored = msg->stats.jobs_stored;
    stats->queue_count = msg->count;
    for (size_t i = 0; i < msg->count; i++) {
        drover_queue_stats_t *out = &stats->queues [i];
        const drv_queue_stats_t *in = &msg->queues [i];
        snprintf (out->name, sizeof out->name, "%s", in->name);
        out->queued = in->queued;
        out->scheduled = in->scheduled;
        out->running = in->running;
        out->submitted = in->submitted;
        out->done = in->done;
        out->failed = in->failed;
        out->retried = in->retried;
        out->workers = in->workers;
        out->paused = in->paused;
        out->dead = in->dead;
        out->submit_rate = in->submit_rate;
        out->done_rate = in->done_rate;
    }
    if (msg->stats.peer_count && s_stats_copy_peers (stats, msg)) {
        drover_stats_destroy (&stats);
        s_request_done (self, req, DROVER_ENOMEM);
        return;
    }
    req->stats = stats;
    s_request_done (self, req, 0);
}

//  StateReply: copy the entries out of the wire frames for the caller.
static void
s_on_state_reply (drover_client_t *self, drv_msg_t *msg)
{
    request_t *req = s_request_find (self, msg->corr);
    if (!req || req->kind != REQ_STATE)
        return;
    int err = msg->state_reply.code == DRV_CODE_OK? 0: drv_code_to_err (msg->state_reply.code);
    drover_state_entry_t *entries = calloc (msg->count? msg->count: 1, sizeof *entries);
    if (!entries) {
        s_request_done (self, req, DROVER_ENOMEM);
        return;
    }
    for (size_t i = 0; i < msg->count; i++) {
        const drv_state_entry_t *in = &msg->entries [i];
        zmq_msg_t *frame = &self->frames.msg [i + 1];
        size_t size = zmq_msg_size (frame);
        entries [i].key = malloc (in->key_size + 1);
        entries [i].value = malloc (size + 1);
        if (!entries [i].key || !entries [i].value) {
            drover_state_entries_free (entries, i + 1);
            s_request_done (self, req, DROVER_ENOMEM);
            return;
        }
        if (in->key_size)
            memcpy (entries [i].key, in->key, in->key_size);
        entries [i].key [in->key_size] = 0;
        if (size)
            memcpy (entries [i].value, zmq_msg_data (frame), size);
        ((char *) entries [i].value) [size] = 0;
        entries [i].size = size;
        entries [i].version = in->version;
    }
    pthread_mutex_lock (&self->lock);
    req->entries = entries;
    req->entry_count = msg->count;
    req->seq = msg->state_reply.seq;
    pthread_mutex_unlock (&self->lock);
    if (err && msg->state_reply.message && *msg->state_reply.message
    &&  msg->state_reply.code != DRV_CODE_NOT_FOUND && msg->state_reply.code != DRV_CODE_CONFLICT)
        drv_log (DRV_LOG_DEBUG, s_component, "state request refused: %s", msg->state_reply.message);
    s_request_done (self, req, err);
}

//  SyncReply: a grant, a refusal or CODE_TIMEOUT at the broker's deadline.
static void
s_on_sync_reply (drover_client_t *self, drv_msg_t *msg)
{
    request_t *req = s_request_find (self, msg->corr);
    if (!req || req->kind != REQ_SYNC)
        return;             //  late answer to a request nobody keeps
    drv_code_t code = msg->sync_reply.code;
    if (code == DRV_CODE_TIMEOUT && req->forever && !req->cleanup) {
        req->sent = false;  //  the broker's longest wait ran out: ask again
        return;
    }
    if (code != DRV_CODE_OK && code != DRV_CODE_TIMEOUT && msg->sync_reply.message
    &&  *msg->sync_reply.message)
        drv_log (DRV_LOG_DEBUG, s_component, "sync request on %s refused: %s",
                 req->queue, msg->sync_reply.message);
    //  Decided and finished under one hold of the lock, so a caller that
    //  times out meanwhile either sees the grant or leaves it to us
    pthread_mutex_lock (&self->lock);
    if (code == DRV_CODE_OK && req->abandoned && !req->cleanup && s_sync_is_acquire (req->sync_op)) {
        //  Granted after the caller gave up: give it straight back
        drv_log (DRV_LOG_DEBUG, s_component, "late grant on %s; releasing it", req->queue);
        req->cleanup = true;
        req->sync_op = req->sync_op == DRV_SYNC_LOCK? DRV_SYNC_UNLOCK: DRV_SYNC_SEM_RELEASE;
        req->forever = false;
        req->sync_deadline = 0;     //  a release does not wait
        req->sent = false;
        pthread_mutex_unlock (&self->lock);
        return;
    }
    request_t **link = &self->pending;
    while (*link && *link != req)
        link = &(*link)->next;
    if (*link)
        *link = req->next;
    req->next = NULL;
    req->fence = msg->sync_reply.fence;
    req->sync_value = msg->sync_reply.value;
    req->err = code == DRV_CODE_OK? 0: drv_code_to_err (code);
    req->done = true;
    pthread_cond_broadcast (&self->cond);
    s_request_unref (self, req);
    pthread_mutex_unlock (&self->lock);
}

//  Incoming ---------------------------------------------------------------

static void
s_connect_done (drover_client_t *self, int result, const char *why)
{
    pthread_mutex_lock (&self->lock);
    if (self->connect_result < 0) {
        self->connect_result = result;
        snprintf (self->connect_why, sizeof self->connect_why, "%s", why? why: "");
        pthread_cond_broadcast (&self->cond);
    }
    pthread_mutex_unlock (&self->lock);
}

static void
s_on_welcome (drover_client_t *self, drv_msg_t *msg)
{
    if (msg->corr != self->hello_corr || self->link.welcomed)
        return;
    if (msg->welcome.version != DRV_PROTOCOL_VERSION) {
        drv_log (DRV_LOG_ERROR, s_component, "broker chose protocol version %u; we speak %d",
                 msg->welcome.version, DRV_PROTOCOL_VERSION);
        s_connect_done (self, DROVER_EPROTO, "broker chose an unsupported protocol version");
        return;
    }
    bool first = drv_link_welcome (&self->link, msg);
    self->max_batch = msg->welcome.max_batch? msg->welcome.max_batch: DRV_DEFAULT_MAX_BATCH;
    atomic_store (&self->max_payload,
                  msg->welcome.max_payload? msg->welcome.max_payload: DRV_DEFAULT_MAX_PAYLOAD);
    atomic_store (&self->max_value,
                  msg->welcome.max_value? msg->welcome.max_value: DRV_DEFAULT_MAX_VALUE);
    atomic_store (&self->state_port, msg->welcome.state_port);
    if (!first) {
        if (memcmp (self->broker_id, msg->welcome.broker_id, DRV_ID_SIZE)) {
            drv_log (DRV_LOG_INFO, s_component, "broker restarted; resending outstanding work");
            atomic_fetch_add (&self->epoch, 1);
            pthread_mutex_lock (&self->lock);
            for (size_t i = 0; i < DRV_RESTART_HOOKS; i++)
                if (self->restart_hooks [i])
                    drv_signal_post (self->restart_hooks [i]);
            pthread_mutex_unlock (&self->lock);
        }
        s_resync (self);
    }
    else
        s_connect_done (self, 0, NULL);
    memcpy (self->broker_id, msg->welcome.broker_id, DRV_ID_SIZE);
}

static void s_fail_all (drover_client_t *self, int err, const char *why);

static void
s_on_error (drover_client_t *self, drv_msg_t *msg)
{
    drv_code_t code = msg->error.code;
    if (code == DRV_CODE_REHELLO) {
        //  One re-hello answers the whole burst of refusals
        if (self->link.welcomed) {
            drv_log (DRV_LOG_INFO, s_component, "broker asks us to hello again");
            s_send_hello (self);
            for (request_t *req = self->pending; req; req = req->next)
                req->sent = false;
        }
        return;
    }
    if (msg->corr && msg->corr == self->hello_corr && !self->link.welcomed) {
        drv_log (DRV_LOG_ERROR, s_component, "broker refused hello: %s %s",
                 drv_code_name (code), msg->error.message);
        int err = code == DRV_CODE_DENIED? DROVER_EDENIED: DROVER_EPROTO;
        s_connect_done (self, err, msg->error.message);
        return;
    }
    if (code == DRV_CODE_DENIED && !msg->corr) {
        //  Not an answer: the broker closed our session because our key
        //  was removed. Nothing more will be served; say so to everyone
        drv_log (DRV_LOG_ERROR, s_component, "broker revoked our key: %s", msg->error.message);
        atomic_store (&self->revoked, DROVER_EDENIED);
        self->link.welcomed = false;
        s_fail_all (self, DROVER_EDENIED, msg->error.message);
        return;
    }
    int err = drv_code_to_err (code);
    request_t *req = s_request_find (self, msg->corr);
    if (req) {
        s_request_done (self, req, err);
        return;
    }
    //  A whole Submit refused (or a watch Query): fail what it carried
    bool matched = false;
    for (drover_future_t *f = self->unacked_head, *next; f && msg->corr; f = next) {
        next = f->next;
        if (f->corr == msg->corr) {
            matched = true;
            s_finish (self, f, err, msg->error.message, 0, NULL, false, false);
        }
    }
    if (!matched && msg->error.id_count) {
        for (size_t i = 0; i < msg->error.id_count; i++) {
            drover_future_t *f = (drover_future_t *) drv_idmap_get (self->map, msg->error.ids [i]);
            while (f) {
                drover_future_t *twin = f->twin;
                if (f->fetch && f->corr == msg->corr)
                    s_finish (self, f, err, msg->error.message, 0, NULL, false, false);
                f = twin;
            }
        }
        matched = true;
    }
    if (!matched)
        drv_log (DRV_LOG_WARN, s_component, "broker error %s: %s",
                 drv_code_name (code), msg->error.message);
}

static void
s_on_submit_ack (drover_client_t *self, drv_msg_t *msg)
{
    for (size_t i = 0; i < msg->count; i++) {
        drv_joback_t *ack = &msg->acks [i];
        drover_future_t *f = (drover_future_t *) drv_idmap_get (self->map, ack->id);
        while (f && (f->fetch || !f->listed))
            f = f->twin;
        if (!f)
            continue;           //  a late duplicate ack
        if (ack->code == DRV_CODE_OK) {
            s_unacked_remove (self, f);
            s_future_drop_payload (f);
            s_future_accept (f, 0);
        }
        else {
            //  The refusal's reason goes with the accept, so a waiter it
            //  wakes reads the broker's words, not a generic text
            int err = drv_code_to_err (ack->code);
            s_future_accept_why (f, err, ack->message);
            s_finish (self, f, err, ack->message, 0, NULL, false, false);
        }
    }
}

static void
s_on_deliver (drover_client_t *self, drv_msg_t *msg)
{
    for (size_t i = 0; i < msg->count; i++) {
        drv_result_t *r = &msg->results [i];
        if (r->state != DRV_JOB_DONE && r->state != DRV_JOB_FAILED && r->state != DRV_JOB_CANCELLED)
            continue;
        s_finish_chain (self, r->id, r->state, r->error, r->attempts, &self->frames.msg [i + 1]);
    }
}

//  QueryReply to a watch query (fetch or resync): route entries by id.
static void
s_on_watch_reply (drover_client_t *self, drv_msg_t *msg)
{
    for (size_t i = 0; i < msg->count; i++) {
        drv_jobinfo_t *info = &msg->infos [i];
        drover_future_t *f = (drover_future_t *) drv_idmap_get (self->map, info->id);
        if (!f)
            continue;
        switch (info->state) {
            case DRV_JOB_DONE:
            case DRV_JOB_FAILED:
            case DRV_JOB_CANCELLED:
                s_finish_chain (self, info->id, info->state, info->error, info->attempts,
                                &self->frames.msg [i + 1]);
                break;
            case DRV_JOB_UNKNOWN:
                while (f) {
                    drover_future_t *twin = f->twin;
                    if (f->fetch && !f->acked)
                        s_finish (self, f, DROVER_ENOTFOUND,
                                  "no such job (never existed, or its result expired)",
                                  0, NULL, false, false);
                    else
                    if (!f->listed) {
                        drv_log (DRV_LOG_WARN, s_component, "job %s was lost by the broker", f->id_text);
                        s_finish (self, f, DROVER_ENOTFOUND,
                                  "job lost: the broker no longer knows it (restarted without durability?)",
                                  0, NULL, false, false);
                    }
                    f = twin;
                }
                break;
            default:
                for (; f; f = f->twin)
                    if (f->fetch)
                        s_future_accept (f, 0);
                break;
        }
    }
}

static void
s_on_query_reply (drover_client_t *self, drv_msg_t *msg)
{
    request_t *req = s_request_find (self, msg->corr);
    if (req && req->kind == REQ_DEAD)
        s_on_dead_reply (self, req, msg);
    else
    if (req && (req->kind == REQ_STATUS || req->kind == REQ_CANCEL))
        s_on_query_reply_request (self, req, msg);
    else
        s_on_watch_reply (self, msg);
}

static void
s_handle (drover_client_t *self)
{
    drv_frames_t *frames = &self->frames;
    drv_msg_t msg;
    if (drv_decode_message (self->rx, frames, &msg, s_component))
        return;
    switch (msg.cmd) {
        case DRV_CMD_WELCOME:     s_on_welcome (self, &msg); break;
        case DRV_CMD_ERROR:       s_on_error (self, &msg); break;
        case DRV_CMD_SUBMIT_ACK:  s_on_submit_ack (self, &msg); break;
        case DRV_CMD_DELIVER:     s_on_deliver (self, &msg); break;
        case DRV_CMD_QUERY_REPLY: s_on_query_reply (self, &msg); break;
        case DRV_CMD_STATS_REPLY: s_on_stats_reply (self, &msg); break;
        case DRV_CMD_STATE_REPLY: s_on_state_reply (self, &msg); break;
        case DRV_CMD_SYNC_REPLY:  s_on_sync_reply (self, &msg); break;
        case DRV_CMD_BYE:         self->bye_received = true; break;
        case DRV_CMD_HEARTBEAT:   break;
        default:
            drv_log (DRV_LOG_WARN, s_component, "unexpected %s from broker", drv_cmd_name (msg.cmd));
            break;
    }
}

//  Takes everything API threads queued.
static void
s_take_queue (drover_client_t *self)
{
    drv_signal_drain (&self->wake);
    pthread_mutex_lock (&self->lock);
    drover_future_t *futures = self->queue_head;
    self->queue_head = self->queue_tail = NULL;
    request_t *reqs = self->req_head;
    self->req_head = self->req_tail = NULL;
    //  Forget requests whose callers stopped waiting
    for (request_t **link = &self->pending; *link; ) {
        request_t *req = *link;
        bool keep = req->kind == REQ_SYNC
                 && (s_sync_keep_locked (req) || (req->sent && s_sync_is_acquire (req->sync_op)));
        if (req->abandoned && !keep) {
            *link = req->next;
            s_request_unref (self, req);
        }
        else
            link = &req->next;
    }
    pthread_mutex_unlock (&self->lock);

    request_t **tail = &self->pending;
    while (*tail)
        tail = &(*tail)->next;
    *tail = reqs;

    while (futures) {
        drover_future_t *f = futures;
        futures = f->next;
        f->next = NULL;
        if (s_map_add (self, f)) {
            s_future_drop_payload (f);
            s_future_resolve (f, DROVER_ENOMEM, NULL, 0, NULL, false, false);
            s_future_unref (f);
            continue;
        }
        if (f->fetch) {
            if (self->fetch_tail)
                self->fetch_tail->next = f;
            else
                self->fetch_head = f;
            self->fetch_tail = f;
        }
        else
            s_unacked_append (self, f);
    }
}

static void
s_flush (drover_client_t *self)
{
    if (!self->link.welcomed)
        return;
    s_flush_submits (self);
    s_flush_fetches (self);
    s_flush_requests (self);
}

static void
s_count_all (const uint8_t *id, void *value, void *arg)
{
    for (drover_future_t *f = (drover_future_t *) value; f; f = f->twin)
        (*(size_t *) arg)++;
}

static void
s_collect_all (const uint8_t *id, void *value, void *arg)
{
    drover_future_t ***cursor = (drover_future_t ***) arg;
    for (drover_future_t *f = (drover_future_t *) value; f; f = f->twin)
        *(*cursor)++ = f;
}

//  Everything unresolved ends with err: DROVER_ECLOSED on the way out,
//  DROVER_EDENIED when the broker revoked our key.
static void
s_fail_all (drover_client_t *self, int err, const char *why)
{
    s_take_queue (self);
    size_t total = 0;
    drv_idmap_each (self->map, s_count_all, &total);
    drover_future_t **all = malloc ((total? total: 1) * sizeof *all);
    if (all) {
        drover_future_t **cursor = all;
        drv_idmap_each (self->map, s_collect_all, &cursor);
        for (size_t i = 0; i < total; i++)
            s_finish (self, all [i], err, why, 0, NULL, false, false);
        free (all);
    }
    self->fetch_head = self->fetch_tail = NULL;
    while (self->pending)
        s_request_done (self, self->pending, err);
}

static void
s_close_all (drover_client_t *self)
{
    s_fail_all (self, DROVER_ECLOSED, "the client was closed");
}

static void *
s_io_thread (void *arg)
{
    drover_client_t *self = (drover_client_t *) arg;
    char why [256] = "";
    self->max_batch = DRV_DEFAULT_MAX_BATCH;
    int err = drv_link_open (&self->link, self->ctx, &self->config, &self->keys, why, sizeof why);
    if (err) {
        s_connect_done (self, err, why);
        return NULL;
    }
    s_send_hello (self);

    while (true) {
        uint64_t now = drv_now_ms ();
        zmq_pollitem_t items [3] = {
            {self->link.conn.socket, 0, ZMQ_POLLIN | (self->link.blocked? ZMQ_POLLOUT: 0), 0},
            {NULL, self->wake.rfd, ZMQ_POLLIN, 0},
            {self->link.conn.monitor, 0, ZMQ_POLLIN, 0}
        };
        long timeout = drv_link_timeout (&self->link, now, self->bye_sent? self->bye_deadline: 0);
        int rc = zmq_poll (items, self->link.conn.monitor? 3: 2, timeout);
        if (rc == -1 && errno != EINTR)
            break;
        now = drv_now_ms ();

        bool hello_again = false;
        err = drv_link_check (&self->link, why, sizeof why, &hello_again);
        if (err) {
            s_connect_done (self, err, why);
            break;
        }
        if (hello_again)
            s_send_hello (self);    //  the broker died or restarted before welcoming us
        if (items [0].revents & ZMQ_POLLOUT)
            self->link.blocked = false;
        s_take_queue (self);

        //  Drain everything waiting before sleeping again
        while (self->link.conn.socket) {
            int frames = drv_frames_recv (self->link.conn.socket, &self->frames, ZMQ_DONTWAIT,
                                          DRV_MAX_FRAMES);
            if (frames == -1)
                break;
            self->link.last_recv = now;
            s_handle (self);
            if (self->connect_result > 0)
                break;
        }
        pthread_mutex_lock (&self->lock);
        int connect_result = self->connect_result;
        bool closing = self->closing;
        pthread_mutex_unlock (&self->lock);
        if (connect_result > 0)
            break;          //  refused during connect
        if (!self->link.ever_welcomed) {
            if (now >= self->link.connect_deadline) {
                snprintf (why, sizeof why, "no answer from %s within %d ms",
                          self->config.endpoint, self->config.timeout_ms);
                s_connect_done (self, DROVER_EUNREACHABLE, why);
                break;
            }
            continue;
        }
        s_flush (self);

        if (closing) {
            if (!self->link.welcomed)
                break;      //  nobody to say goodbye to
            if (!self->bye_sent && !self->unsent && !self->fetch_head) {
                self->bye_sent = true;
                uint64_t wait = 3 * (uint64_t) self->link.heartbeat_ms;
                self->bye_deadline = now + (wait < DRV_LINGER_MS? wait: DRV_LINGER_MS);
                s_send_simple (self, DRV_CMD_BYE, ++self->corr);
            }
            if (self->bye_received || (self->bye_sent && now >= self->bye_deadline))
                break;
            continue;
        }
        if (drv_link_beat_due (&self->link, now))
            s_send_simple (self, DRV_CMD_HEARTBEAT, 0);
        const char *silent = drv_link_silent (&self->link, now);
        if (silent)
            s_reconnect (self, silent);
    }
    s_close_all (self);
    drv_conn_close (&self->link.conn, self->link.welcomed? DRV_LINGER_MS: 0);
    return NULL;
}

//  Public API ----------------------------------------------------------

int
drover_client_connect (const drover_connect_t *cfg, drover_client_t **client_p)
{
    if (!cfg || !client_p)
        return DROVER_EINVAL;
    drover_client_t *self = calloc (1, sizeof *self);
    if (!self)
        return DROVER_ENOMEM;
    int rc = drv_config_copy (&self->config, cfg);
    if (rc) {
        free (self);
        return rc;
    }
    char why [256];
    rc = drv_keys_load (&self->keys, &self->config, why, sizeof why);
    if (rc) {
        drv_log (DRV_LOG_ERROR, s_component, "%s", why);
        drv_config_free (&self->config);
        free (self);
        return rc;
    }
    drv_random_id (self->session);
    pthread_mutex_init (&self->lock, NULL);
    drv_cond_init (&self->cond);
    self->connect_result = -1;
    atomic_init (&self->max_payload, DRV_DEFAULT_MAX_PAYLOAD);
    atomic_init (&self->max_value, DRV_DEFAULT_MAX_VALUE);
    atomic_init (&self->state_port, 0);
    atomic_init (&self->epoch, 0);
    drv_frames_init (&self->frames);
    self->ctx = zmq_ctx_new ();
    self->rx = drv_codec_new ();
    self->tx = drv_codec_new ();
    self->map = drv_idmap_new ();
    self->wake.rfd = self->wake.wfd = -1;
    if (!self->ctx || !self->rx || !self->tx || !self->map || drv_signal_init (&self->wake)
    ||  pthread_create (&self->thread, NULL, s_io_thread, self)) {
        drover_client_destroy (&self);
        return DROVER_ENOMEM;
    }
    self->thread_started = true;
    pthread_mutex_lock (&self->lock);
    while (self->connect_result < 0)
        pthread_cond_wait (&self->cond, &self->lock);
    rc = self->connect_result;
    pthread_mutex_unlock (&self->lock);
    if (rc) {
        drv_log (DRV_LOG_ERROR, s_component, "cannot connect to %s: %s (%s)",
                 self->config.endpoint, drover_strerror (rc), self->connect_why);
        drover_client_destroy (&self);
        return rc;
    }
    *client_p = self;
    return 0;
}

void
drover_client_destroy (drover_client_t **client_p)
{
    if (!client_p || !*client_p)
        return;
    drover_client_t *self = *client_p;
    *client_p = NULL;
    pthread_mutex_lock (&self->lock);
    self->closing = true;
    pthread_mutex_unlock (&self->lock);
    if (self->thread_started) {
        drv_signal_post (&self->wake);
        pthread_join (self->thread, NULL);
    }
    //  Waits for linger: the Bye and last submits leave, and ZeroMQ lets go
    //  of every payload frame (and so of its future reference)
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    drv_frames_destroy (&self->frames);
    drv_codec_destroy (&self->rx);
    drv_codec_destroy (&self->tx);
    drv_idmap_destroy (&self->map);
    drv_signal_destroy (&self->wake);
    for (size_t i = 0; i < self->queue_count; i++)
        free (self->queues [i]);
    free (self->queues);
    free (self->payloads);
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->cond);
    drv_config_free (&self->config);
    free (self);
}

//  Returns the client's copy of a queue name (lock held), or NULL.
static const char *
s_queue_intern (drover_client_t *self, const char *queue)
{
    for (size_t i = 0; i < self->queue_count; i++)
        if (strcmp (self->queues [i], queue) == 0)
            return self->queues [i];
    if (self->queue_count == self->queue_cap) {
        size_t cap = self->queue_cap? self->queue_cap * 2: 8;
        char **queues = realloc (self->queues, cap * sizeof (char *));
        if (!queues)
            return NULL;
        self->queues = queues;
        self->queue_cap = cap;
    }
    char *copy = strdup (queue);
    if (copy)
        self->queues [self->queue_count++] = copy;
    return copy;
}

static drover_future_t *
s_submit_future (const void *data, size_t size, const drover_job_opts_t *opts)
{
    drover_future_t *f = s_future_new ();
    if (!f)
        return NULL;
    if (size) {
        f->payload = malloc (size);
        if (!f->payload) {
            s_future_free (f);
            return NULL;
        }
        memcpy (f->payload, data, size);
        f->size = size;
    }
    drv_random_id (f->id);
    drover_id_format (f->id, f->id_text);
    memcpy (f->spec.id, f->id, DRV_ID_SIZE);
    if (opts) {
        f->spec.priority = opts->priority;
        f->spec.timeout_ms = opts->timeout_ms;
        f->spec.max_attempts = opts->max_attempts;
        f->spec.delay_ms = opts->delay_ms;
        f->spec.run_at_ms = opts->run_at_ms;
        f->spec.backoff_ms = opts->backoff_ms;
        f->spec.result_ttl_s = opts->result_ttl_s;
    }
    return f;
}

//  Queues a list of futures linked through next (first..last) for the I/O
//  thread. Returns 0 or DROVER_ECLOSED / DROVER_ENOMEM (nothing queued).
static int
s_enqueue (drover_client_t *self, const char *queue, drover_future_t *first, drover_future_t *last)
{
    pthread_mutex_lock (&self->lock);
    if (self->closing || atomic_load (&self->revoked)) {
        pthread_mutex_unlock (&self->lock);
        return self->closing? DROVER_ECLOSED: DROVER_EDENIED;
    }
    if (queue) {
        const char *interned = s_queue_intern (self, queue);
        if (!interned) {
            pthread_mutex_unlock (&self->lock);
            return DROVER_ENOMEM;
        }
        for (drover_future_t *f = first; f; f = f->next)
            f->spec.queue = interned;
    }
    bool was_empty = !self->queue_head && !self->req_head;
    if (self->queue_tail)
        self->queue_tail->next = first;
    else
        self->queue_head = first;
    self->queue_tail = last;
    pthread_mutex_unlock (&self->lock);
    //  One wake-up per burst: the I/O thread takes the whole queue
    if (was_empty)
        drv_signal_post (&self->wake);
    return 0;
}

int
drover_submit (drover_client_t *client, const char *queue,
               const void *data, size_t size,
               const drover_job_opts_t *opts, drover_future_t **future_p)
{
    const void *const datas [1] = {data};
    return drover_submit_many (client, queue, datas, &size, 1, opts, future_p);
}

int
drover_submit_many (drover_client_t *client, const char *queue,
                    const void *const *data, const size_t *size, size_t count,
                    const drover_job_opts_t *opts, drover_future_t **futures)
{
    if (!client || !futures || !drv_queue_name_valid (queue) || (count && (!data || !size)))
        return DROVER_EINVAL;
    if (opts && (opts->priority < 0 || opts->priority > 9))
        return DROVER_EINVAL;
    unsigned max_payload = atomic_load (&client->max_payload);
    for (size_t i = 0; i < count; i++) {
        if (size [i] && !data [i])
            return DROVER_EINVAL;
        if (size [i] > max_payload)
            return DROVER_ETOOLARGE;
    }
    if (count == 0)
        return 0;
    drover_future_t *first = NULL, *last = NULL;
    for (size_t i = 0; i < count; i++) {
        drover_future_t *f = s_submit_future (data [i], size [i], opts);
        if (!f) {
            while (first) {
                drover_future_t *next = first->next;
                s_future_free (first);
                first = next;
            }
            return DROVER_ENOMEM;
        }
        if (last)
            last->next = f;
        else
            first = f;
        last = f;
    }
    //  Remember them before queueing: once queued the I/O thread may link
    //  them elsewhere
    size_t i = 0;
    for (drover_future_t *f = first; f; f = f->next)
        futures [i++] = f;
    int rc = s_enqueue (client, queue, first, last);
    if (rc) {
        for (i = 0; i < count; i++) {
            s_future_free (futures [i]);
            futures [i] = NULL;
        }
    }
    return rc;
}

int
drover_fetch (drover_client_t *client, const char *id, drover_future_t **future_p)
{
    uint8_t bytes [DRV_ID_SIZE];
    if (!client || !future_p || drover_id_parse (id, bytes))
        return DROVER_EINVAL;
    drover_future_t *f = s_future_new ();
    if (!f)
        return DROVER_ENOMEM;
    f->fetch = true;
    f->holding = false;
    atomic_store (&f->payload_users, 0);
    memcpy (f->id, bytes, DRV_ID_SIZE);
    drover_id_format (f->id, f->id_text);
    int rc = s_enqueue (client, NULL, f, f);
    if (rc) {
        s_future_free (f);
        return rc;
    }
    *future_p = f;
    return 0;
}

//  Queues a request and waits for its answer. Returns its outcome; the
//  caller then lets go of req with s_request_release().
static int
s_request_run (drover_client_t *self, request_t *req, int timeout_ms)
{
    pthread_mutex_lock (&self->lock);
    if (self->closing || atomic_load (&self->revoked)) {
        req->refs = 1;
        pthread_mutex_unlock (&self->lock);
        return self->closing? DROVER_ECLOSED: DROVER_EDENIED;
    }
    req->refs = 2;
    bool was_empty = !self->queue_head && !self->req_head;
    if (self->req_tail)
        self->req_tail->next = req;
    else
        self->req_head = req;
    self->req_tail = req;
    if (was_empty)
        drv_signal_post (&self->wake);
    struct timespec deadline;
    if (timeout_ms >= 0)
        drv_deadline (&deadline, timeout_ms);
    int rc = 0;
    while (!req->done && rc == 0)
        rc = timeout_ms >= 0? pthread_cond_timedwait (&self->cond, &self->lock, &deadline)
                            : pthread_cond_wait (&self->cond, &self->lock);
    int err = req->done? req->err: DROVER_ETIMEDOUT;
    if (!req->done)
        req->abandoned = true;
    pthread_mutex_unlock (&self->lock);
    return err;
}

static void
s_request_release (drover_client_t *self, request_t *req)
{
    pthread_mutex_lock (&self->lock);
    s_request_unref (self, req);
    pthread_mutex_unlock (&self->lock);
}

int
drover_status (drover_client_t *client, const char *id, drover_job_info_t *info, int timeout_ms)
{
    uint8_t bytes [DRV_ID_SIZE];
    if (!client || !info || drover_id_parse (id, bytes))
        return DROVER_EINVAL;
    request_t *req = calloc (1, sizeof *req);
    if (!req)
        return DROVER_ENOMEM;
    req->kind = REQ_STATUS;
    memcpy (req->id, bytes, DRV_ID_SIZE);
    int rc = s_request_run (client, req, timeout_ms);
    if (rc == 0)
        *info = req->info;
    s_request_release (client, req);
    return rc;
}

int
drover_cancel (drover_client_t *client, const char *id, int timeout_ms)
{
    uint8_t bytes [DRV_ID_SIZE];
    if (!client || drover_id_parse (id, bytes))
        return DROVER_EINVAL;
    request_t *req = calloc (1, sizeof *req);
    if (!req)
        return DROVER_ENOMEM;
    req->kind = REQ_CANCEL;
    memcpy (req->id, bytes, DRV_ID_SIZE);
    int rc = s_request_run (client, req, timeout_ms);
    s_request_release (client, req);
    return rc;
}

int
drover_stats (drover_client_t *client, drover_stats_t **stats_p, int timeout_ms)
{
    if (!client || !stats_p)
        return DROVER_EINVAL;
    request_t *req = calloc (1, sizeof *req);
    if (!req)
        return DROVER_ENOMEM;
    req->kind = REQ_STATS;
    int rc = s_request_run (client, req, timeout_ms);
    if (rc == 0) {
        *stats_p = req->stats;
        req->stats = NULL;
    }
    s_request_release (client, req);
    return rc;
}

void
drover_stats_destroy (drover_stats_t **stats_p)
{
    if (!stats_p || !*stats_p)
        return;
    drover_stats_t *stats = *stats_p;
    for (size_t i = 0; i < stats->peer_count; i++)
        free ((void *) stats->peers [i].queues);
    free (stats->peers);
    free (stats->queues);
    free (stats);
    *stats_p = NULL;
}

int
drover_queue_pause (drover_client_t *client, const char *queue, bool paused, int timeout_ms)
{
    if (!client || !queue)
        return DROVER_EINVAL;
    if (!drv_queue_name_valid (queue))
        return DROVER_ENOQUEUE;
    request_t *req = calloc (1, sizeof *req);
    if (!req)
        return DROVER_ENOMEM;
    req->kind = REQ_QUEUE;
    snprintf (req->queue, sizeof req->queue, "%s", queue);
    req->paused = paused;
    int rc = s_request_run (client, req, timeout_ms);
    s_request_release (client, req);
    return rc;
}

int
drover_dead (drover_client_t *client, const char *queue, drover_dead_action_t action,
             const char *const *ids, size_t id_count, size_t limit,
             drover_job_info_t **infos_p, size_t *count_p, int timeout_ms)
{
    if (!client || !queue || !infos_p || !count_p || (id_count && !ids))
        return DROVER_EINVAL;
    if (action != DROVER_DEAD_LIST && action != DROVER_DEAD_RETRY && action != DROVER_DEAD_PURGE)
        return DROVER_EINVAL;
    if (!drv_queue_name_valid (queue))
        return DROVER_ENOQUEUE;
    request_t *req = calloc (1, sizeof *req);
    if (!req)
        return DROVER_ENOMEM;
    req->kind = REQ_DEAD;
    snprintf (req->queue, sizeof req->queue, "%s", queue);
    req->action = action == DROVER_DEAD_LIST? DRV_DEAD_LIST:
                  action == DROVER_DEAD_RETRY? DRV_DEAD_RETRY: DRV_DEAD_PURGE;
    req->limit = limit > UINT32_MAX? UINT32_MAX: (uint32_t) limit;
    if (id_count) {
        req->ids = malloc (id_count * DRV_ID_SIZE);
        if (!req->ids) {
            free (req);
            return DROVER_ENOMEM;
        }
        for (size_t i = 0; i < id_count; i++)
            if (drover_id_parse (ids [i], req->ids [i])) {
                free (req->ids);
                free (req);
                return DROVER_EINVAL;
            }
        req->id_count = id_count;
    }
    else
    if (action != DROVER_DEAD_LIST) {
        req->seen = drv_idmap_new ();
        if (!req->seen) {
            free (req);
            return DROVER_ENOMEM;
        }
    }
    int rc = s_request_run (client, req, timeout_ms);
    if (rc == 0) {
        //  Hand over the array; never NULL on success, even when empty
        if (!req->infos)
            req->infos = calloc (1, sizeof (drover_job_info_t));
        if (req->infos) {
            *infos_p = req->infos;
            *count_p = req->info_count;
            req->infos = NULL;
        }
        else
            rc = DROVER_ENOMEM;
    }
    s_request_release (client, req);
    return rc;
}

//  Futures ----------------------------------------------------------------

//  Waits on f->cond until done(f) or the timeout; lock held on return.
static int
s_future_wait (drover_future_t *f, int timeout_ms, bool want_resolved)
{
    struct timespec deadline;
    if (timeout_ms > 0)
        drv_deadline (&deadline, timeout_ms);
    int rc = 0;
    while (!(f->resolved || (!want_resolved && f->acked)) && rc == 0) {
        if (timeout_ms == 0)
            rc = ETIMEDOUT;
        else
            rc = timeout_ms > 0? pthread_cond_timedwait (&f->cond, &f->lock, &deadline)
                               : pthread_cond_wait (&f->cond, &f->lock);
    }
    return f->resolved || (!want_resolved && f->acked)? 0: DROVER_ETIMEDOUT;
}

int
drover_future_accepted (drover_future_t *future, int timeout_ms)
{
    if (!future)
        return DROVER_EINVAL;
    pthread_mutex_lock (&future->lock);
    int rc = s_future_wait (future, timeout_ms, false);
    if (rc == 0)
        rc = future->acked? future->accept_err: future->err;
    pthread_mutex_unlock (&future->lock);
    return rc;
}

int
drover_future_wait (drover_future_t *future, int timeout_ms)
{
    if (!future)
        return DROVER_EINVAL;
    pthread_mutex_lock (&future->lock);
    int rc = s_future_wait (future, timeout_ms, true);
    if (rc == 0)
        rc = future->err;
    pthread_mutex_unlock (&future->lock);
    return rc;
}

bool
drover_future_ready (drover_future_t *future)
{
    if (!future)
        return false;
    pthread_mutex_lock (&future->lock);
    bool ready = future->resolved;
    pthread_mutex_unlock (&future->lock);
    return ready;
}

const char *
drover_future_id (drover_future_t *future)
{
    return future? future->id_text: NULL;
}

const void *
drover_future_result (drover_future_t *future, size_t *size_p)
{
    if (size_p)
        *size_p = 0;
    if (!future)
        return NULL;
    pthread_mutex_lock (&future->lock);
    const void *data = NULL;
    if (future->resolved && future->err == 0) {
        size_t size = zmq_msg_size (&future->result);
        data = size? zmq_msg_data (&future->result): "";
        if (size_p)
            *size_p = size;
    }
    pthread_mutex_unlock (&future->lock);
    return data;
}

const char *
drover_future_error (drover_future_t *future)
{
    if (!future)
        return NULL;
    pthread_mutex_lock (&future->lock);
    const char *error = future->resolved && future->err? future->error: NULL;
    pthread_mutex_unlock (&future->lock);
    return error;
}

uint32_t
drover_future_attempts (drover_future_t *future)
{
    if (!future)
        return 0;
    pthread_mutex_lock (&future->lock);
    uint32_t attempts = future->attempts;
    pthread_mutex_unlock (&future->lock);
    return attempts;
}

void
drover_future_on_done (drover_future_t *future, drover_future_fn *fn, void *arg)
{
    if (!future)
        return;
    pthread_mutex_lock (&future->lock);
    if (future->resolved) {
        pthread_mutex_unlock (&future->lock);
        if (fn)
            fn (future, arg);
        return;
    }
    future->fn = fn;
    future->fn_arg = arg;
    pthread_mutex_unlock (&future->lock);
}

void
drover_future_destroy (drover_future_t **future_p)
{
    if (!future_p || !*future_p)
        return;
    s_future_unref (*future_p);
    *future_p = NULL;
}

//  Shared state --------------------------------------------------------

#define DRV_STATE_KEY_MAX 1024

//  Builds a state request; DROVER_EINVAL / ETOOLARGE / ENOMEM on bad input.
static int
s_state_request (drover_client_t *client, drv_state_op_t op, const char *ns, const char *key,
                 const void *value, size_t size, request_t **req_p)
{
    if (!client || !ns || !key || (size && !value))
        return DROVER_EINVAL;
    if (!drv_queue_name_valid (ns))
        return DROVER_EINVAL;
    size_t key_size = strlen (key);
    if (key_size > DRV_STATE_KEY_MAX)
        return DROVER_ETOOLARGE;
    if (key_size == 0 && op != DRV_STATE_LIST && op != DRV_STATE_SNAPSHOT)
        return DROVER_EINVAL;
    if (size > atomic_load (&client->max_value))
        return DROVER_ETOOLARGE;
    request_t *req = calloc (1, sizeof *req);
    if (!req)
        return DROVER_ENOMEM;
    req->kind = REQ_STATE;
    req->op = op;
    snprintf (req->queue, sizeof req->queue, "%s", ns);
    req->key = strdup (key);
    req->key_size = key_size;
    if (size) {
        req->value = malloc (size);
        if (req->value)
            memcpy (req->value, value, size);
        req->value_size = size;
    }
    if (!req->key || (size && !req->value)) {
        free (req->key);
        free (req->value);
        free (req);
        return DROVER_ENOMEM;
    }
    *req_p = req;
    return 0;
}

//  Version of the first entry of an answer, or 0.
static uint64_t
s_first_version (request_t *req)
{
    return req->entry_count? req->entries [0].version: 0;
}

int
drover_state_get (drover_client_t *client, const char *ns, const char *key,
                  void **value_p, size_t *size_p, uint64_t *version_p, int timeout_ms)
{
    request_t *req;
    int rc = s_state_request (client, DRV_STATE_GET, ns, key, NULL, 0, &req);
    if (rc)
        return rc;
    rc = s_request_run (client, req, timeout_ms);
    if (rc == 0 && req->entry_count != 1)
        rc = DROVER_EPROTO;
    if (rc == 0) {
        if (version_p)
            *version_p = req->entries [0].version;
        if (size_p)
            *size_p = req->entries [0].size;
        if (value_p) {
            *value_p = req->entries [0].value;
            req->entries [0].value = NULL;
        }
    }
    s_request_release (client, req);
    return rc;
}

int
drover_state_set (drover_client_t *client, const char *ns, const char *key,
                  const void *value, size_t size, uint64_t *version_p, int timeout_ms)
{
    request_t *req;
    int rc = s_state_request (client, DRV_STATE_SET, ns, key, value, size, &req);
    if (rc)
        return rc;
    rc = s_request_run (client, req, timeout_ms);
    if (rc == 0 && version_p)
        *version_p = s_first_version (req);
    s_request_release (client, req);
    return rc;
}

int
drover_state_del (drover_client_t *client, const char *ns, const char *key, int timeout_ms)
{
    request_t *req;
    int rc = s_state_request (client, DRV_STATE_DEL, ns, key, NULL, 0, &req);
    if (rc)
        return rc;
    rc = s_request_run (client, req, timeout_ms);
    s_request_release (client, req);
    return rc;
}

int
drover_state_cas (drover_client_t *client, const char *ns, const char *key,
                  uint64_t expect_version, const void *value, size_t size,
                  uint64_t *version_p, int timeout_ms)
{
    request_t *req;
    int rc = s_state_request (client, DRV_STATE_CAS, ns, key, value, size, &req);
    if (rc)
        return rc;
    req->expect_version = expect_version;
    rc = s_request_run (client, req, timeout_ms);
    if ((rc == 0 || rc == DROVER_ECONFLICT) && version_p)
        *version_p = s_first_version (req);
    s_request_release (client, req);
    return rc;
}

int
drover_state_incr (drover_client_t *client, const char *ns, const char *key,
                   int64_t delta, int64_t *value_p, int timeout_ms)
{
    request_t *req;
    int rc = s_state_request (client, DRV_STATE_INCR, ns, key, NULL, 0, &req);
    if (rc)
        return rc;
    req->delta = delta;
    rc = s_request_run (client, req, timeout_ms);
    if (rc == 0) {
        if (req->entry_count != 1)
            rc = DROVER_EPROTO;
        else {
            char *end;
            errno = 0;
            long long value = strtoll ((const char *) req->entries [0].value, &end, 10);
            if (errno || end == (char *) req->entries [0].value || *end)
                rc = DROVER_EPROTO;
            else
            if (value_p)
                *value_p = (int64_t) value;
        }
    }
    s_request_release (client, req);
    return rc;
}

//  LIST or SNAPSHOT: hands the entries over (never NULL on success).
static int
s_state_entries (drover_client_t *client, drv_state_op_t op, const char *ns, const char *prefix,
                 drover_state_entry_t **entries_p, size_t *count_p, uint64_t *seq_p,
                 int timeout_ms)
{
    if (!entries_p || !count_p)
        return DROVER_EINVAL;
    request_t *req;
    int rc = s_state_request (client, op, ns, prefix? prefix: "", NULL, 0, &req);
    if (rc)
        return rc;
    rc = s_request_run (client, req, timeout_ms);
    if (rc == 0) {
        *entries_p = req->entries;
        *count_p = req->entry_count;
        if (seq_p)
            *seq_p = req->seq;
        req->entries = NULL;
        req->entry_count = 0;
    }
    s_request_release (client, req);
    return rc;
}

int
drover_state_list (drover_client_t *client, const char *ns, const char *prefix,
                   drover_state_entry_t **entries_p, size_t *count_p, int timeout_ms)
{
    return s_state_entries (client, DRV_STATE_LIST, ns, prefix, entries_p, count_p, NULL, timeout_ms);
}

void
drover_state_entries_free (drover_state_entry_t *entries, size_t count)
{
    if (!entries)
        return;
    for (size_t i = 0; i < count; i++) {
        free (entries [i].key);
        free (entries [i].value);
    }
    free (entries);
}

//  Sync primitives -------------------------------------------------------

//  Runs one sync request. timeout_ms: the broker's longest wait (0 = try
//  once, < 0 = forever); the caller waits a grace longer for the answer.
//  Releases and sets are not waits: they wait for the answer up to the
//  connect timeout.
static int
s_sync_run (drover_client_t *client, drv_sync_op_t op, const char *name, uint32_t count,
            int timeout_ms, uint64_t *fence_p)
{
    if (!client || !name || !drv_queue_name_valid (name))
        return DROVER_EINVAL;
    request_t *req = calloc (1, sizeof *req);
    if (!req)
        return DROVER_ENOMEM;
    req->kind = REQ_SYNC;
    req->sync_op = op;
    req->sync_count = count;
    snprintf (req->queue, sizeof req->queue, "%s", name);
    bool waits = op == DRV_SYNC_LOCK || op == DRV_SYNC_SEM_ACQUIRE
              || op == DRV_SYNC_EVENT_WAIT || op == DRV_SYNC_BARRIER_WAIT;
    int wait_ms;
    if (!waits) {
        req->sync_deadline = drv_now_ms ();
        wait_ms = client->config.timeout_ms;
    }
    else
    if (timeout_ms < 0) {
        req->forever = true;
        wait_ms = -1;
    }
    else {
        req->sync_deadline = drv_now_ms () + (uint64_t) timeout_ms;
        wait_ms = timeout_ms > INT32_MAX - DRV_SYNC_GRACE_MS? INT32_MAX: timeout_ms + DRV_SYNC_GRACE_MS;
    }
    int rc = s_request_run (client, req, wait_ms);
    if (rc == 0 && fence_p)
        *fence_p = req->fence;
    s_request_release (client, req);
    return rc;
}

int
drover_lock (drover_client_t *client, const char *name, int timeout_ms, uint64_t *fence_p)
{
    return s_sync_run (client, DRV_SYNC_LOCK, name, 0, timeout_ms, fence_p);
}

int
drover_unlock (drover_client_t *client, const char *name)
{
    return s_sync_run (client, DRV_SYNC_UNLOCK, name, 0, 0, NULL);
}

int
drover_sem_acquire (drover_client_t *client, const char *name, unsigned initial, int timeout_ms)
{
    if (initial > UINT32_MAX)
        return DROVER_EINVAL;
    return s_sync_run (client, DRV_SYNC_SEM_ACQUIRE, name, (uint32_t) initial, timeout_ms, NULL);
}

int
drover_sem_release (drover_client_t *client, const char *name)
{
    return s_sync_run (client, DRV_SYNC_SEM_RELEASE, name, 0, 0, NULL);
}

int
drover_event_set (drover_client_t *client, const char *name)
{
    return s_sync_run (client, DRV_SYNC_EVENT_SET, name, 0, 0, NULL);
}

int
drover_event_clear (drover_client_t *client, const char *name)
{
    return s_sync_run (client, DRV_SYNC_EVENT_CLEAR, name, 0, 0, NULL);
}

int
drover_event_wait (drover_client_t *client, const char *name, int timeout_ms)
{
    return s_sync_run (client, DRV_SYNC_EVENT_WAIT, name, 0, timeout_ms, NULL);
}

int
drover_barrier_wait (drover_client_t *client, const char *name, unsigned parties, int timeout_ms)
{
    if (parties == 0 || parties > UINT32_MAX)
        return DROVER_EINVAL;
    return s_sync_run (client, DRV_SYNC_BARRIER_WAIT, name, (uint32_t) parties, timeout_ms, NULL);
}

//  Internal, for the replica -------------------------------------------

int
drv_client_snapshot (drover_client_t *client, const char *ns, drover_state_entry_t **entries_p,
                     size_t *count_p, uint64_t *seq_p, int timeout_ms)
{
    return s_state_entries (client, DRV_STATE_SNAPSHOT, ns, "", entries_p, count_p, seq_p, timeout_ms);
}

const drv_config_t *
drv_client_config (drover_client_t *client, const drv_keys_t **keys_p)
{
    if (keys_p)
        *keys_p = &client->keys;
    return &client->config;
}

unsigned
drv_client_state_port (drover_client_t *client)
{
    return atomic_load (&client->state_port);
}

unsigned
drv_client_epoch (drover_client_t *client)
{
    return atomic_load (&client->epoch);
}

int
drv_client_restart_hook (drover_client_t *client, drv_signal_t *signal, bool add)
{
    int rc = add? -1: 0;
    pthread_mutex_lock (&client->lock);
    for (size_t i = 0; i < DRV_RESTART_HOOKS; i++) {
        if (add && !client->restart_hooks [i]) {
            client->restart_hooks [i] = signal;
            rc = 0;
            break;
        }
        if (!add && client->restart_hooks [i] == signal)
            client->restart_hooks [i] = NULL;
    }
    pthread_mutex_unlock (&client->lock);
    return rc;
}
