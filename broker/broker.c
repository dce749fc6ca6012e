/*  broker.c - the Drover broker actor: sockets, sessions, routing, credit,
    heartbeats and job life cycle.

    One thread runs one loop. Each turn: poll; drain what each socket has
    (bounded, so one busy peer cannot starve the rest); fire due timers;
    hand ready jobs to workers with credit; then flush what the turn
    produced, one message per peer (Dispatch to workers, Deliver to
    clients). Payload frames are moved from the receive buffer into the job
    and later sent as reference-counted copies: never copied byte by byte.
*/
#include "broker.h"
#include "auth.h"
#include "http.h"
#include "prom.h"
#include "codec.h"
#include "job.h"
#include "journal.h"
#include "persist.h"
#include "queue.h"
#include "state.h"
#include "sync.h"
#include "util.h"

#include <errno.h>

//  Messages drained from one socket per loop turn
#define DRAIN_MAX 256
//  Cap on any backoff, and on credit a worker can accumulate
#define BACKOFF_CAP_MS (3600 * 1000)
#define CREDIT_CAP 1000000
//  Messages queued to one peer before further sends to it fail (a peer
//  that does not read holds at most this many of our replies)
#define SNDHWM_PEER 1000
//  Requests whose replies the broker builds afresh and large (Stats, state
//  LIST and SNAPSHOT, dead-letter LIST): per peer, this many per second,
//  in bursts of up to COSTLY_BURST
#define COSTLY_RATE 100
#define COSTLY_BURST 200
//  Frames above max_payload that still reach us before ZeroMQ cuts them off
#define FRAME_SLACK (64 * 1024)

struct _peer_t {
    drv_peer_kind_t kind;           //  client or worker
    uint8_t route [256];            //  ROUTER routing id
    size_t route_size;              //  its length
    char route_key [513];           //  hex of route, map key
    uint8_t session [DRV_ID_SIZE];  //  peer-chosen session id
    char session_key [33];          //  hex of session, map key
    char name [64];                 //  label for logs
    char role [16];                 //  role of its key
    char key [41];                  //  Z85 public key ("" when insecure)
    char *allowed;                  //  queues its key is limited to (comma list), NULL = all
    submitter_t *submitter;         //  client: the record of its key (kept for the broker's life)
    uint64_t joined_wall;           //  Unix ms of its Hello
    double costly_tokens;           //  costly requests it may still make now
    uint64_t costly_at;             //  monotonic ms of the last refill
    uint64_t last_recv;             //  monotonic ms of last message in
    uint64_t last_send;             //  monotonic ms of last message out
    uint32_t credit;                //  worker: jobs it will still accept
    bool draining;                  //  worker: said Bye, gets no more jobs
    job_list_t inflight;            //  worker: jobs it holds
    size_t inflight_count;          //  entries in inflight
    queue_t **queues;               //  worker: queues it serves
    size_t queue_count;             //  entries in queues
    job_t **out;                    //  jobs to send this turn (Dispatch or Deliver)
    size_t out_count;               //  entries in out
    size_t out_cap;                 //  allocated entries
    bool outgoing;                  //  on the broker's outgoing list
    struct _peer_t *next_out;       //  outgoing list link
};

typedef struct {
    broker_config_t cfg;            //  configuration (strings owned below)
    char *cfg_strings [6];          //  copies of the config strings
    zsock_t *pipe;                  //  actor pipe
    zsock_t *producers;             //  client ROUTER
    zsock_t *workers;               //  worker ROUTER
    char *producers_ep;             //  bound client endpoint
    char *workers_ep;               //  bound worker endpoint
    zsock_t *pub;                   //  shared-state PUB socket
    void *pub_monitor;              //  PAIR receiving the PUB socket's connection events
    uint32_t pub_monitors;          //  monitors made so far (each gets its own endpoint)
    int64_t subscribers;            //  connections open on the PUB socket
    http_t *http;                   //  /metrics, /healthz, /readyz; NULL when off
    char *metrics_ep;               //  its bound endpoint
    prom_t *prom;                   //  the metrics page being served
    char *state_ep;                 //  its bound endpoint
    uint32_t state_port;            //  its TCP port (0 if not TCP), told in Welcome
    state_t *state;                 //  shared-state namespaces
    sync_t *sync;                   //  locks, semaphores, events, barriers (memory only)
    struct state_change *changes;   //  this turn's state changes, published after the commit
    size_t change_count;            //  entries in changes
    size_t change_cap;              //  allocated entries
    struct state_reply *st_replies; //  this turn's StateReplies, sent after the commit
    size_t st_reply_count;          //  entries in st_replies
    size_t st_reply_cap;            //  allocated entries
    struct state_item *st_items;    //  entries of those replies
    size_t st_item_count;           //  entries in st_items
    size_t st_item_cap;             //  allocated entries
    zmq_msg_t *st_values;           //  value of each st_items entry (shared)
    uint8_t *st_keys;               //  key bytes of st_items and changes (by offset)
    size_t st_key_size;             //  bytes used
    size_t st_key_cap;              //  bytes allocated
    auth_t *auth;                   //  ZAP handler; NULL when insecure
    zcert_t *cert;                  //  server certificate
    drv_codec_t *dec;               //  decodes incoming envelopes
    drv_codec_t *enc;               //  encodes outgoing envelopes
    drv_frames_t frames;            //  the message being handled
    zmq_msg_t *sendbuf;             //  payload frames of an outgoing batch
    size_t sendbuf_cap;             //  allocated entries
    job_store_t *jobs;              //  every job held
    job_heap_t *timers;             //  scheduled, running and finished jobs by due time
    zhashx_t *queues;               //  name -> queue_t
    zhashx_t *clients;              //  route key -> peer_t
    zhashx_t *worker_peers;         //  route key -> peer_t
    zhashx_t *sessions;             //  session key -> peer_t
    zhashx_t *submitters;           //  Z85 key -> submitter_t (owned)
    queue_t *dirty;                 //  queues to dispatch this turn
    peer_t *outgoing;               //  peers with something to send this turn
    uint8_t broker_id [DRV_ID_SIZE];    //  new on every start
    uint64_t started;               //  monotonic ms at start
    uint64_t next_liveness;         //  monotonic ms of next heartbeat pass
    uint64_t next_rates;            //  monotonic ms of next rate sample
    uint64_t next_beacon;           //  monotonic ms of next state sequence beacon
    uint64_t last_rates;            //  monotonic ms of the last one
    uint64_t now;                   //  monotonic ms of this turn
    bool terminated;                //  $TERM received
    bool replaying;                 //  journal replay in progress
    uint64_t next_auth_check;       //  monotonic ms of the next allow-list check
    uint64_t auth_seen;             //  allow-list generation the sessions were checked against
    uint64_t auth_removals_seen;    //  allow-list removals the PUB socket has caught up with
    char start_error [256];         //  why start failed, "" when serving
    drv_budget_t log_budget;        //  warnings about bad input, per second
    journal_t *journal;             //  NULL when in memory
    uint64_t live_bytes;            //  what a compacted journal would hold
    uint64_t storage_retry_at;      //  monotonic ms; refuse submits until then after a failure
    char storage_error [160];       //  why the last commit failed
    drv_joback_t *acks;             //  this turn's submit acks, all clients
    size_t ack_count;               //  entries in acks
    size_t ack_cap;                 //  allocated entries
    struct pending_reply *replies;  //  this turn's SubmitAcks, sent after the commit
    size_t reply_count;             //  entries in replies
    size_t reply_cap;               //  allocated entries
    struct new_job *fresh;          //  jobs accepted this turn, undone if the commit fails
    size_t fresh_count;             //  entries in fresh
    size_t fresh_cap;               //  allocated entries
} broker_t;

//  A SubmitAck waiting for the turn's commit.
struct pending_reply {
    uint8_t session [DRV_ID_SIZE];  //  client to answer (by session: it may reconnect)
    uint64_t corr;                  //  request it answers
    size_t first;                   //  its acks in broker_t.acks
    size_t count;                   //  number of acks
};

//  A shared-state change made this turn: what to publish after the commit,
//  and what to put back if the commit fails.
struct state_change {
    state_ns_t *ns;                 //  namespace changed
    size_t key;                     //  offset of the key in broker_t.st_keys
    size_t key_size;                //  its length
    uint64_t seq;                   //  the change's namespace seq
    uint64_t version;               //  new version (0 when deleted)
    bool deleted;                   //  key removed
    zmq_msg_t value;                //  new value (shared with the entry)
    bool had_old;                   //  key existed before
    uint64_t old_version;           //  its version then
    zmq_msg_t old_value;            //  its value then (shared)
};

//  A StateReply waiting for the turn's commit.
struct state_reply {
    uint8_t session [DRV_ID_SIZE];  //  client to answer
    uint64_t corr;                  //  request it answers
    drv_code_t code;                //  outcome
    const char *message;            //  static text
    uint64_t seq;                   //  namespace seq reflected
    size_t first;                   //  its entries in broker_t.st_items
    size_t count;                   //  number of entries
};

//  One entry of a pending StateReply (its value is st_values at the same index).
struct state_item {
    size_t key;                     //  offset of the key in broker_t.st_keys
    size_t key_size;                //  its length
    uint64_t version;               //  0 when the key does not exist
};

//  A job accepted this turn and the ack that promises it.
struct new_job {
    job_t *job;                     //  the job
    size_t ack;                     //  index in broker_t.acks
};

//  Grows an array member of broker_t by one; evaluates to 0 or -1.
#define GROW(array, count, cap) \
    drv_grow ((void **) &(array), &(cap), (count) + 1, sizeof *(array))

//  Rate-limited warning: bad input from the network must not flood the log.
#define s_warn(self, ...) \
    do { if (s_log_allowed (self)) drv_log (DRV_LOG_WARN, "broker", __VA_ARGS__); } while (0)

static bool
s_log_allowed (broker_t *self)
{
    uint64_t dropped;
    bool allowed = drv_budget_take (&self->log_budget, self->now, 20, &dropped);
    if (dropped)
        drv_log (DRV_LOG_WARN, "broker", "%" PRIu64 " warnings suppressed", dropped);
    return allowed;
}

void
broker_config_defaults (broker_config_t *config)
{
    memset (config, 0, sizeof *config);
    config->producers = "tcp://*:5555";
    config->workers = "tcp://*:5556";
    config->max_value = 1024 * 1024;
    config->data_dir = "./drover-data";
    config->heartbeat_ms = 1000;
    config->max_payload = 8 * 1024 * 1024;
    config->max_batch = 1000;
    config->default_timeout_ms = 300 * 1000;
    config->default_attempts = 3;
    config->default_backoff_ms = 1000;
    config->default_result_ttl_s = 3600;
    config->compact_factor = 4;
    config->dead_ttl_s = 7 * 86400;
    config->max_key = 1024;
    config->max_queue_name = 128;
    config->max_queues = 10000;
    config->max_inflight = 1000000;
    config->max_clients = 10000;
    config->max_workers = 10000;
}

//  Sending ------------------------------------------------------------------

static zmq_msg_t *
s_sendbuf (broker_t *self, size_t count)
{
    if (count > self->sendbuf_cap) {
        zmq_msg_t *buf = realloc (self->sendbuf, count * sizeof (zmq_msg_t));
        if (!buf)
            return NULL;
        self->sendbuf = buf;
        self->sendbuf_cap = count;
    }
    return self->sendbuf;
}

//  Encodes msg and sends it with count payload frames (moved out of
//  payloads) to route on socket. Returns 0 or -1; logs failures.
static int
s_send_route (broker_t *self, zsock_t *socket, const uint8_t *route, size_t route_size,
              const drv_msg_t *msg, zmq_msg_t *payloads, size_t count)
{
    zmq_msg_t routing, envelope;
    //  The encoder's arena is not reset here: a handler may still be
    //  building its reply in it while it sends something else; the loop
    //  resets it once per turn
    if (drv_codec_encode (self->enc, msg, &envelope)) {
        drv_log (DRV_LOG_ERROR, "broker", "cannot encode %s", drv_cmd_name (msg->cmd));
        return -1;
    }
    zmq_msg_init_size (&routing, route_size);
    memcpy (zmq_msg_data (&routing), route, route_size);
    int rc = drv_send (zsock_resolve (socket), &routing, &envelope, payloads, count, false);
    if (rc) {
        if (errno == EHOSTUNREACH)
            drv_log (DRV_LOG_DEBUG, "broker", "%s to a peer that is gone", drv_cmd_name (msg->cmd));
        else
        if (errno == EAGAIN)
            s_warn (self, "%s dropped: the peer is not reading (its queue is full)",
                    drv_cmd_name (msg->cmd));
        else
            s_warn (self, "cannot send %s: %s", drv_cmd_name (msg->cmd), zmq_strerror (errno));
        zmq_msg_close (&envelope);
        for (size_t i = 0; i < count; i++)
            zmq_msg_close (&payloads [i]);
    }
    zmq_msg_close (&routing);
    return rc;
}

static int
s_send (broker_t *self, peer_t *peer, const drv_msg_t *msg, zmq_msg_t *payloads, size_t count)
{
    peer->last_send = self->now;
    zsock_t *socket = peer->kind == DRV_PEER_WORKER? self->workers: self->producers;
    return s_send_route (self, socket, peer->route, peer->route_size, msg, payloads, count);
}

//  Answers the message being handled with an Error.
static void
s_error (broker_t *self, zsock_t *socket, uint64_t corr, drv_code_t code, const char *format, ...)
{
    char text [256];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    drv_msg_t reply;
    drv_msg_init (&reply, DRV_CMD_ERROR, corr);
    reply.error.code = code;
    reply.error.message = text;
    zmq_msg_t *route = &self->frames.msg [0];
    s_send_route (self, socket, (uint8_t *) zmq_msg_data (route), zmq_msg_size (route),
                  &reply, NULL, 0);
}

//  Queues a job for the peer's next outgoing batch.
static void
s_out_add (broker_t *self, peer_t *peer, job_t *job)
{
    if (peer->out_count == peer->out_cap) {
        size_t cap = peer->out_cap? peer->out_cap * 2: 16;
        job_t **out = realloc (peer->out, cap * sizeof (job_t *));
        if (!out) {
            drv_log (DRV_LOG_ERROR, "broker", "out of memory queueing a message");
            return;
        }
        peer->out = out;
        peer->out_cap = cap;
    }
    peer->out [peer->out_count++] = job;
    job->pinned++;
    if (!peer->outgoing) {
        peer->outgoing = true;
        peer->next_out = self->outgoing;
        self->outgoing = peer;
    }
}

static void
s_out_release (peer_t *peer)
{
    for (size_t i = 0; i < peer->out_count; i++)
        peer->out [i]->pinned--;
    peer->out_count = 0;
}

//  Fills entry i of a Dispatch (to workers) or a Deliver (to clients) for
//  job, and its payload frame: the input for a worker, the result for a
//  client (shared by reference count, never copied).
static void
s_fill_entry (drv_msg_t *msg, size_t i, job_t *job, zmq_msg_t *payload)
{
    zmq_msg_init (payload);
    if (msg->cmd == DRV_CMD_DISPATCH) {
        drv_job_t *entry = &msg->jobs [i];
        memcpy (entry->id, job->id, DRV_ID_SIZE);
        entry->queue = job->queue->name;
        entry->attempt = job->attempts;
        entry->timeout_ms = job->timeout_ms;
        entry->submitter = job->submitter? job->submitter->key: "";
        zmq_msg_copy (payload, &job->payload);
    }
    else {
        drv_result_t *entry = &msg->results [i];
        memcpy (entry->id, job->id, DRV_ID_SIZE);
        entry->state = job->state;
        entry->error = job->error? job->error: "";
        entry->attempts = job->attempts;
        entry->no_retry = false;
        if (job->state == DRV_JOB_DONE)
            zmq_msg_copy (payload, &job->result);
    }
}

