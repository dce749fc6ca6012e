/*  codec.c - Envelope <-> drv_msg_t, the one place that knows protobuf-c.

    Decoding unpacks with protobuf-c into an arena (no free per field), then
    lays plain C structs over the result; strings point into the same arena.
    Encoding builds the protobuf-c structs in the arena and packs straight
    into a zmq message of the exact size, so the envelope is written once.
*/
#include "codec.h"
#include "drover.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Arena: a list of chunks; reset keeps the first chunk for reuse.
typedef struct chunk_t {
    struct chunk_t *next;   //  older chunk
    size_t size;            //  usable bytes in data
    size_t used;            //  bytes handed out
    max_align_t data [];    //  storage
} chunk_t;

struct _drv_codec_t {
    chunk_t *chunks;                //  newest first
    ProtobufCAllocator allocator;   //  protobuf-c allocates from the arena
    char error [160];               //  last decode failure
};

#define CHUNK_MIN (16 * 1024)

static void *
s_arena_alloc (drv_codec_t *self, size_t size)
{
    size = (size + sizeof (max_align_t) - 1) & ~(sizeof (max_align_t) - 1);
    chunk_t *chunk = self->chunks;
    if (!chunk || chunk->size - chunk->used < size) {
        size_t want = size > CHUNK_MIN? size: CHUNK_MIN;
        if (chunk && chunk->size * 2 > want && chunk->size * 2 >= size)
            want = chunk->size * 2;
        chunk_t *fresh = malloc (sizeof (chunk_t) + want);
        if (!fresh)
            return NULL;
        fresh->next = chunk;
        fresh->size = want;
        fresh->used = 0;
        self->chunks = chunk = fresh;
    }
    void *ptr = (char *) chunk->data + chunk->used;
    chunk->used += size;
    return ptr;
}

static void *
s_pb_alloc (void *data, size_t size)
{
    return s_arena_alloc ((drv_codec_t *) data, size);
}

static void
s_pb_free (void *data, void *ptr)
{
    //  Arena memory goes back all at once on reset
}

drv_codec_t *
drv_codec_new (void)
{
    drv_codec_t *self = calloc (1, sizeof (drv_codec_t));
    if (!self)
        return NULL;
    self->allocator.alloc = s_pb_alloc;
    self->allocator.free = s_pb_free;
    self->allocator.allocator_data = self;
    return self;
}

void
drv_codec_destroy (drv_codec_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    drv_codec_t *self = *self_p;
    while (self->chunks) {
        chunk_t *next = self->chunks->next;
        free (self->chunks);
        self->chunks = next;
    }
    free (self);
    *self_p = NULL;
}

void
drv_codec_reset (drv_codec_t *self)
{
    //  Keep the largest (newest) chunk so steady state allocates nothing
    chunk_t *keep = self->chunks;
    if (!keep)
        return;
    chunk_t *older = keep->next;
    while (older) {
        chunk_t *next = older->next;
        free (older);
        older = next;
    }
    keep->next = NULL;
    keep->used = 0;
}

void *
drv_codec_alloc (drv_codec_t *self, size_t size)
{
    return s_arena_alloc (self, size);
}

const char *
drv_codec_error (drv_codec_t *self)
{
    return self->error;
}

void
drv_msg_init (drv_msg_t *msg, drv_cmd_t cmd, uint64_t corr)
{
    memset (msg, 0, sizeof *msg);
    msg->version = DRV_PROTOCOL_VERSION;
    msg->cmd = cmd;
    msg->corr = corr;
}

//  Names ------------------------------------------------------------------

static const char *s_cmd_names [DRV_CMD_COUNT_] = {
    "NONE", "HELLO", "WELCOME", "HEARTBEAT", "ERROR", "BYE", "SUBMIT",
    "SUBMIT_ACK", "DISPATCH", "REPORT", "DELIVER", "CREDIT", "QUERY",
    "QUERY_REPLY", "CANCEL", "STATS", "STATS_REPLY", "PROGRESS", "QUEUE_CONTROL",
    "DEAD_LETTER", "STATE_REQUEST", "STATE_REPLY", "STATE_UPDATE", "SYNC_REQUEST",
    "SYNC_REPLY"
};

const char *
drv_cmd_name (drv_cmd_t cmd)
{
    return cmd < DRV_CMD_COUNT_? s_cmd_names [cmd]: "?";
}

const char *
drv_code_name (drv_code_t code)
{
    static const char *names [] = {
        "OK", "BAD_REQUEST", "UNKNOWN_COMMAND", "BAD_VERSION", "REHELLO",
        "TOO_LARGE", "UNKNOWN_QUEUE", "UNKNOWN_JOB", "DENIED", "LIMIT",
        "UNAVAILABLE", "INTERNAL", "BAD_STATE", "NOT_FOUND", "CONFLICT", "TIMEOUT"
    };
    return (unsigned) code < sizeof names / sizeof names [0]? names [code]: "?";
}

bool
drv_queue_name_valid (const char *name)
{
    if (!name)
        return false;
    size_t len = 0;
    for (const char *p = name; *p; p++, len++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
               || c == '.' || c == '_' || c == '-' || c == ':';
        if (!ok || len >= DRV_QUEUE_NAME_MAX)
            return false;
    }
    return len > 0;
}