//  Sends a peer the jobs gathered for it this turn, at most max_batch per
//  message: Dispatch to a worker, Deliver to a client. A failed send to a
//  worker leaves its jobs RUNNING; their timeout or the worker's expiry
//  requeues them. A client can fetch what it missed.
static void
s_flush_peer (broker_t *self, peer_t *peer)
{
    bool worker = peer->kind == DRV_PEER_WORKER;
    size_t done = 0;
    while (done < peer->out_count) {
        size_t n = peer->out_count - done;
        if (n > self->cfg.max_batch)
            n = self->cfg.max_batch;
        drv_msg_t msg;
        drv_msg_init (&msg, worker? DRV_CMD_DISPATCH: DRV_CMD_DELIVER, 0);
        msg.count = n;
        void *entries = drv_codec_alloc (self->enc,
                                         n * (worker? sizeof (drv_job_t): sizeof (drv_result_t)));
        zmq_msg_t *payloads = s_sendbuf (self, n);
        if (!entries || !payloads)
            break;
        msg.jobs = entries;
        msg.results = entries;
        for (size_t i = 0; i < n; i++)
            s_fill_entry (&msg, i, peer->out [done + i], &payloads [i]);
        s_send (self, peer, &msg, payloads, n);
        done += n;
    }
}

static void
s_flush (broker_t *self)
{
    while (self->outgoing) {
        peer_t *peer = self->outgoing;
        self->outgoing = peer->next_out;
        peer->outgoing = false;
        peer->next_out = NULL;
        s_flush_peer (self, peer);
        s_out_release (peer);
    }
}

//  Job life cycle -------------------------------------------------------------

static void
s_mark_dirty (broker_t *self, queue_t *queue)
{
    if (!queue->dirty) {
        queue->dirty = true;
        queue->next_dirty = self->dirty;
        self->dirty = queue;
    }
}

static queue_t *
s_queue_require (broker_t *self, const char *name)
{
    queue_t *queue = (queue_t *) zhashx_lookup (self->queues, name);
    if (!queue) {
        //  Peers may not make the broker hold queues without bound (replay
        //  is exempt: what the journal holds must come back)
        if (self->cfg.max_queues && zhashx_size (self->queues) >= self->cfg.max_queues
        &&  !self->replaying)
            return NULL;
        queue = queue_new (name);
        if (queue)
            zhashx_insert (self->queues, name, queue);
    }
    return queue;
}

//  Whether a peer's key may use a queue (keys can be limited to some queues).
static bool
s_queue_allowed (peer_t *peer, const char *name)
{
    return auth_queue_allowed (peer->allowed, name);
}

//  Checks a queue name from the network: charset, and length against the
//  configured limit. Returns NULL when fine, else why not.
static const char *
s_queue_name_refusal (broker_t *self, const char *name)
{
    static char why [96];
    if (!drv_queue_name_valid (name) || strlen (name) > self->cfg.max_queue_name) {
        snprintf (why, sizeof why, "invalid queue name (1-%u of A-Z a-z 0-9 . _ - :)",
                  self->cfg.max_queue_name);
        return why;
    }
    return NULL;
}

//  The shared record of a submitting key; NULL when out of memory.
static submitter_t *
s_submitter (broker_t *self, const char *key)
{
    submitter_t *submitter = (submitter_t *) zhashx_lookup (self->submitters, key);
    if (!submitter) {
        submitter = (submitter_t *) calloc (1, sizeof (submitter_t));
        if (!submitter)
            return NULL;
        snprintf (submitter->key, sizeof submitter->key, "%s", key);
        zhashx_insert (self->submitters, submitter->key, submitter);
    }
    return submitter;
}

static void
s_submitter_free (submitter_t **submitter_p)
{
    free (*submitter_p);
    *submitter_p = NULL;
}

static submitter_t *
s_replay_submitter (const char *key, void *arg)
{
    return s_submitter ((broker_t *) arg, key);
}

//  Whether a peer may make one more costly request now (a token bucket).
//  A peer that asks for large replies faster than anyone needs (and
//  perhaps never reads them) is slowed down here; the caller refuses with
//  LIMIT.
static bool
s_costly_take (broker_t *self, peer_t *peer)
{
    double refill = (double) (self->now - peer->costly_at) * COSTLY_RATE / 1000.0;
    peer->costly_at = self->now;
    peer->costly_tokens += refill;
    if (peer->costly_tokens > COSTLY_BURST)
        peer->costly_tokens = COSTLY_BURST;
    if (peer->costly_tokens >= 1) {
        peer->costly_tokens -= 1;
        return true;
    }
    s_warn (self, "%s (key %s) asks for stats or listings too fast: refused",
            peer->name, *peer->key? peer->key: "-");
    return false;
}

#define COSTLY_REFUSAL "too many stats or listing requests; slow down"


//  Counts a job in (+1) or out (-1) of its key's unfinished jobs.
static void
s_unfinished (job_t *job, int delta)
{
    if (!job->submitter)
        return;
    if (delta > 0)
        job->submitter->unfinished++;
    else
    if (job->submitter->unfinished)
        job->submitter->unfinished--;
}

//  Appends a job record when durable. An append only fails for lack of
//  memory; the commit at the end of the turn reports disk trouble.
typedef int (persist_fn) (journal_t *journal, const job_t *job);

static void
s_persist (broker_t *self, persist_fn *fn, const job_t *job)
{
    if (self->journal && fn (self->journal, job))
        drv_log (DRV_LOG_ERROR, "broker", "out of memory recording a job change");
}

//  Keeps live_bytes (the size a compacted journal would have) current.
static void
s_account (broker_t *self, job_t *job)
{
    self->live_bytes -= job->journal_bytes;
    job->journal_bytes = (uint32_t) persist_job_bytes (job);
    self->live_bytes += job->journal_bytes;
}

static void
s_forget (broker_t *self, job_t *job)
{
    //  Expired jobs were popped already; a purged dead letter still has its timer
    job_heap_remove (self->timers, job);
    if (job->state == DRV_JOB_FAILED) {
        job_list_unlink (&job->queue->dead, job);
        job->queue->dead_count--;
    }
    self->live_bytes -= job->journal_bytes;
    if (self->journal && persist_job_forget (self->journal, job->id))
        drv_log (DRV_LOG_ERROR, "broker", "out of memory recording a job change");
    job_store_remove (self->jobs, job);
}

//  Takes a job out of whatever list or timer its state puts it in.
static void
s_job_detach (broker_t *self, job_t *job)
{
    queue_t *queue = job->queue;
    job_heap_remove (self->timers, job);
    switch (job->state) {
        case DRV_JOB_QUEUED:
            queue_unlink (queue, job);
            break;
        case DRV_JOB_SCHEDULED:
            queue->scheduled--;
            break;
        case DRV_JOB_FAILED:
            job_list_unlink (&queue->dead, job);
            queue->dead_count--;
            break;
        case DRV_JOB_RUNNING: {
            peer_t *worker = job->worker;
            if (worker) {
                job_list_unlink (&worker->inflight, job);
                worker->inflight_count--;
            }
            job->worker = NULL;
            queue->running--;
            break;
        }
        default:
            break;
    }
}

static void
s_job_enqueue (broker_t *self, job_t *job)
{
    job->state = DRV_JOB_QUEUED;
    job->due = self->now;
    queue_push (job->queue, job);
    s_mark_dirty (self, job->queue);
}

static void
s_job_schedule (broker_t *self, job_t *job, uint64_t due)
{
    //  The wall-clock time is what survives a restart
    job->wake_wall = drv_wall_ms () + (due > self->now? due - self->now: 0);
    job->state = DRV_JOB_SCHEDULED;
    job->queue->scheduled++;
    job->due = due;
    if (job_heap_push (self->timers, job)) {
        //  Without a timer slot run it now rather than never
        job->queue->scheduled--;
        s_job_enqueue (self, job);
    }
}

static void
s_deliver_to (broker_t *self, job_t *job, const uint8_t *session)
{
    char key [33];
    drv_hex (session, DRV_ID_SIZE, key);
    peer_t *peer = (peer_t *) zhashx_lookup (self->sessions, key);
    if (peer && peer->kind == DRV_PEER_CLIENT)
        s_out_add (self, peer, job);
}

static void
s_job_deliver (broker_t *self, job_t *job)
{
    s_deliver_to (self, job, job->owner);
    for (uint32_t i = 0; i < job->watcher_count; i++)
        s_deliver_to (self, job, job->watchers [i]);
    free (job->watchers);
    job->watchers = NULL;
    job->watcher_count = 0;
}

//  Ends a detached job in state, keeps it for its result TTL, tells clients.
static void
s_job_finish (broker_t *self, job_t *job, drv_job_state_t state)
{
    //  A done or cancelled job never runs again: only its outcome is worth
    //  memory. A failed one keeps its input, for a retry from the dead letters
    if (state != DRV_JOB_FAILED) {
        zmq_msg_close (&job->payload);
        zmq_msg_init (&job->payload);
    }
    free (job->progress_message);
    job->progress_message = NULL;
    s_unfinished (job, -1);
    job->state = state;
    job->finished_wall = drv_wall_ms ();
    uint64_t keep_s = job->result_ttl_s;
    if (state == DRV_JOB_DONE)
        job->queue->done++;
    else
    if (state == DRV_JOB_FAILED) {
        job->queue->failed++;
        job_list_append (&job->queue->dead, job);
        job->queue->dead_count++;
        if (self->cfg.dead_ttl_s > keep_s)
            keep_s = self->cfg.dead_ttl_s;
    }
    job->due = self->now + keep_s * 1000;
    if (job_heap_push (self->timers, job))
        drv_log (DRV_LOG_ERROR, "broker", "out of memory: result kept until restart");
    s_account (self, job);
    s_persist (self, persist_job_end, job);
    s_job_deliver (self, job);
}

//  A detached job's attempt failed: retry (after backoff, or at once) or fail.
static void
s_job_attempt_failed (broker_t *self, job_t *job, const char *error, bool no_retry, bool at_once)
{
    job_set_error (job, error);
    if (!no_retry && job->attempts < job->max_attempts) {
        job->queue->retried++;
        uint64_t delay = 0;
        if (!at_once && job->backoff_ms) {
            uint32_t shift = job->attempts > 1? job->attempts - 1: 0;
            delay = shift >= 22? BACKOFF_CAP_MS: (uint64_t) job->backoff_ms << shift;
            if (delay > BACKOFF_CAP_MS)
                delay = BACKOFF_CAP_MS;
        }
        if (delay)
            s_job_schedule (self, job, self->now + delay);
        else {
            job->wake_wall = 0;
            s_job_enqueue (self, job);
        }
        s_account (self, job);
        s_persist (self, persist_job_retry, job);
        if (drv_log_enabled (DRV_LOG_DEBUG)) {
            char hex [33];
            drv_hex (job->id, DRV_ID_SIZE, hex);
            drv_log_job (DRV_LOG_DEBUG, "broker", hex, "attempt %u failed, retry in %" PRIu64
                         " ms: %.200s", job->attempts, delay, error);
        }
        return;
    }
    if (!no_retry) {
        char text [512];
        snprintf (text, sizeof text, "failed after %u attempts: %s", job->attempts, error);
        job_set_error (job, text);
    }
    if (s_log_allowed (self)) {
        char hex [33];
        drv_hex (job->id, DRV_ID_SIZE, hex);
        drv_log_job (DRV_LOG_INFO, "broker", hex, "failed in queue %s, moved to the dead letters: "
                     "%.200s", job->queue->name, job->error? job->error: "");
    }
    s_job_finish (self, job, DRV_JOB_FAILED);
}

//  Sends a worker Cancel for one job (rare: timeouts and cancels).
static void
s_cancel_at_worker (broker_t *self, peer_t *worker, job_t *job)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_CANCEL, 0);
    msg.count = 1;
    msg.ids = (uint8_t (*) [DRV_ID_SIZE]) job->id;
    s_send (self, worker, &msg, NULL, 0);
}

//  Hands ready jobs of a queue to its workers with credit, one each in turn.
static void
s_dispatch (broker_t *self, queue_t *queue)
{
    if (queue->paused)
        return;
    size_t idle = 0;
    while (queue->ready && queue->worker_count && idle < queue->worker_count) {
        if (queue->next_worker >= queue->worker_count)
            queue->next_worker = 0;
        peer_t *worker = queue->workers [queue->next_worker++];
        if (worker->credit == 0 || worker->draining) {
            idle++;
            continue;
        }
        idle = 0;
        job_t *job = queue_pop (queue);
        worker->credit--;
        prom_histogram_observe (&queue->wait_s, (double) (self->now - job->due) / 1000.0);
        job->state = DRV_JOB_RUNNING;
        job->worker = worker;
        job->attempts++;
        job->progress = 0;
        job->due = self->now + job->timeout_ms;
        job_heap_push (self->timers, job);
        job_list_append (&worker->inflight, job);
        worker->inflight_count++;
        queue->running++;
        s_out_add (self, worker, job);
    }
}

static void
s_dispatch_dirty (broker_t *self)
{
    while (self->dirty) {
        queue_t *queue = self->dirty;
        self->dirty = queue->next_dirty;
        queue->dirty = false;
        queue->next_dirty = NULL;
        s_dispatch (self, queue);
    }
}

//  Peers ------------------------------------------------------------------------

static void
s_peer_drop (broker_t *self, peer_t *peer, const char *reason)
{
    if (peer->kind == DRV_PEER_WORKER) {
        drv_log (DRV_LOG_INFO, "broker", "worker %s left (%s); requeueing %zu jobs",
                 peer->name, reason, peer->inflight_count);
        char error [128];
        snprintf (error, sizeof error, "worker %s lost: %s", peer->name, reason);
        while (peer->inflight.head) {
            job_t *job = peer->inflight.head;
            s_job_detach (self, job);
            s_job_attempt_failed (self, job, error, false, true);
        }
        for (size_t i = 0; i < peer->queue_count; i++)
            queue_remove_worker (peer->queues [i], peer);
        zhashx_delete (self->worker_peers, peer->route_key);
    }
    else {
        drv_log (DRV_LOG_INFO, "broker", "client %s left (%s)", peer->name, reason);
        zhashx_delete (self->clients, peer->route_key);
    }
    if (zhashx_lookup (self->sessions, peer->session_key) == peer) {
        zhashx_delete (self->sessions, peer->session_key);
        //  The session is its locks' lease: whatever way it ends (Bye,
        //  missed heartbeats, a re-hello), its locks and permits go back
        //  and the next waiters get them. Done after the session left the
        //  map, so no grant can be addressed to it
        if (peer->kind == DRV_PEER_CLIENT && self->sync)
            sync_session_drop (self->sync, peer->session);
    }
    if (peer->outgoing) {
        peer_t **link = &self->outgoing;
        while (*link != peer)
            link = &(*link)->next_out;
        *link = peer->next_out;
    }
    s_out_release (peer);
    free (peer->out);
    free (peer->queues);
    free (peer->allowed);
    free (peer);
}

static peer_t *
s_peer_lookup (broker_t *self, drv_peer_kind_t kind, const char *route_key)
{
    return (peer_t *) zhashx_lookup (kind == DRV_PEER_WORKER? self->worker_peers: self->clients,
                                     route_key);
}

//  Command handlers ------------------------------------------------------------

static const char *
s_meta (broker_t *self, const char *property)
{
    if (self->cfg.insecure)
        return NULL;
    return zmq_msg_gets (&self->frames.msg [1], property);
}

static void
s_on_hello (broker_t *self, zsock_t *socket, drv_peer_kind_t kind,
            const char *route_key, peer_t *peer, drv_msg_t *msg)
{
    const char *endpoint = kind == DRV_PEER_WORKER? "worker": "client";
    if (msg->hello.kind != kind) {
        s_warn (self, "hello of the wrong kind on the %s endpoint", endpoint);
        s_error (self, socket, msg->corr, DRV_CODE_UNKNOWN_COMMAND,
                 "this is the %s endpoint; send Hello with kind %s", endpoint,
                 kind == DRV_PEER_WORKER? "PEER_WORKER": "PEER_CLIENT");
        return;
    }
    uint32_t vmin = msg->hello.version_min? msg->hello.version_min: msg->version;
    uint32_t vmax = msg->hello.version_max? msg->hello.version_max: msg->version;
    if (vmin > DRV_PROTOCOL_VERSION || vmax < DRV_PROTOCOL_VERSION) {
        s_error (self, socket, msg->corr, DRV_CODE_BAD_VERSION,
                 "broker speaks protocol version %d only", DRV_PROTOCOL_VERSION);
        return;
    }
    //  Rights come from the allow-list as it is now, not from the
    //  handshake: a key removed or changed since then is judged afresh
    const char *key = s_meta (self, "User-Id");
    const char *role = "admin";
    const char *allowed = NULL;
    if (!self->cfg.insecure) {
        const auth_key_t *entry = self->auth? auth_lookup (self->auth, key): NULL;
        if (!entry) {
            s_warn (self, "hello from key %s refused: not in the allow-list", key? key: "?");
            s_error (self, socket, msg->corr, DRV_CODE_DENIED,
                     "key not in the broker's allow-list (removed?)");
            return;
        }
        role = entry->role;
        allowed = entry->queues;
    }
    const char *needed = kind == DRV_PEER_WORKER? "worker": "producer";
    if (!streq (role, needed) && !streq (role, "admin")) {
        s_warn (self, "key %s with role %s may not connect as a %s",
                key? key: "?", role, endpoint);
        s_error (self, socket, msg->corr, DRV_CODE_DENIED,
                 "a %s key may not connect as a %s", role, endpoint);
        return;
    }
    if (kind == DRV_PEER_WORKER) {
        if (msg->hello.queue_count == 0) {
            s_error (self, socket, msg->corr, DRV_CODE_BAD_REQUEST, "worker serves no queue");
            return;
        }
        for (size_t i = 0; i < msg->hello.queue_count; i++) {
            const char *why = s_queue_name_refusal (self, msg->hello.queues [i]);
            if (why) {
                s_error (self, socket, msg->corr, DRV_CODE_UNKNOWN_QUEUE, "%s", why);
                return;
            }
            if (!auth_queue_allowed (allowed, msg->hello.queues [i])) {
                s_warn (self, "worker key %s may not serve queue %s (limited to %s)",
                        key? key: "?", msg->hello.queues [i], allowed);
                s_error (self, socket, msg->corr, DRV_CODE_DENIED,
                         "this key may not serve queue %s", msg->hello.queues [i]);
                return;
            }
        }
    }
    //  Connections are bounded; a re-hello of a known session does not count
    char session_hex [33];
    drv_hex (msg->hello.session, DRV_ID_SIZE, session_hex);
    zhashx_t *peers = kind == DRV_PEER_WORKER? self->worker_peers: self->clients;
    uint32_t most = kind == DRV_PEER_WORKER? self->cfg.max_workers: self->cfg.max_clients;
    if (most && !peer && !zhashx_lookup (self->sessions, session_hex)
    &&  zhashx_size (peers) >= most) {
        s_warn (self, "%s %s refused: broker has its maximum of %u %ss", endpoint,
                key? key: "?", most, endpoint);
        s_error (self, socket, msg->corr, DRV_CODE_LIMIT,
                 "broker has its maximum of %u %ss; retry later", most, endpoint);
        return;
    }
    //  A Hello replaces any earlier registration of this connection or session
    if (peer)
        s_peer_drop (self, peer, "hello again");
    char session_key [33];
    drv_hex (msg->hello.session, DRV_ID_SIZE, session_key);
    peer_t *old = (peer_t *) zhashx_lookup (self->sessions, session_key);
    if (old && !streq (old->key, key? key: "")) {
        //  A session belongs to its key: another key may not take it over
        //  (and with it the results and locks of that session)
        s_warn (self, "hello from key %s refused: session belongs to key %s",
                key? key: "-", *old->key? old->key: "-");
        s_error (self, socket, msg->corr, DRV_CODE_DENIED, "session id in use by another key");
        return;
    }
    if (old)
        s_peer_drop (self, old, "reconnected");

    zmq_msg_t *route = &self->frames.msg [0];
    peer = (peer_t *) calloc (1, sizeof (peer_t));
    if (!peer) {
        s_error (self, socket, msg->corr, DRV_CODE_LIMIT, "out of memory");
        return;
    }
    peer->kind = kind;
    peer->route_size = zmq_msg_size (route);
    memcpy (peer->route, zmq_msg_data (route), peer->route_size);
    snprintf (peer->route_key, sizeof peer->route_key, "%s", route_key);
    memcpy (peer->session, msg->hello.session, DRV_ID_SIZE);
    snprintf (peer->session_key, sizeof peer->session_key, "%s", session_key);
    snprintf (peer->name, sizeof peer->name, "%s", *msg->hello.name? msg->hello.name: session_key);
    snprintf (peer->role, sizeof peer->role, "%s", role);
    snprintf (peer->key, sizeof peer->key, "%s", key? key: "");
    peer->allowed = allowed? strdup (allowed): NULL;
    if (allowed && !peer->allowed) {
        free (peer);
        s_error (self, socket, msg->corr, DRV_CODE_LIMIT, "out of memory");
        return;
    }
    peer->joined_wall = drv_wall_ms ();
    peer->costly_tokens = COSTLY_BURST;
    peer->costly_at = self->now;
    peer->last_recv = self->now;
    if (kind == DRV_PEER_WORKER) {
        peer->credit = msg->hello.credit > CREDIT_CAP? CREDIT_CAP: msg->hello.credit;
        peer->queues = calloc (msg->hello.queue_count, sizeof (queue_t *));
        for (size_t i = 0; peer->queues && i < msg->hello.queue_count; i++) {
            queue_t *queue = s_queue_require (self, msg->hello.queues [i]);
            if (!queue || queue_add_worker (queue, peer))
                continue;
            peer->queues [peer->queue_count++] = queue;
            s_mark_dirty (self, queue);
        }
        zhashx_insert (self->worker_peers, route_key, peer);
        drv_log (DRV_LOG_INFO, "broker", "worker %s joined: %zu queues, credit %u, key %s",
                 peer->name, peer->queue_count, peer->credit, *peer->key? peer->key: "-");
    }
    else {
        zhashx_insert (self->clients, route_key, peer);
        drv_log (DRV_LOG_INFO, "broker", "client %s joined, role %s, key %s%s%s", peer->name, role,
                 *peer->key? peer->key: "-", allowed? ", queues ": "", allowed? allowed: "");
    }
    zhashx_insert (self->sessions, session_key, peer);

    drv_msg_t reply;
    drv_msg_init (&reply, DRV_CMD_WELCOME, msg->corr);
    memcpy (reply.welcome.broker_id, self->broker_id, DRV_ID_SIZE);
    reply.welcome.version = DRV_PROTOCOL_VERSION;
    reply.welcome.heartbeat_ms = self->cfg.heartbeat_ms;
    reply.welcome.max_payload = self->cfg.max_payload;
    reply.welcome.max_batch = self->cfg.max_batch;
    reply.welcome.role = role;
    reply.welcome.state_port = self->state_port;
    reply.welcome.max_value = self->cfg.max_value;
    s_send (self, peer, &reply, NULL, 0);
}

//  Checks one job spec; returns OK or the refusal code with text in why.
static drv_code_t
s_check_spec (broker_t *self, peer_t *client, const drv_jobspec_t *spec, size_t payload_size,
              const char **why)
{
    static const uint8_t zero [DRV_ID_SIZE] = {0};
    if (memcmp (spec->id, zero, DRV_ID_SIZE) == 0) {
        *why = "job id must not be all zero";
        return DRV_CODE_BAD_REQUEST;
    }
    if ((*why = s_queue_name_refusal (self, spec->queue)))
        return DRV_CODE_UNKNOWN_QUEUE;
    if (!s_queue_allowed (client, spec->queue)) {
        *why = "this key may not use that queue";
        return DRV_CODE_DENIED;
    }
    if (spec->priority < 0 || spec->priority >= QUEUE_LEVELS) {
        *why = "priority must be 0..9";
        return DRV_CODE_BAD_REQUEST;
    }
    if (payload_size > self->cfg.max_payload) {
        *why = "payload larger than the broker's max_payload";
        return DRV_CODE_TOO_LARGE;
    }
    return DRV_CODE_OK;
}

static void
s_on_submit (broker_t *self, peer_t *client, drv_msg_t *msg)
{
    if (msg->count == 0) {
        s_error (self, self->producers, msg->corr, DRV_CODE_BAD_REQUEST, "Submit lists no job");
        return;
    }
    //  Acks wait for the turn's commit: a job is promised only once stored
    if (GROW (self->replies, self->reply_count, self->reply_cap)) {
        s_error (self, self->producers, msg->corr, DRV_CODE_LIMIT, "out of memory");
        return;
    }
    if (drv_grow ((void **) &self->acks, &self->ack_cap, self->ack_count + msg->count,
                  sizeof *self->acks)) {
        s_error (self, self->producers, msg->corr, DRV_CODE_LIMIT, "out of memory");
        return;
    }
    struct pending_reply *reply = &self->replies [self->reply_count++];
    memcpy (reply->session, client->session, DRV_ID_SIZE);
    reply->corr = msg->corr;
    reply->first = self->ack_count;
    reply->count = msg->count;
    bool storage_down = self->journal && self->now < self->storage_retry_at;

    uint64_t wall = drv_wall_ms ();
    for (size_t i = 0; i < msg->count; i++) {
        const drv_jobspec_t *spec = &msg->specs [i];
        zmq_msg_t *payload = &self->frames.msg [2 + i];
        drv_joback_t *ack = &self->acks [self->ack_count++];
        memset (ack, 0, sizeof *ack);
        memcpy (ack->id, spec->id, DRV_ID_SIZE);
        ack->message = "";
        const char *why = "";
        drv_code_t code = s_check_spec (self, client, spec, zmq_msg_size (payload), &why);
        if (code != DRV_CODE_OK) {
            char hex [33];
            drv_hex (spec->id, DRV_ID_SIZE, hex);
            if (s_log_allowed (self))
                drv_log_job (DRV_LOG_WARN, "broker", hex, "from %s (key %s) to queue %s refused: %s",
                             client->name, *client->key? client->key: "-", spec->queue, why);
            ack->code = code;
            ack->message = why;
            continue;
        }
        job_t *job = job_store_find (self->jobs, spec->id);
        if (job && (!streq (job->queue->name, spec->queue)
                    || !s_queue_allowed (client, job->queue->name))) {
            //  Not a resend of the same job: an id of another queue's job
            //  must not hand this client that job's outcome
            ack->code = DRV_CODE_CONFLICT;
            ack->message = "job id already used by another job";
            continue;
        }
        if (job) {
            //  A resend: nothing new, but make sure this session hears the end
            ack->duplicate = true;
            if (job->state >= DRV_JOB_DONE)
                s_out_add (self, client, job);
            else
                job_watch (job, client->session);
            continue;
        }
        if (storage_down) {
            ack->code = DRV_CODE_UNAVAILABLE;
            ack->message = "broker cannot store jobs now (journal write failed); retry later";
            continue;
        }
        if (!client->submitter)
            client->submitter = s_submitter (self, client->key);
        submitter_t *submitter = client->submitter;
        if (submitter && self->cfg.max_inflight
        &&  submitter->unfinished >= self->cfg.max_inflight) {
            s_warn (self, "key %s has %u unfinished jobs (max_inflight): job refused",
                    *client->key? client->key: "-", submitter->unfinished);
            ack->code = DRV_CODE_LIMIT;
            ack->message = "too many unfinished jobs for this key (broker's max_inflight); "
                           "retry when some have ended";
            continue;
        }
        queue_t *queue = submitter? s_queue_require (self, spec->queue): NULL;
        if (!queue && submitter) {
            s_warn (self, "queue %s from %s refused: broker holds max_queues (%u) queues",
                    spec->queue, client->name, self->cfg.max_queues);
            ack->code = DRV_CODE_LIMIT;
            ack->message = "too many queues (broker's max_queues)";
            continue;
        }
        job = queue? job_store_add (self->jobs, spec->id): NULL;
        if (!job || GROW (self->fresh, self->fresh_count, self->fresh_cap)) {
            if (job)
                job_store_remove (self->jobs, job);
            ack->code = DRV_CODE_LIMIT;
            ack->message = "broker out of memory";
            continue;
        }
        job->submitter = submitter;
        s_unfinished (job, +1);
        self->fresh [self->fresh_count].job = job;
        self->fresh [self->fresh_count++].ack = self->ack_count - 1;
        job->queue = queue;
        memcpy (job->owner, client->session, DRV_ID_SIZE);
        zmq_msg_move (&job->payload, payload);
        job->payload_size = (uint32_t) zmq_msg_size (&job->payload);
        job->priority = spec->priority;
        job->max_attempts = spec->max_attempts? spec->max_attempts: self->cfg.default_attempts;
        job->timeout_ms = spec->timeout_ms? spec->timeout_ms: self->cfg.default_timeout_ms;
        job->backoff_ms = spec->backoff_ms? spec->backoff_ms: self->cfg.default_backoff_ms;
        job->result_ttl_s = spec->result_ttl_s? spec->result_ttl_s: self->cfg.default_result_ttl_s;
        job->created_wall = wall;
        queue->submitted++;
        uint64_t delay = spec->delay_ms;
        if (spec->run_at_ms > wall && spec->run_at_ms - wall > delay)
            delay = spec->run_at_ms - wall;
        if (delay)
            s_job_schedule (self, job, self->now + delay);
        else
            s_job_enqueue (self, job);
        s_account (self, job);
        s_persist (self, persist_job_new, job);
    }
}

//  Shared state -------------------------------------------------------------
//
//  A StateRequest is carried out at once (so later requests in the same
//  turn see it), journaled with the turn's other records, and answered and
//  published only after the turn's commit: nobody learns of a change the
//  disk does not hold. If the commit fails the turn's changes are undone
//  in reverse order (seq included, so no seq is ever seen twice with
//  different contents) and every StateReply of the turn says UNAVAILABLE.

//  Copies key bytes into the turn's key buffer; returns the offset, or
//  SIZE_MAX when out of memory.
static size_t
s_st_key (broker_t *self, const uint8_t *key, size_t key_size)
{
    while (self->st_key_size + key_size > self->st_key_cap) {
        size_t cap = self->st_key_cap? self->st_key_cap * 2: 4096;
        uint8_t *bigger = realloc (self->st_keys, cap);
        if (!bigger)
            return SIZE_MAX;
        self->st_keys = bigger;
        self->st_key_cap = cap;
    }
    size_t offset = self->st_key_size;
    if (key_size)
        memcpy (self->st_keys + offset, key, key_size);
    self->st_key_size += key_size;
    return offset;
}

//  Starts a pending StateReply; NULL when out of memory.
static struct state_reply *
s_st_reply (broker_t *self, peer_t *client, uint64_t corr)
{
    if (GROW (self->st_replies, self->st_reply_count, self->st_reply_cap))
        return NULL;
    struct state_reply *reply = &self->st_replies [self->st_reply_count++];
    memcpy (reply->session, client->session, DRV_ID_SIZE);
    reply->corr = corr;
    reply->code = DRV_CODE_OK;
    reply->message = "";
    reply->seq = 0;
    reply->first = self->st_item_count;
    reply->count = 0;
    return reply;
}

//  Adds an entry to the last pending reply, its value shared (or empty
//  when value is NULL). 0 or -1 when out of memory.
static int
s_st_item (broker_t *self, struct state_reply *reply, const uint8_t *key, size_t key_size,
           uint64_t version, zmq_msg_t *value)
{
    if (self->st_item_count == self->st_item_cap) {
        size_t cap = self->st_item_cap? self->st_item_cap * 2: 64;
        struct state_item *items = realloc (self->st_items, cap * sizeof *items);
        if (!items)
            return -1;
        self->st_items = items;
        zmq_msg_t *values = realloc (self->st_values, cap * sizeof *values);
        if (!values)
            return -1;
        self->st_values = values;
        self->st_item_cap = cap;
    }
    size_t offset = s_st_key (self, key, key_size);
    if (offset == SIZE_MAX)
        return -1;
    struct state_item *item = &self->st_items [self->st_item_count];
    item->key = offset;
    item->key_size = key_size;
    item->version = version;
    zmq_msg_init (&self->st_values [self->st_item_count]);
    if (value)
        zmq_msg_copy (&self->st_values [self->st_item_count], value);
    self->st_item_count++;
    reply->count++;
    return 0;
}