char *
drv_queue_list_parse (const char *text, char *why, size_t why_size)
{
    char *list = (char *) malloc (strlen (text) + 1);
    if (!list) {
        snprintf (why, why_size, "out of memory");
        return NULL;
    }
    size_t out = 0;
    const char *item = text;
    while (true) {
        while (*item == ' ' || *item == '\t')
            item++;
        const char *end = strchr (item, ',');
        if (!end)
            end = item + strlen (item);
        const char *last = end;
        while (last > item && (last [-1] == ' ' || last [-1] == '\t'))
            last--;
        size_t len = (size_t) (last - item);
        if (len == 0) {
            snprintf (why, why_size, "empty entry in queue list '%s'", text);
            free (list);
            return NULL;
        }
        //  The name part: the entry without its trailing '*', if any
        char name [DRV_QUEUE_NAME_MAX + 2];
        size_t name_len = item [len - 1] == '*'? len - 1: len;
        bool valid = name_len < sizeof name;
        if (valid && name_len > 0) {
            memcpy (name, item, name_len);
            name [name_len] = 0;
            valid = drv_queue_name_valid (name);
        }
        if (!valid) {
            snprintf (why, why_size, "bad entry '%.*s' in queue list: a queue name "
                      "(1-128 of A-Z a-z 0-9 . _ - :) optionally ending in *",
                      (int) (len > 200? 200: len), item);
            free (list);
            return NULL;
        }
        if (out)
            list [out++] = ',';
        memcpy (list + out, item, len);
        out += len;
        if (!*end)
            break;
        item = end + 1;
    }
    list [out] = 0;
    return list;
}

bool
drv_cmd_has_payloads (drv_cmd_t cmd)
{
    return cmd == DRV_CMD_SUBMIT || cmd == DRV_CMD_DISPATCH || cmd == DRV_CMD_REPORT
        || cmd == DRV_CMD_DELIVER || cmd == DRV_CMD_QUERY_REPLY
        || cmd == DRV_CMD_STATE_REQUEST || cmd == DRV_CMD_STATE_REPLY;
}

//  Mapping between the oneof case and drv_cmd_t.
static const struct {
    Drover__Envelope__BodyCase pb;
    drv_cmd_t cmd;
} s_cases [] = {
    {DROVER__ENVELOPE__BODY_HELLO, DRV_CMD_HELLO},
    {DROVER__ENVELOPE__BODY_WELCOME, DRV_CMD_WELCOME},
    {DROVER__ENVELOPE__BODY_HEARTBEAT, DRV_CMD_HEARTBEAT},
    {DROVER__ENVELOPE__BODY_ERROR, DRV_CMD_ERROR},
    {DROVER__ENVELOPE__BODY_BYE, DRV_CMD_BYE},
    {DROVER__ENVELOPE__BODY_SUBMIT, DRV_CMD_SUBMIT},
    {DROVER__ENVELOPE__BODY_SUBMIT_ACK, DRV_CMD_SUBMIT_ACK},
    {DROVER__ENVELOPE__BODY_DISPATCH, DRV_CMD_DISPATCH},
    {DROVER__ENVELOPE__BODY_REPORT, DRV_CMD_REPORT},
    {DROVER__ENVELOPE__BODY_DELIVER, DRV_CMD_DELIVER},
    {DROVER__ENVELOPE__BODY_CREDIT, DRV_CMD_CREDIT},
    {DROVER__ENVELOPE__BODY_QUERY, DRV_CMD_QUERY},
    {DROVER__ENVELOPE__BODY_QUERY_REPLY, DRV_CMD_QUERY_REPLY},
    {DROVER__ENVELOPE__BODY_CANCEL, DRV_CMD_CANCEL},
    {DROVER__ENVELOPE__BODY_STATS, DRV_CMD_STATS},
    {DROVER__ENVELOPE__BODY_STATS_REPLY, DRV_CMD_STATS_REPLY},
    {DROVER__ENVELOPE__BODY_PROGRESS_REPORT, DRV_CMD_PROGRESS},
    {DROVER__ENVELOPE__BODY_QUEUE_CONTROL, DRV_CMD_QUEUE_CONTROL},
    {DROVER__ENVELOPE__BODY_DEAD_LETTER, DRV_CMD_DEAD_LETTER},
    {DROVER__ENVELOPE__BODY_STATE_REQUEST, DRV_CMD_STATE_REQUEST},
    {DROVER__ENVELOPE__BODY_STATE_REPLY, DRV_CMD_STATE_REPLY},
    {DROVER__ENVELOPE__BODY_STATE_UPDATE, DRV_CMD_STATE_UPDATE},
    {DROVER__ENVELOPE__BODY_SYNC_REQUEST, DRV_CMD_SYNC_REQUEST},
    {DROVER__ENVELOPE__BODY_SYNC_REPLY, DRV_CMD_SYNC_REPLY},
};

//  Decoding ---------------------------------------------------------------

static int
s_fail (drv_codec_t *self, const char *what)
{
    snprintf (self->error, sizeof self->error, "%s", what);
    return -1;
}

static int
s_get_id (drv_codec_t *self, ProtobufCBinaryData bin, uint8_t *id, const char *what)
{
    if (bin.len != DRV_ID_SIZE) {
        snprintf (self->error, sizeof self->error,
                  "%s must be %d bytes, got %zu", what, DRV_ID_SIZE, bin.len);
        return -1;
    }
    memcpy (id, bin.data, DRV_ID_SIZE);
    return 0;
}