//  Changes key in ns to value (moved in), or deletes it when value is
//  NULL; entry is the key's current entry or NULL. Takes the next seq,
//  journals the change and records it for publishing (and undo). Returns
//  the key's entry after the change (NULL after a delete), or NULL with
//  *failed set when out of memory (nothing changed then).
static state_entry_t *
s_state_write (broker_t *self, state_ns_t *ns, const uint8_t *key, size_t key_size,
               state_entry_t *entry, zmq_msg_t *value, bool *failed)
{
    *failed = true;
    size_t offset = s_st_key (self, key, key_size);
    if (offset == SIZE_MAX || GROW (self->changes, self->change_count, self->change_cap))
        return NULL;
    struct state_change *change = &self->changes [self->change_count];
    change->ns = ns;
    change->key = offset;
    change->key_size = key_size;
    change->had_old = entry != NULL;
    change->old_version = entry? entry->version: 0;
    zmq_msg_init (&change->old_value);
    if (entry)
        zmq_msg_copy (&change->old_value, &entry->value);
    zmq_msg_init (&change->value);
    state_entry_t *now = NULL;
    if (value) {
        now = state_put (self->state, ns, key, key_size, change->old_version + 1, value);
        if (!now) {
            zmq_msg_close (&change->old_value);
            return NULL;
        }
        zmq_msg_copy (&change->value, &now->value);
        change->version = now->version;
        change->deleted = false;
    }
    else {
        state_remove (self->state, ns, key, key_size);
        change->version = 0;
        change->deleted = true;
    }
    change->seq = ++ns->seq;
    self->change_count++;
    *failed = false;
    if (self->journal) {
        int rc = now? persist_state_set (self->journal, ns->name, now, change->seq)
               : persist_state_del (self->journal, ns->name, key, key_size, change->seq);
        if (rc)
            drv_log (DRV_LOG_ERROR, "broker", "out of memory recording a state change");
    }
    return now;
}

//  Parses a decimal int64 value for INCR: optional '-', digits, nothing else.
static bool
s_parse_int (zmq_msg_t *value, int64_t *number)
{
    size_t size = zmq_msg_size (value);
    const char *data = (const char *) zmq_msg_data (value);
    if (size == 0 || size > 20)
        return false;
    char text [24];
    memcpy (text, data, size);
    text [size] = 0;
    for (size_t i = text [0] == '-'? 1: 0; i < size; i++)
        if (text [i] < '0' || text [i] > '9')
            return false;
    if (text [0] == '-' && size == 1)
        return false;
    errno = 0;
    char *end = NULL;
    long long parsed = strtoll (text, &end, 10);
    if (errno || *end)
        return false;
    *number = parsed;
    return true;
}

//  Refuses a StateRequest as bad input: the reply says why, the log too
//  (rate-limited). Not for NOT_FOUND or CONFLICT, which are normal answers.
static void
s_state_refuse (broker_t *self, peer_t *client, struct state_reply *reply, drv_code_t code,
                const char *message)
{
    reply->code = code;
    reply->message = message;
    if (code != DRV_CODE_UNAVAILABLE && code != DRV_CODE_LIMIT)
        s_warn (self, "state request from %s refused: %s", client->name, message);
}

static void
s_on_state (broker_t *self, peer_t *client, drv_msg_t *msg)
{
    drv_state_op_t op = msg->state.op;
    const uint8_t *key = msg->state.key;
    size_t key_size = msg->state.key_size;
    zmq_msg_t *payload = &self->frames.msg [2];
    bool write = op == DRV_STATE_SET || op == DRV_STATE_DEL || op == DRV_STATE_CAS
              || op == DRV_STATE_INCR;
    struct state_reply *reply = s_st_reply (self, client, msg->corr);
    if (!reply) {
        s_error (self, self->producers, msg->corr, DRV_CODE_LIMIT, "out of memory");
        return;
    }
    if (op < DRV_STATE_GET || op > DRV_STATE_SNAPSHOT) {
        s_state_refuse (self, client, reply, DRV_CODE_BAD_REQUEST, "unknown state operation");
        return;
    }
    if ((op == DRV_STATE_LIST || op == DRV_STATE_SNAPSHOT) && !s_costly_take (self, client)) {
        s_state_refuse (self, client, reply, DRV_CODE_LIMIT, COSTLY_REFUSAL);
        return;
    }
    if (!drv_queue_name_valid (msg->state.ns)) {
        s_state_refuse (self, client, reply, DRV_CODE_BAD_REQUEST,
                        "invalid namespace name (1-128 of A-Z a-z 0-9 . _ - :)");
        return;
    }
    if (op != DRV_STATE_SNAPSHOT && key_size > self->cfg.max_key) {
        s_state_refuse (self, client, reply, DRV_CODE_TOO_LARGE,
                        "key longer than the broker's max_key");
        return;
    }
    if (op != DRV_STATE_SNAPSHOT && op != DRV_STATE_LIST && key_size == 0) {
        s_state_refuse (self, client, reply, DRV_CODE_BAD_REQUEST, "empty key");
        return;
    }
    if ((op == DRV_STATE_SET || op == DRV_STATE_CAS)
    &&  zmq_msg_size (payload) > self->cfg.max_value) {
        s_state_refuse (self, client, reply, DRV_CODE_TOO_LARGE,
                        "value larger than the broker's max_value");
        return;
    }
    if (write && self->journal && self->now < self->storage_retry_at) {
        s_state_refuse (self, client, reply, DRV_CODE_UNAVAILABLE,
                        "broker cannot store changes now (journal write failed); retry later");
        return;
    }
    state_ns_t *ns = write? state_ns_require (self->state, msg->state.ns)
                   : state_ns_find (self->state, msg->state.ns);
    if (write && !ns) {
        s_state_refuse (self, client, reply, DRV_CODE_LIMIT, "broker out of memory");
        return;
    }
    reply->seq = ns? ns->seq: 0;
    state_entry_t *entry = ns && key_size? state_get (ns, key, key_size): NULL;
    int rc = 0;
    bool failed = false;
    switch (op) {
        case DRV_STATE_GET:
            if (entry)
                rc = s_st_item (self, reply, key, key_size, entry->version, &entry->value);
            else {
                reply->code = DRV_CODE_NOT_FOUND;
                reply->message = ns? "no such key": "no such namespace";
                rc = s_st_item (self, reply, key, key_size, 0, NULL);
            }
            break;
        case DRV_STATE_LIST:
        case DRV_STATE_SNAPSHOT: {
            if (!ns)
                break;      //  an empty namespace: nothing yet, seq 0
            bool list = op == DRV_STATE_LIST;
            size_t limit = list? self->cfg.max_batch: SIZE_MAX;
            if (list && msg->state.limit && msg->state.limit < limit)
                limit = msg->state.limit;
            size_t at = list? state_lower_bound (ns, key, key_size): 0;
            for (; !rc && at < ns->count && reply->count < limit; at++) {
                state_entry_t *e = ns->entries [at];
                if (list && !state_has_prefix (e, key, key_size))
                    break;
                rc = s_st_item (self, reply, e->key, e->key_size, e->version, &e->value);
            }
            break;
        }
        case DRV_STATE_DEL:
            if (!entry) {
                reply->code = DRV_CODE_NOT_FOUND;
                reply->message = "no such key";
                rc = s_st_item (self, reply, key, key_size, 0, NULL);
                break;
            }
            s_state_write (self, ns, key, key_size, entry, NULL, &failed);
            if (!failed)
                rc = s_st_item (self, reply, key, key_size, 0, NULL);
            break;
        case DRV_STATE_CAS:
            if (msg->state.expect_version != (entry? entry->version: 0)) {
                reply->code = DRV_CODE_CONFLICT;
                reply->message = entry? "version differs": "no such key";
                rc = s_st_item (self, reply, key, key_size, entry? entry->version: 0,
                                entry? &entry->value: NULL);
                break;
            }
            //  fall through - the expected version: a plain set
        case DRV_STATE_SET:
            entry = s_state_write (self, ns, key, key_size, entry, payload, &failed);
            //  The writer has the value already: the reply carries the
            //  new version and an empty frame, not the value back
            if (!failed)
                rc = s_st_item (self, reply, key, key_size, entry->version, NULL);
            break;
        case DRV_STATE_INCR: {
            int64_t number = 0;
            if (entry && !s_parse_int (&entry->value, &number)) {
                s_state_refuse (self, client, reply, DRV_CODE_BAD_REQUEST,
                                "value is not a decimal integer");
                break;
            }
            int64_t delta = msg->state.delta;
            if ((delta > 0 && number > INT64_MAX - delta)
            ||  (delta < 0 && number < INT64_MIN - delta)) {
                s_state_refuse (self, client, reply, DRV_CODE_BAD_REQUEST,
                                "increment overflows a 64-bit integer");
                break;
            }
            char text [24];
            int len = snprintf (text, sizeof text, "%" PRId64, number + delta);
            zmq_msg_t value;
            if (zmq_msg_init_size (&value, (size_t) len)) {
                failed = true;
                break;
            }
            memcpy (zmq_msg_data (&value), text, (size_t) len);
            entry = s_state_write (self, ns, key, key_size, entry, &value, &failed);
            zmq_msg_close (&value);
            //  The new number is news to the caller: send it
            if (!failed)
                rc = s_st_item (self, reply, key, key_size, entry->version, &entry->value);
            break;
        }
        default:
            break;
    }
    if (failed || (rc && !write)) {
        //  Out of memory and nothing changed: the caller may retry
        reply->code = DRV_CODE_LIMIT;
        reply->message = "broker out of memory";
    }
    else
    if (rc)
        //  The change stands (and is published), so the reply must not
        //  invite a retry (an INCR would count twice); it just lacks detail
        reply->message = "done, but the broker ran out of memory building the reply";
    if (ns)
        reply->seq = ns->seq;
}

//  Drops what the turn gathered for state replies and publishing.
static void
s_state_clear (broker_t *self)
{
    for (size_t i = 0; i < self->change_count; i++) {
        zmq_msg_close (&self->changes [i].value);
        zmq_msg_close (&self->changes [i].old_value);
    }
    for (size_t i = 0; i < self->st_item_count; i++)
        zmq_msg_close (&self->st_values [i]);
    self->change_count = 0;
    self->st_item_count = 0;
    self->st_reply_count = 0;
    self->st_key_size = 0;
}

//  After the turn's commit: publishes the changes and answers the state
//  requests, or, if the commit failed, undoes the changes and answers
//  UNAVAILABLE.
static void
s_state_commit (broker_t *self, bool failed)
{
    if (failed && self->change_count) {
        for (size_t i = self->change_count; i-- > 0;) {
            struct state_change *change = &self->changes [i];
            const uint8_t *key = self->st_keys + change->key;
            if (change->had_old) {
                zmq_msg_t value;
                zmq_msg_init (&value);
                zmq_msg_copy (&value, &change->old_value);
                if (!state_put (self->state, change->ns, key, change->key_size,
                                change->old_version, &value)) {
                    zmq_msg_close (&value);
                    drv_log (DRV_LOG_ERROR, "broker", "out of memory undoing a state change");
                }
            }
            else
                state_remove (self->state, change->ns, key, change->key_size);
            change->ns->seq = change->seq - 1;
        }
        //  Reads of this turn may have seen the undone changes: refuse them too
        for (size_t i = 0; i < self->st_reply_count; i++) {
            struct state_reply *reply = &self->st_replies [i];
            reply->code = DRV_CODE_UNAVAILABLE;
            reply->message = "broker could not store the change (journal write failed); "
                             "retry later";
            reply->count = 0;
            reply->seq = 0;
        }
    }
    else
    for (size_t i = 0; i < self->change_count; i++) {
        struct state_change *change = &self->changes [i];
        drv_msg_t update;
        drv_msg_init (&update, DRV_CMD_STATE_UPDATE, 0);
        update.update.ns = change->ns->name;
        update.update.seq = change->seq;
        update.update.key = self->st_keys + change->key;
        update.update.key_size = change->key_size;
        update.update.version = change->version;
        update.update.deleted = change->deleted;
        zmq_msg_t topic, envelope;
        //  Topic: the name and a zero byte, so "a" does not match "ab"
        size_t name_size = strlen (change->ns->name);
        if (drv_codec_encode (self->enc, &update, &envelope)) {
            drv_log (DRV_LOG_ERROR, "broker", "cannot encode StateUpdate");
            continue;
        }
        zmq_msg_init_size (&topic, name_size + 1);
        memcpy (zmq_msg_data (&topic), change->ns->name, name_size + 1);
        //  Without a PUB socket (being reopened) replicas catch up on the gap
        if (!self->pub
        ||  drv_send (zsock_resolve (self->pub), &topic, &envelope, &change->value, 1, true)) {
            if (self->pub)
                s_warn (self, "cannot publish a state update: %s", zmq_strerror (errno));
            zmq_msg_close (&envelope);
        }
        zmq_msg_close (&topic);
    }
    for (size_t i = 0; i < self->st_reply_count; i++) {
        struct state_reply *pending = &self->st_replies [i];
        char key [33];
        drv_hex (pending->session, DRV_ID_SIZE, key);
        peer_t *client = (peer_t *) zhashx_lookup (self->sessions, key);
        if (!client)
            continue;       //  gone; its values are closed below
        drv_msg_t reply;
        drv_msg_init (&reply, DRV_CMD_STATE_REPLY, pending->corr);
        reply.state_reply.code = pending->code;
        reply.state_reply.message = pending->message;
        reply.state_reply.seq = pending->seq;
        reply.count = pending->count;
        if (pending->count) {
            reply.entries = drv_codec_alloc (self->enc, pending->count * sizeof *reply.entries);
            if (!reply.entries)
                continue;
            for (size_t j = 0; j < pending->count; j++) {
                struct state_item *item = &self->st_items [pending->first + j];
                reply.entries [j].key = self->st_keys + item->key;
                reply.entries [j].key_size = item->key_size;
                reply.entries [j].version = item->version;
            }
        }
        //  Moves the values out; s_state_clear closes what is left
        s_send (self, client, &reply, pending->count? &self->st_values [pending->first]: NULL,
                pending->count);
    }
    s_state_clear (self);
}

//  Makes the turn's records durable, then answers the turn's submits. If
//  the journal cannot take them, the turn's new jobs are taken back and
//  refused, and new submits are refused for a second before trying again.
static void
s_commit (broker_t *self)
{
    bool failed = false;
    if (self->journal && journal_pending (self->journal)) {
        char why [160];
        if (journal_commit (self->journal, why, sizeof why) == 0) {
            if (self->storage_retry_at) {
                drv_log (DRV_LOG_INFO, "broker", "journal writable again");
                self->storage_retry_at = 0;
            }
        }
        else {
            if (!self->storage_retry_at || strcmp (why, self->storage_error))
                drv_log (DRV_LOG_ERROR, "broker", "journal commit failed: %s; "
                         "refusing new jobs until it works again", why);
            snprintf (self->storage_error, sizeof self->storage_error, "%s", why);
            self->storage_retry_at = self->now + 1000;
            failed = true;
            for (size_t i = 0; i < self->fresh_count; i++) {
                job_t *job = self->fresh [i].job;
                drv_joback_t *ack = &self->acks [self->fresh [i].ack];
                ack->code = DRV_CODE_UNAVAILABLE;
                ack->message = "broker could not store the job (journal write failed)";
                //  A job that also ended this turn may be queued for delivery
                if (job->pinned)
                    continue;
                job->queue->submitted--;
                if (job->state < DRV_JOB_DONE) {
                    s_unfinished (job, -1);
                    s_job_detach (self, job);
                }
                else
                    job_heap_remove (self->timers, job);
                self->live_bytes -= job->journal_bytes;
                job_store_remove (self->jobs, job);
            }
        }
    }
    self->fresh_count = 0;
    for (size_t i = 0; i < self->reply_count; i++) {
        struct pending_reply *pending = &self->replies [i];
        char key [33];
        drv_hex (pending->session, DRV_ID_SIZE, key);
        peer_t *client = (peer_t *) zhashx_lookup (self->sessions, key);
        if (!client)
            continue;       //  gone; it will resend and get duplicate acks
        drv_msg_t reply;
        drv_msg_init (&reply, DRV_CMD_SUBMIT_ACK, pending->corr);
        reply.acks = &self->acks [pending->first];
        reply.count = pending->count;
        s_send (self, client, &reply, NULL, 0);
    }
    self->reply_count = 0;
    self->ack_count = 0;
    s_state_commit (self, failed);
    if (self->journal && !self->storage_retry_at
    &&  journal_should_compact (self->journal, self->live_bytes + state_bytes (self->state),
                                self->cfg.compact_factor)) {
        char why [160];
        uint64_t before = journal_size (self->journal);
        uint64_t start = drv_now_ms ();
        size_t count = 0;
        queue_t **queues = calloc (zhashx_size (self->queues) + 1, sizeof (queue_t *));
        for (queue_t *q = zhashx_first (self->queues); queues && q; q = zhashx_next (self->queues))
            queues [count++] = q;
        int rc = -1;
        if (queues)
            rc = persist_compact (self->journal, self->jobs, self->state, queues, count,
                                  why, sizeof why);
        else
            snprintf (why, sizeof why, "out of memory");
        free (queues);
        if (rc)
            drv_log (DRV_LOG_ERROR, "broker", "journal compaction failed: %s", why);
        else
            drv_log (DRV_LOG_INFO, "broker", "journal compacted from %" PRIu64 " to %" PRIu64
                     " bytes in %" PRIu64 " ms", before, journal_size (self->journal),
                     drv_now_ms () - start);
    }
}

static void
s_on_report (broker_t *self, peer_t *worker, drv_msg_t *msg)
{
    for (size_t i = 0; i < msg->count; i++) {
        const drv_result_t *result = &msg->results [i];
        if (worker->credit < CREDIT_CAP)
            worker->credit++;
        job_t *job = job_store_find (self->jobs, result->id);
        char hex [33];
        drv_hex (result->id, DRV_ID_SIZE, hex);
        if (!job || job->state >= DRV_JOB_DONE) {
            drv_log_job (DRV_LOG_DEBUG, "broker", hex, "late result from %s ignored", worker->name);
            continue;
        }
        //  Only a worker of the job's queue may settle it
        bool serves = false;
        for (size_t q = 0; !serves && q < worker->queue_count; q++)
            serves = worker->queues [q] == job->queue;
        if (!serves) {
            if (s_log_allowed (self))
                drv_log_job (DRV_LOG_WARN, "broker", hex, "result from worker %s (key %s) ignored: "
                             "it does not serve queue %s", worker->name,
                             *worker->key? worker->key: "-", job->queue->name);
            continue;
        }
        //  The first result of any attempt wins; another worker still
        //  running it will have its result ignored
        if (job->state == DRV_JOB_RUNNING && job->worker == worker)
            prom_histogram_observe (&job->queue->run_s,
                                    (double) (self->now + job->timeout_ms - job->due) / 1000.0);
        s_job_detach (self, job);
        if (result->state == DRV_JOB_DONE) {
            zmq_msg_move (&job->result, &self->frames.msg [2 + i]);
            job_set_error (job, NULL);
            drv_log_job (DRV_LOG_DEBUG, "broker", hex, "done by %s (attempt %u)",
                         worker->name, job->attempts);
            s_job_finish (self, job, DRV_JOB_DONE);
        }
        else {
            const char *error = *result->error? result->error: "handler failed";
            s_job_attempt_failed (self, job, error, result->no_retry, false);
        }
    }
    for (size_t i = 0; i < worker->queue_count; i++)
        s_mark_dirty (self, worker->queues [i]);
    if (worker->draining && worker->inflight_count == 0)
        s_peer_drop (self, worker, "drained");
}

static void
s_info (job_t *job, const uint8_t *id, drv_jobinfo_t *info)
{
    memset (info, 0, sizeof *info);
    memcpy (info->id, id, DRV_ID_SIZE);
    info->queue = "";
    info->error = "";
    if (!job)
        return;
    info->state = job->state;
    info->queue = job->queue->name;
    info->attempts = job->attempts;
    info->error = job->error? job->error: "";
    info->created_ms = job->created_wall;
    info->finished_ms = job->state >= DRV_JOB_DONE? job->finished_wall: 0;
    info->priority = job->priority;
    info->payload_size = job->payload_size;
    info->progress = job->progress;
    info->progress_message = job->progress_message? job->progress_message: "";
}

//  Query and Cancel both answer with one JobInfo per id.
static void
s_on_query (broker_t *self, peer_t *client, drv_msg_t *msg, bool cancel)
{
    drv_msg_t reply;
    drv_msg_init (&reply, DRV_CMD_QUERY_REPLY, msg->corr);
    reply.count = msg->count;
    reply.infos = drv_codec_alloc (self->enc, (msg->count? msg->count: 1) * sizeof (drv_jobinfo_t));
    zmq_msg_t *payloads = s_sendbuf (self, msg->count? msg->count: 1);
    if (!reply.infos || !payloads) {
        s_error (self, self->producers, msg->corr, DRV_CODE_LIMIT, "out of memory");
        return;
    }
    //  A key limited to some queues may not see or touch jobs of others
    for (size_t i = 0; client->allowed && i < msg->count; i++) {
        job_t *job = job_store_find (self->jobs, msg->ids [i]);
        if (job && !s_queue_allowed (client, job->queue->name)) {
            s_warn (self, "%s by %s (key %s) refused: job in queue %s, key limited to %s",
                    cancel? "cancel": "query", client->name, client->key, job->queue->name,
                    client->allowed);
            s_error (self, self->producers, msg->corr, DRV_CODE_DENIED,
                     "this key may not use queue %s", job->queue->name);
            return;
        }
    }
    bool see_submitter = streq (client->role, "admin");
    for (size_t i = 0; i < msg->count; i++) {
        job_t *job = job_store_find (self->jobs, msg->ids [i]);
        if (cancel && job && job->state < DRV_JOB_DONE) {
            peer_t *worker = job->state == DRV_JOB_RUNNING? job->worker: NULL;
            s_job_detach (self, job);
            if (worker)
                s_cancel_at_worker (self, worker, job);
            job_set_error (job, "cancelled");
            s_job_finish (self, job, DRV_JOB_CANCELLED);
        }
        s_info (job, msg->ids [i], &reply.infos [i]);
        //  Who submitted a job is told to admins, and to that key itself
        if (job && job->submitter
        &&  (see_submitter || (*client->key && streq (client->key, job->submitter->key))))
            reply.infos [i].submitter = job->submitter->key;
        zmq_msg_init (&payloads [i]);
        if (job && !cancel && msg->query.want_result && job->state == DRV_JOB_DONE)
            zmq_msg_copy (&payloads [i], &job->result);
        if (job && !cancel && msg->query.watch && job->state < DRV_JOB_DONE)
            job_watch (job, client->session);
    }
    s_send (self, client, &reply, payloads, msg->count);
}

static void
s_stats_fill (queue_t *q, drv_queue_stats_t *s)
{
    s->name = q->name;
    s->queued = q->ready;
    s->scheduled = q->scheduled;
    s->running = q->running;
    s->submitted = q->submitted;
    s->done = q->done;
    s->failed = q->failed;
    s->retried = q->retried;
    s->workers = (uint32_t) q->worker_count;
    s->paused = q->paused;
    s->dead = q->dead_count;
    s->submit_rate = q->submit_rate;
    s->done_rate = q->done_rate;
}

static void
s_stats_totals (broker_t *self, drv_msg_t *reply)
{
    reply->stats.workers = (uint32_t) zhashx_size (self->worker_peers);
    reply->stats.clients = (uint32_t) zhashx_size (self->clients);
    reply->stats.uptime_ms = self->now - self->started;
    reply->stats.jobs_stored = job_store_size (self->jobs);
}

//  Adds the peers of one map that the asking client may see to reply.
static void
s_stats_peers (broker_t *self, peer_t *client, zhashx_t *peers, drv_msg_t *reply)
{
    //  One reply lists at most max_batch peers, like every other list
    for (peer_t *peer = (peer_t *) zhashx_first (peers);
         peer && reply->stats.peer_count < self->cfg.max_batch;
         peer = (peer_t *) zhashx_next (peers)) {
        //  A queue-limited key sees only workers that serve one of its queues
        bool visible = !client->allowed;
        for (size_t i = 0; !visible && i < peer->queue_count; i++)
            visible = s_queue_allowed (client, peer->queues [i]->name);
        if (!visible)
            continue;
        drv_peer_info_t *info = &reply->stats.peers [reply->stats.peer_count++];
        info->kind = peer->kind;
        info->name = peer->name;
        info->key = peer->key;
        info->role = peer->role;
        info->credit = peer->credit;
        info->inflight = (uint32_t) peer->inflight_count;
        info->connected_ms = peer->joined_wall;
        info->idle_ms = self->now - peer->last_recv;
        info->queue_count = peer->queue_count;
        info->queues = peer->queue_count?
            drv_codec_alloc (self->enc, peer->queue_count * sizeof (char *)): NULL;
        for (size_t i = 0; info->queues && i < peer->queue_count; i++)
            info->queues [i] = peer->queues [i]->name;
        if (!info->queues)
            info->queue_count = 0;
    }
}

static void
s_on_stats (broker_t *self, peer_t *client, drv_msg_t *msg)
{
    if (!s_costly_take (self, client)) {
        s_error (self, self->producers, msg->corr, DRV_CODE_LIMIT, COSTLY_REFUSAL);
        return;
    }
    drv_msg_t reply;
    drv_msg_init (&reply, DRV_CMD_STATS_REPLY, msg->corr);
    size_t n = zhashx_size (self->queues);
    bool admin = streq (client->role, "admin");
    size_t np = zhashx_size (self->worker_peers) + (admin? zhashx_size (self->clients): 0);
    if (np > self->cfg.max_batch)
        np = self->cfg.max_batch;
    reply.queues = drv_codec_alloc (self->enc, (n? n: 1) * sizeof (drv_queue_stats_t));
    reply.stats.peers = drv_codec_alloc (self->enc, (np? np: 1) * sizeof (drv_peer_info_t));
    if (!reply.queues || !reply.stats.peers) {
        s_error (self, self->producers, msg->corr, DRV_CODE_LIMIT, "out of memory");
        return;
    }
    memset (reply.stats.peers, 0, (np? np: 1) * sizeof (drv_peer_info_t));
    for (queue_t *q = zhashx_first (self->queues); q; q = zhashx_next (self->queues))
        if (s_queue_allowed (client, q->name))
            s_stats_fill (q, &reply.queues [reply.count++]);
    s_stats_totals (self, &reply);
    //  Everyone sees the workers (of their queues); only admins see clients
    s_stats_peers (self, client, self->worker_peers, &reply);
    if (admin)
        s_stats_peers (self, client, self->clients, &reply);
    s_send (self, client, &reply, NULL, 0);
}

//  Queue control and dead letters are the admin's (PROTOCOL.md section 7).
static bool
s_admin_only (broker_t *self, peer_t *client, drv_msg_t *msg, const char *what)
{
    if (streq (client->role, "admin"))
        return true;
    s_warn (self, "%s by %s (key %s, role %s) refused: admin only", what, client->name,
            *client->key? client->key: "-", client->role);
    s_error (self, self->producers, msg->corr, DRV_CODE_DENIED, "%s needs an admin key", what);
    return false;
}

static void
s_on_queue_control (broker_t *self, peer_t *client, drv_msg_t *msg)
{
    if (!s_admin_only (self, client, msg, "pausing or resuming a queue"))
        return;
    drv_queue_action_t action = msg->queue_control.action;
    if (action != DRV_QUEUE_PAUSE && action != DRV_QUEUE_RESUME) {
        s_error (self, self->producers, msg->corr, DRV_CODE_BAD_REQUEST, "unknown queue action");
        return;
    }
    const char *why = s_queue_name_refusal (self, msg->queue_control.queue);
    if (why) {
        s_error (self, self->producers, msg->corr, DRV_CODE_UNKNOWN_QUEUE, "%s", why);
        return;
    }
    if (!s_queue_allowed (client, msg->queue_control.queue)) {
        s_warn (self, "queue control of %s by %s (key %s) refused: key limited to %s",
                msg->queue_control.queue, client->name, client->key, client->allowed);
        s_error (self, self->producers, msg->corr, DRV_CODE_DENIED,
                 "this key may not use queue %s", msg->queue_control.queue);
        return;
    }
    queue_t *queue = s_queue_require (self, msg->queue_control.queue);
    if (!queue) {
        s_error (self, self->producers, msg->corr, DRV_CODE_LIMIT,
                 "too many queues (broker's max_queues) or out of memory");
        return;
    }
    bool paused = action == DRV_QUEUE_PAUSE;
    if (queue->paused != paused) {
        queue->paused = paused;
        drv_log (DRV_LOG_INFO, "broker", "queue %s %s by %s", queue->name,
                 paused? "paused": "resumed", client->name);
        if (self->journal && persist_queue (self->journal, queue))
            drv_log (DRV_LOG_ERROR, "broker", "out of memory recording a queue change");
        if (!paused)
            s_mark_dirty (self, queue);
    }
    drv_msg_t reply;
    drv_msg_init (&reply, DRV_CMD_STATS_REPLY, msg->corr);
    drv_queue_stats_t stats;
    s_stats_fill (queue, &stats);
    reply.queues = &stats;
    reply.count = 1;
    s_stats_totals (self, &reply);
    s_send (self, client, &reply, NULL, 0);
}

//  Applies a dead-letter action to one dead job; fills info with the
//  job as it stands afterwards.
static void
s_dead_apply (broker_t *self, job_t *job, drv_dead_action_t action, drv_jobinfo_t *info)
{
    if (action == DRV_DEAD_RETRY) {
        s_job_detach (self, job);
        job->attempts = 0;
        job->wake_wall = 0;
        s_unfinished (job, +1);
        s_job_enqueue (self, job);
        s_account (self, job);
        s_persist (self, persist_job_retry, job);
    }
    s_info (job, job->id, info);
    if (action == DRV_DEAD_PURGE) {
        //  The reply outlives the job: keep its error text in the arena
        size_t len = strlen (info->error);
        char *error = drv_codec_alloc (self->enc, len + 1);
        if (error)
            memcpy (error, info->error, len + 1);
        info->error = error? error: "";
        info->progress_message = "";
        s_forget (self, job);
        info->state = DRV_JOB_UNKNOWN;
    }
}

static void
s_on_dead (broker_t *self, peer_t *client, drv_msg_t *msg)
{
    if (!s_admin_only (self, client, msg, "dead-letter handling"))
        return;
    drv_dead_action_t action = msg->dead.action;
    if (action != DRV_DEAD_LIST && action != DRV_DEAD_RETRY && action != DRV_DEAD_PURGE) {
        s_error (self, self->producers, msg->corr, DRV_CODE_BAD_REQUEST, "unknown dead-letter action");
        return;
    }
    const char *why = s_queue_name_refusal (self, msg->dead.queue);
    if (why) {
        s_error (self, self->producers, msg->corr, DRV_CODE_UNKNOWN_QUEUE, "%s", why);
        return;
    }
    if (!s_queue_allowed (client, msg->dead.queue)) {
        s_warn (self, "dead-letter handling of %s by %s (key %s) refused: key limited to %s",
                msg->dead.queue, client->name, client->key, client->allowed);
        s_error (self, self->producers, msg->corr, DRV_CODE_DENIED,
                 "this key may not use queue %s", msg->dead.queue);
        return;
    }
    if (action == DRV_DEAD_LIST && !s_costly_take (self, client)) {
        s_error (self, self->producers, msg->corr, DRV_CODE_LIMIT, COSTLY_REFUSAL);
        return;
    }
    queue_t *queue = (queue_t *) zhashx_lookup (self->queues, msg->dead.queue);
    //  One reply holds at most max_batch jobs; "all" acts on that many per request
    size_t limit = self->cfg.max_batch;
    if (action == DRV_DEAD_LIST && msg->dead.limit && msg->dead.limit < limit)
        limit = msg->dead.limit;
    if (action == DRV_DEAD_LIST && !msg->dead.limit && limit > 100)
        limit = 100;
    size_t n = msg->count? msg->count: limit;
    drv_msg_t reply;
    drv_msg_init (&reply, DRV_CMD_QUERY_REPLY, msg->corr);
    reply.infos = drv_codec_alloc (self->enc, (n? n: 1) * sizeof (drv_jobinfo_t));
    zmq_msg_t *payloads = s_sendbuf (self, n? n: 1);
    if (!reply.infos || !payloads) {
        s_error (self, self->producers, msg->corr, DRV_CODE_LIMIT, "out of memory");
        return;
    }
    if (msg->count) {
        for (size_t i = 0; i < msg->count; i++) {
            job_t *job = job_store_find (self->jobs, msg->ids [i]);
            drv_jobinfo_t *info = &reply.infos [reply.count++];
            if (job && job->queue == queue && job->state == DRV_JOB_FAILED)
                s_dead_apply (self, job, action, info);
            else
                //  Nothing about jobs of other queues: the key may not see them
                s_info (job && job->queue == queue? job: NULL, msg->ids [i], info);
        }
    }
    else
    if (queue) {
        job_t *job = queue->dead.head;
        while (job && reply.count < limit) {
            job_t *next = job->next;
            s_dead_apply (self, job, action, &reply.infos [reply.count++]);
            job = next;
        }
    }
    if (action != DRV_DEAD_LIST && reply.count)
        drv_log (DRV_LOG_INFO, "broker", "%s %s %zu dead jobs of queue %s", client->name,
                 action == DRV_DEAD_RETRY? "retried": "purged", reply.count, msg->dead.queue);
    for (size_t i = 0; i < reply.count; i++)
        zmq_msg_init (&payloads [i]);
    s_send (self, client, &reply, payloads, reply.count);
}