//  protobuf-c leaves unset proto3 strings as "" already; this guards NULL
static const char *
s_str (const char *s)
{
    return s? s: "";
}

//  Allocates a zeroed array of n elements in the arena (n may be 0).
#define ARENA_ARRAY(self, type, n) \
    ((type *) s_arena_zero ((self), sizeof (type) * ((n)? (n): 1)))

static void *
s_arena_zero (drv_codec_t *self, size_t size)
{
    void *ptr = s_arena_alloc (self, size);
    if (ptr)
        memset (ptr, 0, size);
    return ptr;
}

static int
s_decode_ids (drv_codec_t *self, size_t n, ProtobufCBinaryData *bins, drv_msg_t *msg)
{
    msg->count = n;
    msg->ids = (uint8_t (*) [DRV_ID_SIZE]) s_arena_zero (self, DRV_ID_SIZE * (n? n: 1));
    if (!msg->ids)
        return s_fail (self, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (s_get_id (self, bins [i], msg->ids [i], "job id"))
            return -1;
    return 0;
}

static int
s_decode_results (drv_codec_t *self, size_t n, Drover__Result **in, drv_msg_t *msg)
{
    msg->count = n;
    msg->results = ARENA_ARRAY (self, drv_result_t, n);
    if (!msg->results)
        return s_fail (self, "out of memory");
    for (size_t i = 0; i < n; i++) {
        drv_result_t *out = &msg->results [i];
        if (s_get_id (self, in [i]->id, out->id, "result id"))
            return -1;
        out->state = (drv_job_state_t) in [i]->state;
        out->error = s_str (in [i]->error);
        out->attempts = in [i]->attempts;
        out->no_retry = in [i]->no_retry;
    }
    return 0;
}

static int
s_decode_body (drv_codec_t *self, Drover__Envelope *env, drv_msg_t *msg)
{
    switch (msg->cmd) {
        case DRV_CMD_HELLO: {
            Drover__Hello *h = env->hello;
            msg->hello.kind = (drv_peer_kind_t) h->kind;
            if (h->session.len != DRV_ID_SIZE)
                return s_fail (self, "hello session must be 16 bytes");
            memcpy (msg->hello.session, h->session.data, DRV_ID_SIZE);
            msg->hello.name = s_str (h->name);
            msg->hello.queues = (const char **) h->queues;
            msg->hello.queue_count = h->n_queues;
            msg->hello.credit = h->credit;
            msg->hello.version_min = h->version_min;
            msg->hello.version_max = h->version_max;
            return 0;
        }
        case DRV_CMD_WELCOME: {
            Drover__Welcome *w = env->welcome;
            if (w->broker_id.len != DRV_ID_SIZE)
                return s_fail (self, "welcome broker_id must be 16 bytes");
            memcpy (msg->welcome.broker_id, w->broker_id.data, DRV_ID_SIZE);
            msg->welcome.version = w->version;
            msg->welcome.heartbeat_ms = w->heartbeat_ms;
            msg->welcome.max_payload = w->max_payload;
            msg->welcome.max_batch = w->max_batch;
            msg->welcome.role = s_str (w->role);
            msg->welcome.state_port = w->state_port;
            msg->welcome.max_value = w->max_value;
            return 0;
        }
        case DRV_CMD_ERROR: {
            Drover__Error *e = env->error;
            msg->error.code = (drv_code_t) e->code;
            msg->error.message = s_str (e->message);
            msg->error.id_count = e->n_ids;
            msg->error.ids = (uint8_t (*) [DRV_ID_SIZE]) s_arena_zero (self, DRV_ID_SIZE * (e->n_ids? e->n_ids: 1));
            if (!msg->error.ids)
                return s_fail (self, "out of memory");
            for (size_t i = 0; i < e->n_ids; i++)
                if (s_get_id (self, e->ids [i], msg->error.ids [i], "error id"))
                    return -1;
            return 0;
        }
        case DRV_CMD_HEARTBEAT:
        case DRV_CMD_BYE:
        case DRV_CMD_STATS:
            return 0;
        case DRV_CMD_SUBMIT: {
            Drover__Submit *s = env->submit;
            msg->count = s->n_jobs;
            msg->specs = ARENA_ARRAY (self, drv_jobspec_t, s->n_jobs);
            if (!msg->specs)
                return s_fail (self, "out of memory");
            for (size_t i = 0; i < s->n_jobs; i++) {
                Drover__JobSpec *in = s->jobs [i];
                drv_jobspec_t *out = &msg->specs [i];
                if (s_get_id (self, in->id, out->id, "job id"))
                    return -1;
                out->queue = s_str (in->queue);
                out->priority = in->priority;
                out->timeout_ms = in->timeout_ms;
                out->max_attempts = in->max_attempts;
                out->delay_ms = in->delay_ms;
                out->run_at_ms = in->run_at_ms;
                out->backoff_ms = in->backoff_ms;
                out->result_ttl_s = in->result_ttl_s;
            }
            return 0;
        }
        case DRV_CMD_SUBMIT_ACK: {
            Drover__SubmitAck *a = env->submit_ack;
            msg->count = a->n_acks;
            msg->acks = ARENA_ARRAY (self, drv_joback_t, a->n_acks);
            if (!msg->acks)
                return s_fail (self, "out of memory");
            for (size_t i = 0; i < a->n_acks; i++) {
                if (s_get_id (self, a->acks [i]->id, msg->acks [i].id, "ack id"))
                    return -1;
                msg->acks [i].code = (drv_code_t) a->acks [i]->code;
                msg->acks [i].message = s_str (a->acks [i]->message);
                msg->acks [i].duplicate = a->acks [i]->duplicate;
            }
            return 0;
        }
        case DRV_CMD_DISPATCH: {
            Drover__Dispatch *d = env->dispatch;
            msg->count = d->n_jobs;
            msg->jobs = ARENA_ARRAY (self, drv_job_t, d->n_jobs);
            if (!msg->jobs)
                return s_fail (self, "out of memory");
            for (size_t i = 0; i < d->n_jobs; i++) {
                if (s_get_id (self, d->jobs [i]->id, msg->jobs [i].id, "job id"))
                    return -1;
                msg->jobs [i].queue = s_str (d->jobs [i]->queue);
                msg->jobs [i].attempt = d->jobs [i]->attempt;
                msg->jobs [i].timeout_ms = d->jobs [i]->timeout_ms;
                msg->jobs [i].submitter = s_str (d->jobs [i]->submitter);
            }
            return 0;
        }
        case DRV_CMD_REPORT:
            return s_decode_results (self, env->report->n_results, env->report->results, msg);
        case DRV_CMD_DELIVER:
            return s_decode_results (self, env->deliver->n_results, env->deliver->results, msg);
        case DRV_CMD_CREDIT:
            msg->credit = env->credit->credit;
            return 0;
        case DRV_CMD_QUERY:
            msg->query.want_result = env->query->want_result;
            msg->query.watch = env->query->watch;
            return s_decode_ids (self, env->query->n_ids, env->query->ids, msg);
        case DRV_CMD_CANCEL:
            return s_decode_ids (self, env->cancel->n_ids, env->cancel->ids, msg);
        case DRV_CMD_QUERY_REPLY: {
            Drover__QueryReply *r = env->query_reply;
            msg->count = r->n_jobs;
            msg->infos = ARENA_ARRAY (self, drv_jobinfo_t, r->n_jobs);
            if (!msg->infos)
                return s_fail (self, "out of memory");
            for (size_t i = 0; i < r->n_jobs; i++) {
                Drover__JobInfo *in = r->jobs [i];
                drv_jobinfo_t *out = &msg->infos [i];
                if (s_get_id (self, in->id, out->id, "job id"))
                    return -1;
                out->state = (drv_job_state_t) in->state;
                out->queue = s_str (in->queue);
                out->attempts = in->attempts;
                out->error = s_str (in->error);
                out->created_ms = in->created_ms;
                out->finished_ms = in->finished_ms;
                out->priority = in->priority;
                out->payload_size = in->payload_size;
                out->progress = in->progress;
                out->progress_message = s_str (in->progress_message);
                out->submitter = s_str (in->submitter);
            }
            return 0;
        }
        case DRV_CMD_PROGRESS: {
            Drover__ProgressReport *p = env->progress_report;
            msg->count = p->n_progress;
            msg->progress = ARENA_ARRAY (self, drv_progress_t, p->n_progress);
            if (!msg->progress)
                return s_fail (self, "out of memory");
            for (size_t i = 0; i < p->n_progress; i++) {
                if (s_get_id (self, p->progress [i]->id, msg->progress [i].id, "progress id"))
                    return -1;
                msg->progress [i].percent = p->progress [i]->percent;
                msg->progress [i].message = s_str (p->progress [i]->message);
            }
            return 0;
        }
        case DRV_CMD_QUEUE_CONTROL:
            msg->queue_control.queue = s_str (env->queue_control->queue);
            msg->queue_control.action = (drv_queue_action_t) env->queue_control->action;
            return 0;
        case DRV_CMD_DEAD_LETTER:
            msg->dead.queue = s_str (env->dead_letter->queue);
            msg->dead.action = (drv_dead_action_t) env->dead_letter->action;
            msg->dead.limit = env->dead_letter->limit;
            return s_decode_ids (self, env->dead_letter->n_ids, env->dead_letter->ids, msg);
        case DRV_CMD_STATE_REQUEST: {
            Drover__StateRequest *r = env->state_request;
            msg->state.op = (drv_state_op_t) r->op;
            msg->state.ns = s_str (r->ns);
            msg->state.key = r->key.data;
            msg->state.key_size = r->key.len;
            msg->state.expect_version = r->expect_version;
            msg->state.delta = r->delta;
            msg->state.limit = r->limit;
            //  Exactly one payload frame follows (the value, or empty)
            msg->count = 1;
            return 0;
        }
        case DRV_CMD_STATE_REPLY: {
            Drover__StateReply *r = env->state_reply;
            msg->state_reply.code = (drv_code_t) r->code;
            msg->state_reply.message = s_str (r->message);
            msg->state_reply.seq = r->seq;
            msg->count = r->n_entries;
            msg->entries = ARENA_ARRAY (self, drv_state_entry_t, r->n_entries);
            if (!msg->entries)
                return s_fail (self, "out of memory");
            for (size_t i = 0; i < r->n_entries; i++) {
                msg->entries [i].key = r->entries [i]->key.data;
                msg->entries [i].key_size = r->entries [i]->key.len;
                msg->entries [i].version = r->entries [i]->version;
            }
            return 0;
        }
        case DRV_CMD_STATE_UPDATE: {
            Drover__StateUpdate *u = env->state_update;
            msg->update.ns = s_str (u->ns);
            msg->update.seq = u->seq;
            msg->update.key = u->key.data;
            msg->update.key_size = u->key.len;
            msg->update.version = u->version;
            msg->update.deleted = u->deleted;
            return 0;
        }
        case DRV_CMD_SYNC_REQUEST:
            msg->sync.op = (drv_sync_op_t) env->sync_request->op;
            msg->sync.name = s_str (env->sync_request->name);
            msg->sync.timeout_ms = env->sync_request->timeout_ms;
            msg->sync.count = env->sync_request->count;
            return 0;
        case DRV_CMD_SYNC_REPLY:
            msg->sync_reply.code = (drv_code_t) env->sync_reply->code;
            msg->sync_reply.message = s_str (env->sync_reply->message);
            msg->sync_reply.fence = env->sync_reply->fence;
            msg->sync_reply.value = env->sync_reply->value;
            return 0;
        case DRV_CMD_STATS_REPLY: {
            Drover__StatsReply *r = env->stats_reply;
            msg->stats.workers = r->workers;
            msg->stats.clients = r->clients;
            msg->stats.uptime_ms = r->uptime_ms;
            msg->stats.jobs_stored = r->jobs_stored;
            msg->count = r->n_queues;
            msg->queues = ARENA_ARRAY (self, drv_queue_stats_t, r->n_queues);
            if (!msg->queues)
                return s_fail (self, "out of memory");
            for (size_t i = 0; i < r->n_queues; i++) {
                Drover__QueueStats *in = r->queues [i];
                drv_queue_stats_t *out = &msg->queues [i];
                out->name = s_str (in->name);
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
            msg->stats.peer_count = r->n_peers;
            msg->stats.peers = ARENA_ARRAY (self, drv_peer_info_t, r->n_peers);
            if (!msg->stats.peers)
                return s_fail (self, "out of memory");
            for (size_t i = 0; i < r->n_peers; i++) {
                Drover__PeerInfo *in = r->peers [i];
                drv_peer_info_t *out = &msg->stats.peers [i];
                out->kind = (drv_peer_kind_t) in->kind;
                out->name = s_str (in->name);
                out->key = s_str (in->key);
                out->role = s_str (in->role);
                out->queues = (const char **) in->queues;
                out->queue_count = in->n_queues;
                out->credit = in->credit;
                out->inflight = in->inflight;
                out->connected_ms = in->connected_ms;
                out->idle_ms = in->idle_ms;
            }
            return 0;
        }
        default:
            return s_fail (self, "no command in envelope");
    }
}

int
drv_codec_decode (drv_codec_t *self, const void *data, size_t size, drv_msg_t *msg)
{
    memset (msg, 0, sizeof *msg);
    drv_codec_reset (self);
    self->error [0] = 0;
    Drover__Envelope *env = drover__envelope__unpack (&self->allocator, size, data);
    if (!env)
        return s_fail (self, "envelope is not a valid protobuf Envelope");
    msg->version = env->version;
    msg->corr = env->corr;
    msg->cmd = DRV_CMD_NONE;
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases [0]; i++)
        if (s_cases [i].pb == env->body_case) {
            msg->cmd = s_cases [i].cmd;
            break;
        }
    if (msg->cmd == DRV_CMD_NONE)
        return s_fail (self, "envelope carries no known command");
    return s_decode_body (self, env, msg);
}

//  Encoding ---------------------------------------------------------------

static ProtobufCBinaryData
s_bin (const uint8_t *id)
{
    ProtobufCBinaryData bin = {DRV_ID_SIZE, (uint8_t *) id};
    return bin;
}

//  Allocates n message structs of type T and an array of pointers to them,
//  each initialised with INIT. Evaluates to the pointer array or NULL.
#define ARENA_MESSAGES(self, T, INIT, n, ptrs_out) \
    do { \
        T **ptrs_ = ARENA_ARRAY (self, T *, n); \
        T *items_ = ARENA_ARRAY (self, T, n); \
        if (ptrs_ && items_) { \
            T init_ = INIT; \
            for (size_t k_ = 0; k_ < (n); k_++) { \
                items_ [k_] = init_; \
                ptrs_ [k_] = &items_ [k_]; \
            } \
            (ptrs_out) = ptrs_; \
        } \
        else \
            (ptrs_out) = NULL; \
    } while (0)

static ProtobufCBinaryData *
s_encode_ids (drv_codec_t *self, uint8_t (*ids) [DRV_ID_SIZE], size_t n)
{
    ProtobufCBinaryData *bins = ARENA_ARRAY (self, ProtobufCBinaryData, n);
    if (bins)
        for (size_t i = 0; i < n; i++)
            bins [i] = s_bin (ids [i]);
    return bins;
}

static Drover__Result **
s_encode_results (drv_codec_t *self, const drv_msg_t *msg)
{
    Drover__Result **out;
    ARENA_MESSAGES (self, Drover__Result, DROVER__RESULT__INIT, msg->count, out);
    if (out)
        for (size_t i = 0; i < msg->count; i++) {
            const drv_result_t *in = &msg->results [i];
            out [i]->id = s_bin (in->id);
            out [i]->state = (Drover__JobState) in->state;
            out [i]->error = (char *) s_str (in->error);
            out [i]->attempts = in->attempts;
            out [i]->no_retry = in->no_retry;
        }
    return out;
}

int
drv_codec_encode (drv_codec_t *self, const drv_msg_t *msg, zmq_msg_t *frame)
{
    Drover__Envelope env = DROVER__ENVELOPE__INIT;
    env.version = msg->version? msg->version: DRV_PROTOCOL_VERSION;
    env.corr = msg->corr;

    //  Every body struct lives on this stack frame; lists live in the arena
    Drover__Hello hello = DROVER__HELLO__INIT;
    Drover__Welcome welcome = DROVER__WELCOME__INIT;
    Drover__Heartbeat heartbeat = DROVER__HEARTBEAT__INIT;
    Drover__Error error = DROVER__ERROR__INIT;
    Drover__Bye bye = DROVER__BYE__INIT;
    Drover__Submit submit = DROVER__SUBMIT__INIT;
    Drover__SubmitAck submit_ack = DROVER__SUBMIT_ACK__INIT;
    Drover__Dispatch dispatch = DROVER__DISPATCH__INIT;
    Drover__Report report = DROVER__REPORT__INIT;
    Drover__Deliver deliver = DROVER__DELIVER__INIT;
    Drover__Credit credit = DROVER__CREDIT__INIT;
    Drover__Query query = DROVER__QUERY__INIT;
    Drover__QueryReply query_reply = DROVER__QUERY_REPLY__INIT;
    Drover__Cancel cancel = DROVER__CANCEL__INIT;
    Drover__StatsRequest stats = DROVER__STATS_REQUEST__INIT;
    Drover__StatsReply stats_reply = DROVER__STATS_REPLY__INIT;
    Drover__ProgressReport progress_report = DROVER__PROGRESS_REPORT__INIT;
    Drover__QueueControl queue_control = DROVER__QUEUE_CONTROL__INIT;
    Drover__DeadLetter dead_letter = DROVER__DEAD_LETTER__INIT;
    Drover__StateRequest state_request = DROVER__STATE_REQUEST__INIT;
    Drover__StateReply state_reply = DROVER__STATE_REPLY__INIT;
    Drover__StateUpdate state_update = DROVER__STATE_UPDATE__INIT;
    Drover__SyncRequest sync_request = DROVER__SYNC_REQUEST__INIT;
    Drover__SyncReply sync_reply = DROVER__SYNC_REPLY__INIT;
    size_t n = msg->count;

    switch (msg->cmd) {
        case DRV_CMD_HELLO:
            hello.kind = (Drover__PeerKind) msg->hello.kind;
            hello.session = s_bin (msg->hello.session);
            hello.name = (char *) s_str (msg->hello.name);
            hello.n_queues = msg->hello.queue_count;
            hello.queues = (char **) msg->hello.queues;
            hello.credit = msg->hello.credit;
            hello.version_min = msg->hello.version_min;
            hello.version_max = msg->hello.version_max;
            env.body_case = DROVER__ENVELOPE__BODY_HELLO;
            env.hello = &hello;
            break;
        case DRV_CMD_WELCOME:
            welcome.broker_id = s_bin (msg->welcome.broker_id);
            welcome.version = msg->welcome.version;
            welcome.heartbeat_ms = msg->welcome.heartbeat_ms;
            welcome.max_payload = msg->welcome.max_payload;
            welcome.max_batch = msg->welcome.max_batch;
            welcome.role = (char *) s_str (msg->welcome.role);
            welcome.state_port = msg->welcome.state_port;
            welcome.max_value = msg->welcome.max_value;
            env.body_case = DROVER__ENVELOPE__BODY_WELCOME;
            env.welcome = &welcome;
            break;
        case DRV_CMD_HEARTBEAT:
            env.body_case = DROVER__ENVELOPE__BODY_HEARTBEAT;
            env.heartbeat = &heartbeat;
            break;
        case DRV_CMD_ERROR:
            error.code = (Drover__Code) msg->error.code;
            error.message = (char *) s_str (msg->error.message);
            error.n_ids = msg->error.id_count;
            error.ids = s_encode_ids (self, msg->error.ids, msg->error.id_count);
            if (!error.ids)
                return -1;
            env.body_case = DROVER__ENVELOPE__BODY_ERROR;
            env.error = &error;
            break;
        case DRV_CMD_BYE:
            env.body_case = DROVER__ENVELOPE__BODY_BYE;
            env.bye = &bye;
            break;
        case DRV_CMD_SUBMIT:
            ARENA_MESSAGES (self, Drover__JobSpec, DROVER__JOB_SPEC__INIT, n, submit.jobs);
            if (!submit.jobs)
                return -1;
            submit.n_jobs = n;
            for (size_t i = 0; i < n; i++) {
                const drv_jobspec_t *in = &msg->specs [i];
                Drover__JobSpec *out = submit.jobs [i];
                out->id = s_bin (in->id);
                out->queue = (char *) s_str (in->queue);
                out->priority = in->priority;
                out->timeout_ms = in->timeout_ms;
                out->max_attempts = in->max_attempts;
                out->delay_ms = in->delay_ms;
                out->run_at_ms = in->run_at_ms;
                out->backoff_ms = in->backoff_ms;
                out->result_ttl_s = in->result_ttl_s;
            }
            env.body_case = DROVER__ENVELOPE__BODY_SUBMIT;
            env.submit = &submit;
            break;
        case DRV_CMD_SUBMIT_ACK:
            ARENA_MESSAGES (self, Drover__JobAck, DROVER__JOB_ACK__INIT, n, submit_ack.acks);
            if (!submit_ack.acks)
                return -1;
            submit_ack.n_acks = n;
            for (size_t i = 0; i < n; i++) {
                submit_ack.acks [i]->id = s_bin (msg->acks [i].id);
                submit_ack.acks [i]->code = (Drover__Code) msg->acks [i].code;
                submit_ack.acks [i]->message = (char *) s_str (msg->acks [i].message);
                submit_ack.acks [i]->duplicate = msg->acks [i].duplicate;
            }
            env.body_case = DROVER__ENVELOPE__BODY_SUBMIT_ACK;
            env.submit_ack = &submit_ack;
            break;
        case DRV_CMD_DISPATCH:
            ARENA_MESSAGES (self, Drover__Job, DROVER__JOB__INIT, n, dispatch.jobs);
            if (!dispatch.jobs)
                return -1;
            dispatch.n_jobs = n;
            for (size_t i = 0; i < n; i++) {
                dispatch.jobs [i]->id = s_bin (msg->jobs [i].id);
                dispatch.jobs [i]->queue = (char *) s_str (msg->jobs [i].queue);
                dispatch.jobs [i]->attempt = msg->jobs [i].attempt;
                dispatch.jobs [i]->timeout_ms = msg->jobs [i].timeout_ms;
                dispatch.jobs [i]->submitter = (char *) s_str (msg->jobs [i].submitter);
            }
            env.body_case = DROVER__ENVELOPE__BODY_DISPATCH;
            env.dispatch = &dispatch;
            break;
        case DRV_CMD_REPORT:
            report.results = s_encode_results (self, msg);
            if (!report.results)
                return -1;
            report.n_results = n;
            env.body_case = DROVER__ENVELOPE__BODY_REPORT;
            env.report = &report;
            break;
        case DRV_CMD_DELIVER:
            deliver.results = s_encode_results (self, msg);
            if (!deliver.results)
                return -1;
            deliver.n_results = n;
            env.body_case = DROVER__ENVELOPE__BODY_DELIVER;
            env.deliver = &deliver;
            break;
        case DRV_CMD_CREDIT:
            credit.credit = msg->credit;
            env.body_case = DROVER__ENVELOPE__BODY_CREDIT;
            env.credit = &credit;
            break;
        case DRV_CMD_QUERY:
            query.want_result = msg->query.want_result;
            query.watch = msg->query.watch;
            query.ids = s_encode_ids (self, msg->ids, n);
            if (!query.ids)
                return -1;
            query.n_ids = n;
            env.body_case = DROVER__ENVELOPE__BODY_QUERY;
            env.query = &query;
            break;
        case DRV_CMD_CANCEL:
            cancel.ids = s_encode_ids (self, msg->ids, n);
            if (!cancel.ids)
                return -1;
            cancel.n_ids = n;
            env.body_case = DROVER__ENVELOPE__BODY_CANCEL;
            env.cancel = &cancel;
            break;
        case DRV_CMD_QUERY_REPLY:
            ARENA_MESSAGES (self, Drover__JobInfo, DROVER__JOB_INFO__INIT, n, query_reply.jobs);
            if (!query_reply.jobs)
                return -1;
            query_reply.n_jobs = n;
            for (size_t i = 0; i < n; i++) {
                const drv_jobinfo_t *in = &msg->infos [i];
                Drover__JobInfo *out = query_reply.jobs [i];
                out->id = s_bin (in->id);
                out->state = (Drover__JobState) in->state;
                out->queue = (char *) s_str (in->queue);
                out->attempts = in->attempts;
                out->error = (char *) s_str (in->error);
                out->created_ms = in->created_ms;
                out->finished_ms = in->finished_ms;
                out->priority = in->priority;
                out->payload_size = in->payload_size;
                out->progress = in->progress;
                out->progress_message = (char *) s_str (in->progress_message);
                out->submitter = (char *) s_str (in->submitter);
            }
            env.body_case = DROVER__ENVELOPE__BODY_QUERY_REPLY;
            env.query_reply = &query_reply;
            break;
        case DRV_CMD_STATS:
            env.body_case = DROVER__ENVELOPE__BODY_STATS;
            env.stats = &stats;
            break;
        case DRV_CMD_STATS_REPLY:
            ARENA_MESSAGES (self, Drover__QueueStats, DROVER__QUEUE_STATS__INIT, n, stats_reply.queues);
            if (!stats_reply.queues)
                return -1;
            stats_reply.n_queues = n;
            for (size_t i = 0; i < n; i++) {
                const drv_queue_stats_t *in = &msg->queues [i];
                Drover__QueueStats *out = stats_reply.queues [i];
                out->name = (char *) s_str (in->name);
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
            stats_reply.workers = msg->stats.workers;
            stats_reply.clients = msg->stats.clients;
            stats_reply.uptime_ms = msg->stats.uptime_ms;
            stats_reply.jobs_stored = msg->stats.jobs_stored;
            if (msg->stats.peer_count) {
                size_t np = msg->stats.peer_count;
                ARENA_MESSAGES (self, Drover__PeerInfo, DROVER__PEER_INFO__INIT, np, stats_reply.peers);
                if (!stats_reply.peers)
                    return -1;
                stats_reply.n_peers = np;
                for (size_t i = 0; i < np; i++) {
                    const drv_peer_info_t *in = &msg->stats.peers [i];
                    Drover__PeerInfo *out = stats_reply.peers [i];
                    out->kind = (Drover__PeerKind) in->kind;
                    out->name = (char *) s_str (in->name);
                    out->key = (char *) s_str (in->key);
                    out->role = (char *) s_str (in->role);
                    out->queues = (char **) in->queues;
                    out->n_queues = in->queue_count;
                    out->credit = in->credit;
                    out->inflight = in->inflight;
                    out->connected_ms = in->connected_ms;
                    out->idle_ms = in->idle_ms;
                }
            }
            env.body_case = DROVER__ENVELOPE__BODY_STATS_REPLY;
            env.stats_reply = &stats_reply;
            break;
        case DRV_CMD_PROGRESS:
            ARENA_MESSAGES (self, Drover__Progress, DROVER__PROGRESS__INIT, n, progress_report.progress);
            if (!progress_report.progress)
                return -1;
            progress_report.n_progress = n;
            for (size_t i = 0; i < n; i++) {
                progress_report.progress [i]->id = s_bin (msg->progress [i].id);
                progress_report.progress [i]->percent = msg->progress [i].percent;
                progress_report.progress [i]->message = (char *) s_str (msg->progress [i].message);
            }
            env.body_case = DROVER__ENVELOPE__BODY_PROGRESS_REPORT;
            env.progress_report = &progress_report;
            break;
        case DRV_CMD_QUEUE_CONTROL:
            queue_control.queue = (char *) s_str (msg->queue_control.queue);
            queue_control.action = (Drover__QueueAction) msg->queue_control.action;
            env.body_case = DROVER__ENVELOPE__BODY_QUEUE_CONTROL;
            env.queue_control = &queue_control;
            break;
        case DRV_CMD_DEAD_LETTER:
            dead_letter.queue = (char *) s_str (msg->dead.queue);
            dead_letter.action = (Drover__DeadAction) msg->dead.action;
            dead_letter.limit = msg->dead.limit;
            dead_letter.ids = s_encode_ids (self, msg->ids, n);
            if (!dead_letter.ids)
                return -1;
            dead_letter.n_ids = n;
            env.body_case = DROVER__ENVELOPE__BODY_DEAD_LETTER;
            env.dead_letter = &dead_letter;
            break;
        case DRV_CMD_STATE_REQUEST:
            state_request.op = (Drover__StateOp) msg->state.op;
            state_request.ns = (char *) s_str (msg->state.ns);
            state_request.key.data = (uint8_t *) msg->state.key;
            state_request.key.len = msg->state.key_size;
            state_request.expect_version = msg->state.expect_version;
            state_request.delta = msg->state.delta;
            state_request.limit = msg->state.limit;
            env.body_case = DROVER__ENVELOPE__BODY_STATE_REQUEST;
            env.state_request = &state_request;
            break;
        case DRV_CMD_STATE_REPLY:
            ARENA_MESSAGES (self, Drover__StateEntry, DROVER__STATE_ENTRY__INIT, n, state_reply.entries);
            if (!state_reply.entries)
                return -1;
            state_reply.n_entries = n;
            for (size_t i = 0; i < n; i++) {
                state_reply.entries [i]->key.data = (uint8_t *) msg->entries [i].key;
                state_reply.entries [i]->key.len = msg->entries [i].key_size;
                state_reply.entries [i]->version = msg->entries [i].version;
            }
            state_reply.code = (Drover__Code) msg->state_reply.code;
            state_reply.message = (char *) s_str (msg->state_reply.message);
            state_reply.seq = msg->state_reply.seq;
            env.body_case = DROVER__ENVELOPE__BODY_STATE_REPLY;
            env.state_reply = &state_reply;
            break;
        case DRV_CMD_STATE_UPDATE:
            state_update.ns = (char *) s_str (msg->update.ns);
            state_update.seq = msg->update.seq;
            state_update.key.data = (uint8_t *) msg->update.key;
            state_update.key.len = msg->update.key_size;
            state_update.version = msg->update.version;
            state_update.deleted = msg->update.deleted;
            env.body_case = DROVER__ENVELOPE__BODY_STATE_UPDATE;
            env.state_update = &state_update;
            break;
        case DRV_CMD_SYNC_REQUEST:
            sync_request.op = (Drover__SyncOp) msg->sync.op;
            sync_request.name = (char *) s_str (msg->sync.name);
            sync_request.timeout_ms = msg->sync.timeout_ms;
            sync_request.count = msg->sync.count;
            env.body_case = DROVER__ENVELOPE__BODY_SYNC_REQUEST;
            env.sync_request = &sync_request;
            break;
        case DRV_CMD_SYNC_REPLY:
            sync_reply.code = (Drover__Code) msg->sync_reply.code;
            sync_reply.message = (char *) s_str (msg->sync_reply.message);
            sync_reply.fence = msg->sync_reply.fence;
            sync_reply.value = msg->sync_reply.value;
            env.body_case = DROVER__ENVELOPE__BODY_SYNC_REPLY;
            env.sync_reply = &sync_reply;
            break;
        default:
            return -1;
    }
    size_t size = drover__envelope__get_packed_size (&env);
    if (zmq_msg_init_size (frame, size))
        return -1;
    drover__envelope__pack (&env, (uint8_t *) zmq_msg_data (frame));
    return 0;
}