static void
s_on_progress (broker_t *self, peer_t *worker, drv_msg_t *msg)
{
    for (size_t i = 0; i < msg->count; i++) {
        const drv_progress_t *report = &msg->progress [i];
        job_t *job = job_store_find (self->jobs, report->id);
        //  Only the worker running the job may speak for it
        if (!job || job->state != DRV_JOB_RUNNING || job->worker != worker)
            continue;
        job->progress = report->percent > 100? 100: report->percent;
        free (job->progress_message);
        job->progress_message = *report->message? strndup (report->message, 256): NULL;
    }
}

static void
s_on_bye (broker_t *self, peer_t *peer, drv_msg_t *msg)
{
    drv_msg_t reply;
    drv_msg_init (&reply, DRV_CMD_BYE, msg->corr);
    s_send (self, peer, &reply, NULL, 0);
    if (peer->kind == DRV_PEER_CLIENT || peer->inflight_count == 0)
        s_peer_drop (self, peer, "said bye");
    else {
        peer->draining = true;
        peer->credit = 0;
        drv_log (DRV_LOG_INFO, "broker", "worker %s draining %zu jobs",
                 peer->name, peer->inflight_count);
    }
}

//  Sync primitives ----------------------------------------------------------

//  sync.c's way out: a SyncReply to the session's current connection.
static bool
s_sync_deliver (void *arg, const uint8_t *session, uint64_t corr, drv_code_t code,
                const char *message, uint64_t fence, uint32_t value)
{
    broker_t *self = (broker_t *) arg;
    char session_key [33];
    drv_hex (session, DRV_ID_SIZE, session_key);
    peer_t *peer = (peer_t *) zhashx_lookup (self->sessions, session_key);
    if (!peer || peer->kind != DRV_PEER_CLIENT)
        return false;
    drv_msg_t reply;
    drv_msg_init (&reply, DRV_CMD_SYNC_REPLY, corr);
    reply.sync_reply.code = code;
    reply.sync_reply.message = message;
    reply.sync_reply.fence = fence;
    reply.sync_reply.value = value;
    s_send (self, peer, &reply, NULL, 0);
    return true;
}

//  Not journaled and not held for the commit: sync state lives in memory
//  only, so the answer can go at once.
static void
s_on_sync (broker_t *self, peer_t *client, drv_msg_t *msg)
{
    sync_request_t request = {
        .op = msg->sync.op,
        .name = msg->sync.name,
        .timeout_ms = msg->sync.timeout_ms,
        .count = msg->sync.count
    };
    //  The client endpoint admits producer and admin keys only; say so
    //  here too, so a new role cannot slip through by accident
    if (!streq (client->role, "producer") && !streq (client->role, "admin")) {
        s_error (self, self->producers, msg->corr, DRV_CODE_DENIED,
                 "sync primitives need a producer or admin key");
        return;
    }
    sync_request (self->sync, client->session, msg->corr, &request, self->now);
}

//  Which commands each endpoint accepts (besides Hello, Heartbeat, Bye).
static bool
s_command_allowed (drv_peer_kind_t kind, drv_cmd_t cmd)
{
    if (kind == DRV_PEER_CLIENT)
        return cmd == DRV_CMD_SUBMIT || cmd == DRV_CMD_QUERY || cmd == DRV_CMD_CANCEL
            || cmd == DRV_CMD_STATS || cmd == DRV_CMD_QUEUE_CONTROL || cmd == DRV_CMD_DEAD_LETTER
            || cmd == DRV_CMD_STATE_REQUEST || cmd == DRV_CMD_SYNC_REQUEST;
    return cmd == DRV_CMD_REPORT || cmd == DRV_CMD_CREDIT || cmd == DRV_CMD_PROGRESS;
}

//  Validates and routes one received message.
static void
s_handle (broker_t *self, zsock_t *socket, drv_peer_kind_t kind, int total)
{
    drv_frames_t *frames = &self->frames;
    zmq_msg_t *route = &frames->msg [0];
    if (frames->count < 2) {
        s_warn (self, "message without an envelope frame dropped");
        return;
    }
    char route_key [513];
    drv_hex ((uint8_t *) zmq_msg_data (route), zmq_msg_size (route), route_key);
    peer_t *peer = s_peer_lookup (self, kind, route_key);
    if (peer)
        peer->last_recv = self->now;

    drv_msg_t msg;
    if (drv_codec_decode (self->dec, zmq_msg_data (&frames->msg [1]),
                          zmq_msg_size (&frames->msg [1]), &msg)) {
        s_warn (self, "malformed envelope from %s: %s", peer? peer->name: route_key,
                drv_codec_error (self->dec));
        s_error (self, socket, msg.corr, DRV_CODE_BAD_REQUEST, "malformed envelope: %s",
                 drv_codec_error (self->dec));
        return;
    }
    if (msg.version != DRV_PROTOCOL_VERSION && !(msg.cmd == DRV_CMD_HELLO && msg.version == 0)) {
        s_warn (self, "protocol version %u from %s", msg.version, peer? peer->name: route_key);
        s_error (self, socket, msg.corr, DRV_CODE_BAD_VERSION,
                 "broker speaks protocol version %d only", DRV_PROTOCOL_VERSION);
        return;
    }
    //  Payload frames must match the list exactly, or nothing lines up
    size_t expected = 2 + (drv_cmd_has_payloads (msg.cmd)? msg.count: 0);
    if ((size_t) total != expected) {
        s_warn (self, "%s from %s: %d frames, expected %zu", drv_cmd_name (msg.cmd),
                peer? peer->name: route_key, total, expected);
        bool too_many = msg.count > self->cfg.max_batch;
        s_error (self, socket, msg.corr, too_many? DRV_CODE_TOO_LARGE: DRV_CODE_BAD_REQUEST,
                 too_many? "more than max_batch (%u) entries": "expected %u frames",
                 too_many? self->cfg.max_batch: (unsigned) expected);
        return;
    }
    if (msg.count > self->cfg.max_batch) {
        s_error (self, socket, msg.corr, DRV_CODE_TOO_LARGE,
                 "more than max_batch (%u) entries", self->cfg.max_batch);
        return;
    }
    if (msg.cmd == DRV_CMD_HELLO) {
        s_on_hello (self, socket, kind, route_key, peer, &msg);
        return;
    }
    if (!peer) {
        s_error (self, socket, msg.corr, DRV_CODE_REHELLO, "unknown peer: send Hello");
        return;
    }
    if (msg.cmd == DRV_CMD_HEARTBEAT)
        return;
    if (msg.cmd == DRV_CMD_BYE) {
        s_on_bye (self, peer, &msg);
        return;
    }
    if (!s_command_allowed (kind, msg.cmd)) {
        s_warn (self, "%s not valid from %s", drv_cmd_name (msg.cmd), peer->name);
        s_error (self, socket, msg.corr, DRV_CODE_UNKNOWN_COMMAND, "%s is not valid on the %s endpoint",
                 drv_cmd_name (msg.cmd), kind == DRV_PEER_WORKER? "worker": "client");
        return;
    }
    switch (msg.cmd) {
        case DRV_CMD_SUBMIT:
            s_on_submit (self, peer, &msg);
            break;
        case DRV_CMD_QUERY:
            s_on_query (self, peer, &msg, false);
            break;
        case DRV_CMD_CANCEL:
            s_on_query (self, peer, &msg, true);
            break;
        case DRV_CMD_STATS:
            s_on_stats (self, peer, &msg);
            break;
        case DRV_CMD_REPORT:
            s_on_report (self, peer, &msg);
            break;
        case DRV_CMD_PROGRESS:
            s_on_progress (self, peer, &msg);
            break;
        case DRV_CMD_QUEUE_CONTROL:
            s_on_queue_control (self, peer, &msg);
            break;
        case DRV_CMD_DEAD_LETTER:
            s_on_dead (self, peer, &msg);
            break;
        case DRV_CMD_STATE_REQUEST:
            s_on_state (self, peer, &msg);
            break;
        case DRV_CMD_SYNC_REQUEST:
            s_on_sync (self, peer, &msg);
            break;
        case DRV_CMD_CREDIT:
            peer->credit = (uint64_t) peer->credit + msg.credit > CREDIT_CAP? CREDIT_CAP
                         : peer->credit + msg.credit;
            for (size_t i = 0; i < peer->queue_count; i++)
                s_mark_dirty (self, peer->queues [i]);
            break;
        default:
            break;
    }
}

static void
s_drain (broker_t *self, zsock_t *socket, drv_peer_kind_t kind)
{
    void *handle = zsock_resolve (socket);
    for (int n = 0; n < DRAIN_MAX; n++) {
        int total = drv_frames_recv (handle, &self->frames, ZMQ_DONTWAIT, self->cfg.max_batch + 2);
        if (total < 0)
            break;
        s_handle (self, socket, kind, total);
        drv_frames_clear (&self->frames);
    }
}

//  Timers and liveness ----------------------------------------------------------

static void
s_fire_timers (broker_t *self)
{
    job_t *job;
    while ((job = job_heap_peek (self->timers)) && job->due <= self->now) {
        job_heap_remove (self->timers, job);
        if (job->state == DRV_JOB_SCHEDULED) {
            job->queue->scheduled--;
            s_job_enqueue (self, job);
        }
        else
        if (job->state == DRV_JOB_RUNNING) {
            peer_t *worker = job->worker;
            char error [64];
            snprintf (error, sizeof error, "timed out after %u ms", job->timeout_ms);
            s_job_detach (self, job);
            if (worker)
                s_cancel_at_worker (self, worker, job);
            s_job_attempt_failed (self, job, error, false, false);
        }
        else
        if (job->pinned) {
            //  Still referenced by a message this turn; look again shortly
            job->due = self->now + 1000;
            job_heap_push (self->timers, job);
        }
        else
            s_forget (self, job);
    }
}

static void
s_liveness_map (broker_t *self, zhashx_t *peers)
{
    uint64_t hb = self->cfg.heartbeat_ms;
    zlist_t *dead = zlist_new ();
    for (peer_t *peer = zhashx_first (peers); peer; peer = zhashx_next (peers)) {
        if (self->now - peer->last_recv > 3 * hb)
            zlist_append (dead, peer);
        else
        if (self->now - peer->last_send >= hb) {
            drv_msg_t beat;
            drv_msg_init (&beat, DRV_CMD_HEARTBEAT, 0);
            s_send (self, peer, &beat, NULL, 0);
        }
    }
    for (peer_t *peer = zlist_first (dead); peer; peer = zlist_next (dead))
        s_peer_drop (self, peer, "heartbeat expired");
    zlist_destroy (&dead);
}

//  Moving averages of submit and finish rates, sampled about once a second
//  and smoothed over about a minute.
static void
s_rates (broker_t *self)
{
    if (self->now < self->next_rates)
        return;
    double dt = (double) (self->now - self->last_rates) / 1000.0;
    self->last_rates = self->now;
    self->next_rates = self->now + 1000;
    if (dt <= 0)
        return;
    double alpha = dt / 60.0 > 1? 1: dt / 60.0;
    for (queue_t *q = zhashx_first (self->queues); q; q = zhashx_next (self->queues)) {
        uint64_t finished = q->done + q->failed;
        double submitted = (double) (q->submitted - q->rate_submitted) / dt;
        double done = (double) (finished - q->rate_done) / dt;
        q->submit_rate += alpha * (submitted - q->submit_rate);
        q->done_rate += alpha * (done - q->done_rate);
        q->rate_submitted = q->submitted;
        q->rate_done = finished;
    }
}

//  Once per heartbeat interval every namespace that has changed publishes
//  its current sequence number (a StateUpdate with no key). A replica that
//  lost the last updates of a namespace that then went quiet learns it
//  from this, instead of only at the next change.
static void
s_state_beacons (broker_t *self)
{
    if (self->now < self->next_beacon)
        return;
    self->next_beacon = self->now + self->cfg.heartbeat_ms;
    for (state_ns_t *ns = state_ns_first (self->state); ns; ns = state_ns_next (self->state)) {
        if (ns->seq == 0)
            continue;
        drv_msg_t beacon;
        drv_msg_init (&beacon, DRV_CMD_STATE_UPDATE, 0);
        beacon.update.ns = ns->name;
        beacon.update.seq = ns->seq;
        zmq_msg_t topic, envelope, empty;
        if (drv_codec_encode (self->enc, &beacon, &envelope))
            continue;
        size_t name_size = strlen (ns->name);
        zmq_msg_init_size (&topic, name_size + 1);
        memcpy (zmq_msg_data (&topic), ns->name, name_size + 1);
        zmq_msg_init (&empty);
        if (!self->pub || drv_send (zsock_resolve (self->pub), &topic, &envelope, &empty, 1, false)) {
            zmq_msg_close (&envelope);
            zmq_msg_close (&empty);
        }
        zmq_msg_close (&topic);
    }
}

static int s_pub_rebuild (broker_t *self);

//  After the allow-list changed: every session whose key is gone, or whose
//  role or queue limits changed, ends now. A removed key is told DENIED and
//  any further message from that connection is refused at its Hello; a
//  changed key is asked to re-hello and gets its new rights.
static void
s_revalidate_peers (broker_t *self, zhashx_t *peers)
{
    zlist_t *doomed = zlist_new ();
    for (peer_t *peer = (peer_t *) zhashx_first (peers); peer;
         peer = (peer_t *) zhashx_next (peers)) {
        const auth_key_t *entry = auth_lookup (self->auth, peer->key);
        bool changed = entry
            && (!streq (entry->role, peer->role)
                || (entry->queues == NULL) != (peer->allowed == NULL)
                || (entry->queues && !streq (entry->queues, peer->allowed)));
        if (!entry || changed)
            zlist_append (doomed, peer);
    }
    for (peer_t *peer = (peer_t *) zlist_first (doomed); peer;
         peer = (peer_t *) zlist_next (doomed)) {
        bool removed = auth_lookup (self->auth, peer->key) == NULL;
        drv_log (DRV_LOG_WARN, "auth", "closing session of %s %s (key %s): %s",
                 peer->kind == DRV_PEER_WORKER? "worker": "client", peer->name, peer->key,
                 removed? "key removed from the allow-list": "key's role or queues changed");
        drv_msg_t note;
        drv_msg_init (&note, DRV_CMD_ERROR, 0);
        note.error.code = removed? DRV_CODE_DENIED: DRV_CODE_REHELLO;
        note.error.message = removed? "key removed from the broker's allow-list"
                                    : "key's rights changed: send Hello";
        s_send (self, peer, &note, NULL, 0);
        s_peer_drop (self, peer, removed? "key revoked": "key changed");
    }
    zlist_destroy (&doomed);
}

//  Rereads the allow-list (forced, or if its files changed) and applies it
//  to the sessions already open.
static void
s_auth_refresh (broker_t *self, bool force)
{
    if (!self->auth)
        return;
    if (force)
        auth_reload (self->auth);
    else
        auth_check (self->auth);
    //  Whoever noticed the change (this check, a handshake, a RELOAD), the
    //  sessions are judged against the list now in force
    if (auth_generation (self->auth) != self->auth_seen) {
        self->auth_seen = auth_generation (self->auth);
        s_revalidate_peers (self, self->worker_peers);
        s_revalidate_peers (self, self->clients);
    }
    //  The PUB socket cannot drop one subscriber: when a key went away, it
    //  is rebuilt on the same endpoint and every subscriber reconnects
    //  through the handshake, which a removed key no longer passes
    if (auth_removals (self->auth) != self->auth_removals_seen && s_pub_rebuild (self) == 0)
        self->auth_removals_seen = auth_removals (self->auth);
}

static void
s_liveness (broker_t *self)
{
    s_rates (self);
    if (self->now >= self->next_auth_check) {
        self->next_auth_check = self->now + 1000;
        s_auth_refresh (self, false);
        if (self->http)
            http_expire (self->http, self->now);
    }
    if (self->now < self->next_liveness)
        return;
    self->next_liveness = self->now + self->cfg.heartbeat_ms / 4 + 1;
    s_liveness_map (self, self->worker_peers);
    s_liveness_map (self, self->clients);
}

//  Start-up and the loop ----------------------------------------------------------

//  Observability ----------------------------------------------------------------

//  Counts the PUB socket's open connections (its subscribers) from a
//  socket monitor: each accepted connection adds one, each disconnect
//  (including a handshake the allow-list refused) takes one away.
static void
s_pub_monitor_start (broker_t *self)
{
    char endpoint [80];
    snprintf (endpoint, sizeof endpoint, "inproc://drover-pub-monitor-%p-%u",
              (void *) self, self->pub_monitors++);
    self->subscribers = 0;
    if (zmq_socket_monitor (zsock_resolve (self->pub), endpoint,
                            ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) == 0) {
        zsock_t *pair = zsock_new (ZMQ_PAIR);
        if (pair && zsock_connect (pair, "%s", endpoint) == 0)
            self->pub_monitor = pair;
        else
            zsock_destroy (&pair);
    }
    if (!self->pub_monitor)
        drv_log (DRV_LOG_WARN, "broker", "cannot monitor the state PUB socket: "
                 "subscriber counts will read 0");
}

static void
s_pub_monitor_stop (broker_t *self)
{
    if (self->pub && self->pub_monitor)
        zmq_socket_monitor (zsock_resolve (self->pub), NULL, 0);
    zsock_t *monitor = (zsock_t *) self->pub_monitor;
    zsock_destroy (&monitor);
    self->pub_monitor = NULL;
}

static void
s_pub_events (broker_t *self)
{
    zsock_t *monitor = (zsock_t *) self->pub_monitor;
    while (monitor && (zsock_events (monitor) & ZMQ_POLLIN)) {
        zmsg_t *event = zmsg_recv (monitor);
        if (!event)
            break;
        zframe_t *head = zmsg_first (event);
        if (head && zframe_size (head) >= 2) {
            uint16_t code;
            memcpy (&code, zframe_data (head), sizeof code);
            if (code == ZMQ_EVENT_ACCEPTED)
                self->subscribers++;
            else
            if (code == ZMQ_EVENT_DISCONNECTED && self->subscribers > 0)
                self->subscribers--;
        }
        zmsg_destroy (&event);
    }
}

static int s_bind (broker_t *self, zsock_t *socket, const char *endpoint, char **bound);

//  Replaces the PUB socket with a new one on the same endpoint. Returns 0,
//  or -1 when it could not be bound again (retried on the next check;
//  meanwhile no updates go out and replicas resynchronise afterwards).
static int
s_pub_rebuild (broker_t *self)
{
    if (!self->state_ep)
        return -1;
    if (self->pub) {
        s_pub_monitor_stop (self);
        zsock_set_linger (self->pub, 0);
        zsock_destroy (&self->pub);
    }
    //  The old listener is closed by a libzmq I/O thread: give it a moment
    for (int attempt = 0; attempt < 25 && !self->pub; attempt++) {
        char *bound = NULL;
        self->pub = zsock_new (ZMQ_PUB);
        if (self->pub && s_bind (self, self->pub, self->state_ep, &bound) == 0) {
            zstr_free (&self->state_ep);
            self->state_ep = bound;
            break;
        }
        zsock_destroy (&self->pub);
        zclock_sleep (20);
    }
    if (!self->pub) {
        drv_log (DRV_LOG_ERROR, "broker", "cannot bind the state PUB socket again on %s; "
                 "retrying", self->state_ep);
        return -1;
    }
    s_pub_monitor_start (self);
    drv_log (DRV_LOG_INFO, "auth", "state PUB socket reopened on %s: subscribers "
             "reconnect through the current allow-list", self->state_ep);
    return 0;
}

//  Names, help texts and values of the per-queue series.
typedef enum {
    QM_DEPTH, QM_SCHEDULED, QM_RUNNING, QM_DEAD, QM_PAUSED, QM_WORKERS,
    QM_SUBMITTED, QM_COMPLETED, QM_FAILED, QM_RETRIED, QM_COUNT
} queue_metric_t;

static const struct {
    const char *name;
    prom_type_t type;
    const char *help;
} s_queue_metrics [QM_COUNT] = {
    {"drover_queue_depth", PROM_GAUGE, "Jobs ready to run, waiting for a worker."},
    {"drover_queue_scheduled", PROM_GAUGE, "Jobs waiting for their run time or retry backoff."},
    {"drover_queue_running", PROM_GAUGE, "Jobs at workers now."},
    {"drover_queue_dead", PROM_GAUGE, "Failed jobs held in the dead letters."},
    {"drover_queue_paused", PROM_GAUGE, "1 while an admin has paused the queue."},
    {"drover_queue_workers", PROM_GAUGE, "Connected workers serving the queue."},
    {"drover_jobs_submitted_total", PROM_COUNTER, "Jobs accepted since the broker started."},
    {"drover_jobs_completed_total", PROM_COUNTER, "Jobs done since the broker started."},
    {"drover_jobs_failed_total", PROM_COUNTER,
     "Jobs failed for good (moved to the dead letters) since the broker started."},
    {"drover_jobs_retried_total", PROM_COUNTER, "Failed attempts retried since the broker started."}
};

static double
s_queue_value (const queue_t *queue, queue_metric_t metric)
{
    switch (metric) {
        case QM_DEPTH:      return (double) queue->ready;
        case QM_SCHEDULED:  return (double) queue->scheduled;
        case QM_RUNNING:    return (double) queue->running;
        case QM_DEAD:       return (double) queue->dead_count;
        case QM_PAUSED:     return queue->paused? 1: 0;
        case QM_WORKERS:    return (double) queue->worker_count;
        case QM_SUBMITTED:  return (double) queue->submitted;
        case QM_COMPLETED:  return (double) queue->done;
        case QM_FAILED:     return (double) queue->failed;
        case QM_RETRIED:    return (double) queue->retried;
        default:            return 0;
    }
}

static void
s_gauge (prom_t *prom, const char *name, prom_type_t type, const char *help, double value)
{
    prom_family (prom, name, type, help);
    prom_sample (prom, name, value, NULL);
}

//  Writes the whole /metrics page into self->prom.
static void
s_metrics_render (broker_t *self)
{
    prom_t *prom = self->prom;
    prom_reset (prom);
    s_gauge (prom, "drover_uptime_seconds", PROM_GAUGE, "Seconds since the broker started.",
             (double) (self->now - self->started) / 1000.0);
    s_gauge (prom, "drover_workers_connected", PROM_GAUGE, "Workers registered now.",
             (double) zhashx_size (self->worker_peers));
    s_gauge (prom, "drover_clients_connected", PROM_GAUGE, "Clients registered now.",
             (double) zhashx_size (self->clients));
    s_gauge (prom, "drover_jobs_stored", PROM_GAUGE,
             "Jobs the broker holds in any state, results and dead letters included.",
             (double) job_store_size (self->jobs));
    for (int metric = 0; metric < QM_COUNT; metric++) {
        prom_family (prom, s_queue_metrics [metric].name, s_queue_metrics [metric].type,
                     s_queue_metrics [metric].help);
        for (queue_t *q = zhashx_first (self->queues); q; q = zhashx_next (self->queues))
            prom_sample (prom, s_queue_metrics [metric].name,
                         s_queue_value (q, (queue_metric_t) metric), "queue", q->name, NULL);
    }
    prom_family (prom, "drover_job_wait_seconds", PROM_HISTOGRAM,
                 "Time from ready (submitted, due or retried) to dispatched, per attempt.");
    for (queue_t *q = zhashx_first (self->queues); q; q = zhashx_next (self->queues))
        prom_histogram (prom, "drover_job_wait_seconds", &q->wait_s, "queue", q->name, NULL);
    prom_family (prom, "drover_job_run_seconds", PROM_HISTOGRAM,
                 "Time from dispatched to the worker's result, per attempt.");
    for (queue_t *q = zhashx_first (self->queues); q; q = zhashx_next (self->queues))
        prom_histogram (prom, "drover_job_run_seconds", &q->run_s, "queue", q->name, NULL);

    if (self->journal) {
        journal_stats_t js;
        journal_stats (self->journal, &js);
        s_gauge (prom, "drover_journal_bytes", PROM_GAUGE, "Bytes of journal on disk.",
                 (double) js.bytes);
        s_gauge (prom, "drover_journal_segments", PROM_GAUGE, "Journal segment files.",
                 (double) js.segments);
        s_gauge (prom, "drover_journal_records_total", PROM_COUNTER,
                 "Records made durable since the broker started.", (double) js.records);
        s_gauge (prom, "drover_journal_commits_total", PROM_COUNTER,
                 "Group commits (one sync each) since the broker started.", (double) js.commits);
        s_gauge (prom, "drover_journal_commit_failures_total", PROM_COUNTER,
                 "Commits that failed (disk full, I/O error) since the broker started.",
                 (double) js.commit_failures);
        s_gauge (prom, "drover_journal_compactions_total", PROM_COUNTER,
                 "Journal compactions since the broker started.", (double) js.compactions);
        prom_family (prom, "drover_journal_fsync_seconds", PROM_HISTOGRAM,
                     "Latency of each journal sync (fdatasync).");
        prom_histogram (prom, "drover_journal_fsync_seconds", &js.fsync_seconds, NULL);
    }
    size_t namespaces = 0, keys = 0;
    for (state_ns_t *ns = state_ns_first (self->state); ns; ns = state_ns_next (self->state)) {
        namespaces++;
        keys += ns->count;
    }
    s_gauge (prom, "drover_state_namespaces", PROM_GAUGE, "Shared-state namespaces.",
             (double) namespaces);
    s_gauge (prom, "drover_state_keys", PROM_GAUGE, "Keys over all shared-state namespaces.",
             (double) keys);
    s_gauge (prom, "drover_state_bytes", PROM_GAUGE, "Bytes of shared-state keys and values.",
             (double) state_bytes (self->state));
    s_gauge (prom, "drover_state_subscribers", PROM_GAUGE,
             "Connections open on the state update (PUB) socket.", (double) self->subscribers);
    s_gauge (prom, "drover_sync_primitives", PROM_GAUGE,
             "Locks, semaphores, events and barriers in use.", (double) sync_size (self->sync));
    if (self->auth)
        s_gauge (prom, "drover_auth_refused_total", PROM_COUNTER,
                 "Connections refused by the allow-list (unknown key or no CURVE).",
                 (double) auth_refused (self->auth));
}

//  Serves /healthz (the loop runs), /readyz (journal replayed, sockets
//  bound, journal writable) and /metrics.
static void
s_http_serve (const char *method, const char *path, http_response_t *response, void *arg)
{
    broker_t *self = (broker_t *) arg;
    (void) method;
    if (streq (path, "/healthz")) {
        response->status = 200;
        response->body = "ok\n";
        response->size = 3;
    }
    else
    if (streq (path, "/readyz")) {
        //  The loop only runs once the journal is replayed and every
        //  socket is bound; it is not ready while the journal refuses writes
        bool storage_down = self->journal && self->now < self->storage_retry_at;
        response->status = storage_down? 503: 200;
        response->body = storage_down? "journal failing\n": "ready\n";
        response->size = strlen (response->body);
    }
    else
    if (streq (path, "/metrics")) {
        s_metrics_render (self);
        if (prom_failed (self->prom)) {
            response->status = 500;
            response->body = "out of memory\n";
            response->size = strlen (response->body);
        }
        else {
            response->status = 200;
            response->content_type = PROM_CONTENT_TYPE;
            response->body = prom_data (self->prom);
            response->size = prom_size (self->prom);
        }
    }
}

static int
s_bind (broker_t *self, zsock_t *socket, const char *endpoint, char **bound)
{
    if (zsock_type (socket) == ZMQ_ROUTER) {
        //  Unroutable sends fail rather than vanish; a peer that stops
        //  reading gets at most this many messages queued (lists travel
        //  batched, so honest peers never get near it) and then loses
        //  replies instead of holding the broker's memory or its loop
        zsock_set_router_mandatory (socket, 1);
        zsock_set_sndhwm (socket, SNDHWM_PEER);
    }
    else
        //  A slow subscriber loses updates past this and resynchronises
        //  on the gap; set high so that is rare
        zsock_set_sndhwm (socket, 1000000);
    zsock_set_rcvhwm (socket, 100000);
    uint32_t largest = self->cfg.max_payload > self->cfg.max_value? self->cfg.max_payload
                     : self->cfg.max_value;
    zsock_set_maxmsgsize (socket, (int64_t) largest + FRAME_SLACK);
    zsock_set_linger (socket, 1000);
    if (!self->cfg.insecure) {
        zsock_set_zap_domain (socket, "drover");
        zsock_set_curve_server (socket, 1);
        zcert_apply (self->cert, socket);
    }
    if (zsock_bind (socket, "%s", endpoint) < 0) {
        snprintf (self->start_error, sizeof self->start_error, "cannot bind %s: %s",
                  endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    *bound = zsock_last_endpoint (socket);
    return 0;
}

//  The state endpoint when none is given, derived from the client one so
//  that brokers sharing a host (tests, `drover up`) never collide: the same
//  host with port +2 (5555 -> 5557), an OS-chosen port if the client port
//  is one ("*"), or the client path with ".state" for ipc and inproc.
static char *
s_state_default (const char *producers)
{
    const char *colon = strrchr (producers, ':');
    bool tcp = strncmp (producers, "tcp://", 6) == 0 && colon && colon > producers + 5;
    if (!tcp)
        return zsys_sprintf ("%s.state", producers);
    char *end = NULL;
    long port = strtol (colon + 1, &end, 10);
    if (colon [1] && *end == 0 && port > 0 && port < 65534)
        return zsys_sprintf ("%.*s:%ld", (int) (colon - producers), producers, port + 2);
    return zsys_sprintf ("%.*s:*", (int) (colon - producers), producers);
}

static void
s_config_copy (broker_t *self, const broker_config_t *config)
{
    self->cfg = *config;
    const char **fields [] = {&self->cfg.producers, &self->cfg.workers, &self->cfg.cert,
                              &self->cfg.allow, &self->cfg.data_dir, &self->cfg.state};
    for (int i = 0; i < 6; i++)
        if (*fields [i])
            *fields [i] = self->cfg_strings [i] = strdup (*fields [i]);
    if (self->cfg.heartbeat_ms == 0)
        self->cfg.heartbeat_ms = 1000;
    if (self->cfg.max_batch == 0)
        self->cfg.max_batch = 1000;
    if (self->cfg.max_payload == 0)
        self->cfg.max_payload = 8 * 1024 * 1024;
    if (self->cfg.default_attempts == 0)
        self->cfg.default_attempts = 3;
    if (self->cfg.default_timeout_ms == 0)
        self->cfg.default_timeout_ms = 300 * 1000;
    if (self->cfg.default_result_ttl_s == 0)
        self->cfg.default_result_ttl_s = 3600;
    if (self->cfg.dead_ttl_s == 0)
        self->cfg.dead_ttl_s = 7 * 86400;
    if (self->cfg.max_value == 0)
        self->cfg.max_value = 1024 * 1024;
    if (!self->cfg.state && self->cfg.producers)
        self->cfg.state = self->cfg_strings [5] = s_state_default (self->cfg.producers);
    if (self->cfg.compact_factor < 2)
        self->cfg.compact_factor = 4;
    if (self->cfg.max_key == 0 || self->cfg.max_key > STATE_KEY_MAX)
        self->cfg.max_key = STATE_KEY_MAX;
    if (self->cfg.max_queue_name == 0 || self->cfg.max_queue_name > QUEUE_NAME_MAX)
        self->cfg.max_queue_name = QUEUE_NAME_MAX;
}

static queue_t *
s_replay_queue (const char *name, void *arg)
{
    return s_queue_require ((broker_t *) arg, name);
}

//  Puts every replayed job where its state says: queues, timers, results.
static void
s_place_replayed (broker_t *self)
{
    uint64_t wall = drv_wall_ms ();
    size_t cursor = 0, queued = 0, scheduled = 0, ended = 0;
    job_t *job;
    zlist_t *expired = zlist_new ();
    while ((job = job_store_next (self->jobs, &cursor))) {
        s_account (self, job);
        if (job->state >= DRV_JOB_DONE) {
            uint64_t keep_s = job->result_ttl_s;
            if (job->state == DRV_JOB_FAILED) {
                job_list_append (&job->queue->dead, job);
                job->queue->dead_count++;
                if (self->cfg.dead_ttl_s > keep_s)
                    keep_s = self->cfg.dead_ttl_s;
            }
            uint64_t expiry = job->finished_wall + keep_s * 1000;
            if (expiry <= wall) {
                zlist_append (expired, job);
                continue;
            }
            job->due = self->now + (expiry - wall);
            job_heap_push (self->timers, job);
            ended++;
        }
        else
        if (job->wake_wall > wall) {
            s_unfinished (job, +1);
            s_job_schedule (self, job, self->now + (job->wake_wall - wall));
            scheduled++;
        }
        else {
            s_unfinished (job, +1);
            s_job_enqueue (self, job);
            queued++;
        }
    }
    for (job = zlist_first (expired); job; job = zlist_next (expired))
        s_forget (self, job);
    drv_log (DRV_LOG_INFO, "broker", "journal replayed: %zu queued, %zu scheduled, %zu finished, "
             "%zu expired; %" PRIu64 " bytes on disk", queued, scheduled, ended,
             zlist_size (expired), journal_size (self->journal));
    zlist_destroy (&expired);
}

static int
s_open_journal (broker_t *self)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/journal", self->cfg.data_dir);
    if (zsys_dir_create ("%s", path) != 0) {
        snprintf (self->start_error, sizeof self->start_error,
                  "cannot create journal directory %.200s", path);
        return -1;
    }
    char why [256];
    self->journal = journal_open (path, self->cfg.io, why, sizeof why);
    if (!self->journal) {
        snprintf (self->start_error, sizeof self->start_error, "%.250s", why);
        return -1;
    }
    self->replaying = true;
    int rc = persist_replay (self->journal, self->jobs, self->state, s_replay_queue,
                             s_replay_submitter, self, why, sizeof why);
    self->replaying = false;
    if (rc) {
        snprintf (self->start_error, sizeof self->start_error, "%.250s", why);
        return -1;
    }
    s_place_replayed (self);
    size_t spaces = 0, keys = 0;
    for (state_ns_t *ns = state_ns_first (self->state); ns; ns = state_ns_next (self->state)) {
        spaces++;
        keys += ns->count;
    }
    if (spaces)
        drv_log (DRV_LOG_INFO, "broker", "shared state replayed: %zu namespaces, %zu keys",
                 spaces, keys);
    return 0;
}

static int
s_start (broker_t *self)
{
    self->dec = drv_codec_new ();
    self->enc = drv_codec_new ();
    self->jobs = job_store_new ();
    self->state = state_new ();
    //  Fences start at wall-clock microseconds, so a token handed out after
    //  a restart is still larger than any handed out before it (unless the
    //  last run granted more than one lock per microsecond on average)
    self->sync = sync_new (s_sync_deliver, self, drv_wall_ms () * 1000);
    self->timers = job_heap_new ();
    self->queues = zhashx_new ();
    zhashx_set_destructor (self->queues, (zhashx_destructor_fn *) queue_destroy);
    self->clients = zhashx_new ();
    self->worker_peers = zhashx_new ();
    self->sessions = zhashx_new ();
    self->submitters = zhashx_new ();
    zhashx_set_destructor (self->submitters, (zhashx_destructor_fn *) s_submitter_free);
    drv_frames_init (&self->frames);
    drv_random_id (self->broker_id);
    self->started = self->now = drv_now_ms ();

    if (self->cfg.in_memory)
        drv_log (DRV_LOG_WARN, "broker", "durability none: jobs live in memory only and are "
                 "lost when the broker stops");
    else
    if (s_open_journal (self))
        return -1;
    if (self->cfg.insecure)
        drv_log (DRV_LOG_WARN, "broker", "running INSECURE: no encryption, no authentication, "
                 "every peer is admin");
    else {
        if (!self->cfg.allow) {
            //  Default: DATA_DIR/allow, created empty (nobody is admitted
            //  until an operator puts public certificates there)
            char path [PATH_MAX];
            snprintf (path, sizeof path, "%s/allow", self->cfg.data_dir);
            free (self->cfg_strings [3]);
            self->cfg.allow = self->cfg_strings [3] = strdup (path);
            if (zsys_dir_create ("%s", path) != 0) {
                snprintf (self->start_error, sizeof self->start_error,
                          "cannot create allow-list directory %.200s", path);
                return -1;
            }
        }
        self->cert = auth_server_cert (self->cfg.cert, self->cfg.data_dir, self->cfg.open_key_ok);
        if (!self->cert) {
            snprintf (self->start_error, sizeof self->start_error, "no usable server certificate");
            return -1;
        }
        self->auth = auth_new (self->cfg.allow);
        if (!self->auth) {
            snprintf (self->start_error, sizeof self->start_error,
                      "cannot start authentication (allow-list %s)", self->cfg.allow);
            return -1;
        }
    }
    self->producers = zsock_new (ZMQ_ROUTER);
    self->workers = zsock_new (ZMQ_ROUTER);
    self->pub = zsock_new (ZMQ_PUB);
    if (!self->producers || !self->workers || !self->pub || !self->state || !self->sync) {
        snprintf (self->start_error, sizeof self->start_error, "cannot create sockets");
        return -1;
    }
    if (s_bind (self, self->producers, self->cfg.producers, &self->producers_ep)
    ||  s_bind (self, self->workers, self->cfg.workers, &self->workers_ep)
    ||  s_bind (self, self->pub, self->cfg.state, &self->state_ep))
        return -1;
    //  Welcome tells clients the port; they reach it at the producer host
    const char *colon = strrchr (self->state_ep, ':');
    if (strncmp (self->state_ep, "tcp://", 6) == 0 && colon)
        self->state_port = (uint32_t) atoi (colon + 1);
    //  Scripts parse this line (tests/integration): keep its format
    drv_log (DRV_LOG_INFO, "broker", "serving clients on %s and workers on %s",
             self->producers_ep, self->workers_ep);
    drv_log (DRV_LOG_INFO, "broker", "publishing state updates on %s", self->state_ep);
    s_pub_monitor_start (self);
    if (self->cfg.metrics && *self->cfg.metrics) {
        self->prom = prom_new ();
        self->http = self->prom? http_new (self->cfg.metrics): NULL;
        if (!self->http) {
            snprintf (self->start_error, sizeof self->start_error, "cannot serve metrics on %.180s "
                      "(port in use? change --metrics or turn it off)", self->cfg.metrics);
            return -1;
        }
        self->metrics_ep = strdup (http_endpoint (self->http));
        //  Scripts parse this line (tests): keep its format
        drv_log (DRV_LOG_INFO, "broker", "serving metrics and health on %s (HTTP)",
                 self->metrics_ep);
    }
    return 0;
}

static void
s_stop (broker_t *self)
{
    //  First, so dropping the sessions below grants nothing to anyone
    sync_destroy (&self->sync);
    if (self->worker_peers)
        while (zhashx_size (self->worker_peers))
            s_peer_drop (self, (peer_t *) zhashx_first (self->worker_peers), "broker stopping");
    if (self->clients)
        while (zhashx_size (self->clients))
            s_peer_drop (self, (peer_t *) zhashx_first (self->clients), "broker stopping");
    zsock_destroy (&self->producers);
    zsock_destroy (&self->workers);
    s_pub_monitor_stop (self);
    zsock_destroy (&self->pub);
    http_destroy (&self->http);
    prom_destroy (&self->prom);
    free (self->metrics_ep);
    s_state_clear (self);
    free (self->changes);
    free (self->st_replies);
    free (self->st_items);
    free (self->st_values);
    free (self->st_keys);
    state_destroy (&self->state);
    auth_destroy (&self->auth);
    zcert_destroy (&self->cert);
    journal_close (&self->journal);
    free (self->acks);
    free (self->replies);
    free (self->fresh);
    job_heap_destroy (&self->timers);
    job_store_destroy (&self->jobs);
    zhashx_destroy (&self->submitters);
    zhashx_destroy (&self->queues);
    zhashx_destroy (&self->clients);
    zhashx_destroy (&self->worker_peers);
    zhashx_destroy (&self->sessions);
    drv_codec_destroy (&self->dec);
    drv_codec_destroy (&self->enc);
    drv_frames_destroy (&self->frames);
    free (self->sendbuf);
    zstr_free (&self->producers_ep);
    zstr_free (&self->workers_ep);
    zstr_free (&self->state_ep);
    for (int i = 0; i < 6; i++)
        free (self->cfg_strings [i]);
}

static void
s_on_pipe (broker_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command) {
        self->terminated = true;
        return;
    }
    if (streq (command, "$TERM"))
        self->terminated = true;
    else
    if (streq (command, "ENDPOINTS"))
        zstr_sendx (self->pipe, self->producers_ep? self->producers_ep: "",
                    self->workers_ep? self->workers_ep: "", NULL);
    else
    if (streq (command, "STATE_ENDPOINT"))
        zstr_send (self->pipe, self->state_ep? self->state_ep: "");
    else
    if (streq (command, "METRICS_ENDPOINT"))
        zstr_send (self->pipe, self->metrics_ep? self->metrics_ep: "");
    else
    if (streq (command, "STATUS"))
        zstr_send (self->pipe, *self->start_error? self->start_error: "OK");
    else
    if (streq (command, "RELOAD")) {
        drv_log (DRV_LOG_INFO, "auth", "reloading the allow-list");
        s_auth_refresh (self, true);
    }
    else
        drv_log (DRV_LOG_ERROR, "broker", "unknown actor command %s", command);
    zstr_free (&command);
}

static long
s_poll_timeout (broker_t *self)
{
    uint64_t wake = self->next_liveness;
    job_t *job = job_heap_peek (self->timers);
    if (job && job->due < wake)
        wake = job->due;
    //  A sync waiter's CODE_TIMEOUT is due at its deadline, not a turn later
    if (self->sync && sync_next_deadline (self->sync) < wake)
        wake = sync_next_deadline (self->sync);
    return wake > self->now? (long) (wake - self->now): 0;
}

void
broker_actor (zsock_t *pipe, void *args)
{
    broker_t *self = (broker_t *) zmalloc (sizeof (broker_t));
    self->pipe = pipe;
    s_config_copy (self, (const broker_config_t *) args);
    int rc = s_start (self);
    zsock_signal (pipe, 0);
    if (rc) {
        //  Stay alive to report why, until told to go
        drv_log (DRV_LOG_ERROR, "broker", "%s", self->start_error);
        while (!self->terminated)
            s_on_pipe (self);
        s_stop (self);
        free (self);
        return;
    }
    while (!self->terminated) {
        //  Built each turn: the PUB socket and its monitor can be replaced.
        //  The PUB socket is polled though it never has input: polling is
        //  what makes libzmq take in new subscriptions as they arrive, so a
        //  replica that just subscribed gets the very next update
        enum { P_PIPE, P_PRODUCERS, P_WORKERS, P_AUTH, P_HTTP, P_MONITOR, P_PUB, P_COUNT };
        zmq_pollitem_t items [P_COUNT] = {
            {zsock_resolve (pipe), 0, ZMQ_POLLIN, 0},
            {zsock_resolve (self->producers), 0, ZMQ_POLLIN, 0},
            {zsock_resolve (self->workers), 0, ZMQ_POLLIN, 0},
            {self->auth? zsock_resolve (auth_socket (self->auth)): NULL, 0, 0, 0},
            {self->http? zsock_resolve (http_socket (self->http)): NULL, 0, 0, 0},
            {self->pub_monitor? zsock_resolve (self->pub_monitor): NULL, 0, 0, 0},
            {self->pub? zsock_resolve (self->pub): NULL, 0, 0, 0},
        };
        //  Absent sockets are left out (a NULL socket would mean fd 0)
        zmq_pollitem_t used [P_COUNT];
        int slot [P_COUNT];
        int count = 0;
        for (int i = 0; i < P_COUNT; i++) {
            slot [i] = -1;
            if (items [i].socket) {
                items [i].events = ZMQ_POLLIN;
                slot [i] = count;
                used [count++] = items [i];
            }
        }
        self->now = drv_now_ms ();
        if (zmq_poll (used, count, s_poll_timeout (self)) < 0 && zmq_errno () != EINTR)
            break;
        self->now = drv_now_ms ();
        #define READY(which) (slot [which] >= 0 && (used [slot [which]].revents & ZMQ_POLLIN))
        if (READY (P_PIPE))
            s_on_pipe (self);
        if (READY (P_AUTH))
            auth_handle (self->auth);
        if (READY (P_MONITOR))
            s_pub_events (self);
        if (READY (P_HTTP))
            http_handle (self->http, s_http_serve, self);
        if (READY (P_PRODUCERS))
            s_drain (self, self->producers, DRV_PEER_CLIENT);
        if (READY (P_WORKERS))
            s_drain (self, self->workers, DRV_PEER_WORKER);
        #undef READY
        s_fire_timers (self);
        sync_expire (self->sync, self->now);
        s_liveness (self);
        s_commit (self);
        //  After the commit has published this turn's updates, so that a
        //  beacon never announces a sequence ahead of what was sent
        s_state_beacons (self);
        s_dispatch_dirty (self);
        s_flush (self);
        drv_codec_reset (self->enc);
    }
    drv_log (DRV_LOG_INFO, "broker", "stopping");
    s_stop (self);
    free (self);
}

zactor_t *
broker_start (const broker_config_t *config)
{
    zactor_t *actor = zactor_new (broker_actor, (void *) config);
    if (!actor)
        return NULL;
    zstr_send (actor, "STATUS");
    char *status = zstr_recv (actor);
    bool ok = status && streq (status, "OK");
    zstr_free (&status);
    if (!ok)
        zactor_destroy (&actor);
    return actor;
}

int
broker_endpoints (zactor_t *broker, char **producers, char **workers)
{
    if (zstr_send (broker, "ENDPOINTS"))
        return -1;
    return zstr_recvx (broker, producers, workers, NULL) == 2? 0: -1;
}

int
broker_metrics_endpoint (zactor_t *broker, char **metrics)
{
    zstr_send (broker, "METRICS_ENDPOINT");
    *metrics = zstr_recv (broker);
    return *metrics? 0: -1;
}

void
broker_reload (zactor_t *broker)
{
    zstr_send (broker, "RELOAD");
}

int
broker_state_endpoint (zactor_t *broker, char **state)
{
    if (zstr_send (broker, "STATE_ENDPOINT"))
        return -1;
    *state = zstr_recv (broker);
    return *state? 0: -1;
}
