/*  seeds.h - valid inputs from which the envelope and broker fuzzers start.

    Two kinds of seed:

    - envelope seeds: one valid encoding of every command, with every list
      and string field filled in, for the codec fuzzer (fuzz_codec);
    - broker seeds: whole conversations in the broker fuzzer's input format
      (below), one per command the broker handles, each a short exchange a
      real peer could have: hello, submit, report, query, cancel, credit,
      state, sync, queue control, dead letters, bye, and malformed variants.

    Broker fuzzer input format (fuzz_broker.c):

        byte 0      flags: bit 0 = talk to the worker endpoint (else the
                    client endpoint); bit 1 = the harness sends a valid
                    Hello first; bit 2 = use a fresh connection for this
                    input (else the long-lived one of that endpoint)
        then        messages, each: one byte n (frames, n & 15), then n
                    frames, each a 16-bit little-endian length and that
                    many bytes. A short tail ends the input.

    Header-only: included by fuzz_broker.c and the seed writer.
*/
#ifndef HOSTILE_SEEDS_H_INCLUDED
#define HOSTILE_SEEDS_H_INCLUDED

#include "codec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED_WORKER     1
#define SEED_HELLO      2
#define SEED_FRESH      4

//  Called for each seed; name is a short label, unique per kind.
typedef void (seed_fn) (const char *name, const uint8_t *data, size_t size, void *arg);

//  A growing byte buffer for one broker seed.
typedef struct {
    uint8_t data [8192];        //  the input being built
    size_t size;                //  bytes used
} seed_buf_t;

static inline void
seed_begin (seed_buf_t *buf, uint8_t flags)
{
    buf->size = 0;
    buf->data [buf->size++] = flags;
}

//  Appends a message header announcing frames frames.
static inline void
seed_message (seed_buf_t *buf, unsigned frames)
{
    if (buf->size < sizeof buf->data)
        buf->data [buf->size++] = (uint8_t) frames;
}

static inline void
seed_frame (seed_buf_t *buf, const void *data, size_t size)
{
    if (buf->size + 2 + size > sizeof buf->data)
        return;
    buf->data [buf->size++] = (uint8_t) size;
    buf->data [buf->size++] = (uint8_t) (size >> 8);
    memcpy (buf->data + buf->size, data, size);
    buf->size += size;
}

//  Encodes msg as the envelope frame of a new message with payloads
//  payload frames (all the same text) after it.
static inline void
seed_msg (seed_buf_t *buf, drv_codec_t *codec, const drv_msg_t *msg,
          unsigned payloads, const char *payload)
{
    zmq_msg_t frame;
    if (drv_codec_encode (codec, msg, &frame) != 0)
        abort ();               //  the seeds are built from valid messages
    seed_message (buf, 1 + payloads);
    seed_frame (buf, zmq_msg_data (&frame), zmq_msg_size (&frame));
    for (unsigned i = 0; i < payloads; i++)
        seed_frame (buf, payload, strlen (payload));
    zmq_msg_close (&frame);
    drv_codec_reset (codec);
}

//  Fixed ids so that seeds refer to each other's jobs.
static inline void
seed_id (uint8_t id [DRV_ID_SIZE], unsigned n)
{
    memset (id, 0, DRV_ID_SIZE);
    id [0] = 0xd7;
    id [15] = (uint8_t) n;
}

//  A message of every command with every field set, for the codec.
static inline void
seed_full_msg (drv_msg_t *msg, drv_cmd_t cmd, uint64_t corr)
{
    static uint8_t ids [3][DRV_ID_SIZE];
    static drv_jobspec_t specs [2];
    static drv_joback_t acks [2];
    static drv_job_t jobs [2];
    static drv_result_t results [2];
    static drv_jobinfo_t infos [2];
    static drv_queue_stats_t queues [2];
    static drv_progress_t progress [2];
    static drv_state_entry_t entries [2];
    static drv_peer_info_t peers [2];
    static const char *names [2] = {"alpha", "beta.2"};
    for (unsigned i = 0; i < 3; i++)
        seed_id (ids [i], i + 1);
    for (unsigned i = 0; i < 2; i++) {
        memcpy (specs [i].id, ids [i], DRV_ID_SIZE);
        specs [i].queue = names [i];
        specs [i].priority = (int32_t) (i * 9);
        specs [i].timeout_ms = 1000;
        specs [i].max_attempts = 2;
        specs [i].delay_ms = i * 10;
        specs [i].run_at_ms = 0;
        specs [i].backoff_ms = 5;
        specs [i].result_ttl_s = 60;
        memcpy (acks [i].id, ids [i], DRV_ID_SIZE);
        acks [i].code = i? DRV_CODE_LIMIT: DRV_CODE_OK;
        acks [i].message = i? "full": "";
        acks [i].duplicate = i == 1;
        memcpy (jobs [i].id, ids [i], DRV_ID_SIZE);
        jobs [i].queue = names [i];
        jobs [i].attempt = 1 + i;
        jobs [i].timeout_ms = 500;
        jobs [i].submitter = "rq>dW3JsBcH!@Es6%F5]4}Sy[o4O#e+n7$oZ5vT";
        memcpy (results [i].id, ids [i], DRV_ID_SIZE);
        results [i].state = i? DRV_JOB_FAILED: DRV_JOB_DONE;
        results [i].error = i? "boom": "";
        results [i].attempts = 1;
        results [i].no_retry = i == 1;
        memcpy (infos [i].id, ids [i], DRV_ID_SIZE);
        infos [i].state = DRV_JOB_RUNNING;
        infos [i].queue = names [i];
        infos [i].attempts = 2;
        infos [i].error = "late";
        infos [i].created_ms = 1700000000000ULL;
        infos [i].finished_ms = 1700000000500ULL;
        infos [i].priority = 3;
        infos [i].payload_size = 40;
        infos [i].progress = 50;
        infos [i].progress_message = "half";
        infos [i].submitter = "key";
        queues [i].name = names [i];
        queues [i].queued = 4;
        queues [i].scheduled = 1;
        queues [i].running = 2;
        queues [i].submitted = 10;
        queues [i].done = 3;
        queues [i].failed = 1;
        queues [i].retried = 1;
        queues [i].workers = 2;
        queues [i].paused = i == 1;
        queues [i].dead = 1;
        queues [i].submit_rate = 1.5;
        queues [i].done_rate = 0.5;
        memcpy (progress [i].id, ids [i], DRV_ID_SIZE);
        progress [i].percent = 30;
        progress [i].message = "going";
        entries [i].key = (const uint8_t *) names [i];
        entries [i].key_size = strlen (names [i]);
        entries [i].version = 7;
        peers [i].kind = i? DRV_PEER_WORKER: DRV_PEER_CLIENT;
        peers [i].name = names [i];
        peers [i].key = "key";
        peers [i].role = i? "worker": "producer";
        peers [i].queues = names;
        peers [i].queue_count = i? 2: 0;
        peers [i].credit = 5;
        peers [i].inflight = 1;
        peers [i].connected_ms = 1700000000000ULL;
        peers [i].idle_ms = 12;
    }
    drv_msg_init (msg, cmd, corr);
    msg->hello.kind = DRV_PEER_WORKER;
    memcpy (msg->hello.session, ids [2], DRV_ID_SIZE);
    msg->hello.name = "seed";
    msg->hello.queues = names;
    msg->hello.queue_count = 2;
    msg->hello.credit = 8;
    msg->hello.version_min = 1;
    msg->hello.version_max = 1;
    memcpy (msg->welcome.broker_id, ids [0], DRV_ID_SIZE);
    msg->welcome.version = 1;
    msg->welcome.heartbeat_ms = 1000;
    msg->welcome.max_payload = 1 << 20;
    msg->welcome.max_batch = 100;
    msg->welcome.role = "admin";
    msg->welcome.state_port = 5557;
    msg->welcome.max_value = 1 << 20;
    msg->error.code = DRV_CODE_UNKNOWN_JOB;
    msg->error.message = "no such job";
    msg->error.ids = ids;
    msg->error.id_count = 2;
    msg->query.want_result = true;
    msg->query.watch = true;
    msg->credit = 16;
    msg->queue_control.queue = "alpha";
    msg->queue_control.action = DRV_QUEUE_PAUSE;
    msg->dead.queue = "alpha";
    msg->dead.action = DRV_DEAD_LIST;
    msg->dead.limit = 10;
    msg->state.op = DRV_STATE_CAS;
    msg->state.ns = "ns";
    msg->state.key = (const uint8_t *) "key";
    msg->state.key_size = 3;
    msg->state.expect_version = 2;
    msg->state.delta = -5;
    msg->state.limit = 20;
    msg->state_reply.code = DRV_CODE_CONFLICT;
    msg->state_reply.message = "version";
    msg->state_reply.seq = 99;
    msg->update.ns = "ns";
    msg->update.seq = 100;
    msg->update.key = (const uint8_t *) "key";
    msg->update.key_size = 3;
    msg->update.version = 3;
    msg->update.deleted = true;
    msg->sync.op = DRV_SYNC_BARRIER_WAIT;
    msg->sync.name = "gate";
    msg->sync.timeout_ms = 100;
    msg->sync.count = 3;
    msg->sync_reply.code = DRV_CODE_TIMEOUT;
    msg->sync_reply.message = "late";
    msg->sync_reply.fence = 12;
    msg->sync_reply.value = 1;
    msg->stats.workers = 1;
    msg->stats.clients = 2;
    msg->stats.uptime_ms = 1000;
    msg->stats.jobs_stored = 3;
    msg->stats.peers = peers;
    msg->stats.peer_count = 2;
    msg->specs = specs;
    msg->acks = acks;
    msg->jobs = jobs;
    msg->results = results;
    msg->infos = infos;
    msg->ids = ids;
    msg->queues = queues;
    msg->progress = progress;
    msg->entries = entries;
    msg->count = 2;
    if (cmd == DRV_CMD_STATE_REQUEST)
        msg->count = 1;
}

//  Every command, fully populated, encoded once.
static inline void
seeds_envelopes (seed_fn *emit, void *arg)
{
    drv_codec_t *codec = drv_codec_new ();
    for (int cmd = DRV_CMD_HELLO; cmd < DRV_CMD_COUNT_; cmd++) {
        drv_msg_t msg;
        seed_full_msg (&msg, (drv_cmd_t) cmd, (uint64_t) cmd * 1000 + 7);
        zmq_msg_t frame;
        if (drv_codec_encode (codec, &msg, &frame) != 0)
            abort ();
        char name [64];
        snprintf (name, sizeof name, "env-%s", drv_cmd_name ((drv_cmd_t) cmd));
        emit (name, zmq_msg_data (&frame), zmq_msg_size (&frame), arg);
        zmq_msg_close (&frame);
        drv_codec_reset (codec);
    }
    drv_codec_destroy (&codec);
}

//  Conversations with the broker, one or more per command it handles.
static inline void
seeds_broker (seed_fn *emit, void *arg)
{
    drv_codec_t *codec = drv_codec_new ();
    seed_buf_t *buf = (seed_buf_t *) malloc (sizeof (seed_buf_t));
    drv_msg_t msg;
    uint8_t ids [4][DRV_ID_SIZE];
    for (unsigned i = 0; i < 4; i++)
        seed_id (ids [i], 0x40 + i);
    drv_jobspec_t specs [4];
    memset (specs, 0, sizeof specs);
    for (unsigned i = 0; i < 4; i++) {
        memcpy (specs [i].id, ids [i], DRV_ID_SIZE);
        specs [i].queue = "q";
        specs [i].priority = (int32_t) i;
        specs [i].max_attempts = 2;
        specs [i].backoff_ms = 1;
        specs [i].timeout_ms = 200;
    }
    drv_result_t results [4];
    memset (results, 0, sizeof results);
    for (unsigned i = 0; i < 4; i++) {
        memcpy (results [i].id, ids [i], DRV_ID_SIZE);
        results [i].state = i % 2? DRV_JOB_FAILED: DRV_JOB_DONE;
        results [i].error = i % 2? "failed": "";
        results [i].no_retry = i == 3;
    }
    const char *queues [2] = {"q", "other"};

    //  Client: submit a batch, then ask about it, watch it, cancel part
    seed_begin (buf, SEED_HELLO);
    drv_msg_init (&msg, DRV_CMD_SUBMIT, 11);
    msg.specs = specs;
    msg.count = 4;
    seed_msg (buf, codec, &msg, 4, "payload");
    drv_msg_init (&msg, DRV_CMD_QUERY, 12);
    msg.ids = ids;
    msg.count = 4;
    msg.query.want_result = true;
    msg.query.watch = true;
    seed_msg (buf, codec, &msg, 0, "");
    drv_msg_init (&msg, DRV_CMD_CANCEL, 13);
    msg.ids = ids;
    msg.count = 2;
    seed_msg (buf, codec, &msg, 0, "");
    emit ("submit-query-cancel", buf->data, buf->size, arg);

    //  Client: delayed and scheduled jobs with every option
    seed_begin (buf, SEED_HELLO | SEED_FRESH);
    drv_msg_init (&msg, DRV_CMD_SUBMIT, 14);
    specs [0].delay_ms = 50;
    specs [1].run_at_ms = 1;
    specs [2].result_ttl_s = 1;
    msg.specs = specs;
    msg.count = 3;
    seed_msg (buf, codec, &msg, 3, "x");
    emit ("submit-options", buf->data, buf->size, arg);
    specs [0].delay_ms = 0;
    specs [1].run_at_ms = 0;
    specs [2].result_ttl_s = 0;

    //  Client: submit with too few payload frames, and without a Hello
    seed_begin (buf, 0);
    drv_msg_init (&msg, DRV_CMD_SUBMIT, 15);
    msg.specs = specs;
    msg.count = 2;
    seed_msg (buf, codec, &msg, 1, "short");
    emit ("submit-frames", buf->data, buf->size, arg);

    //  Worker: hello with queues and credit, then report, progress, credit
    seed_begin (buf, SEED_WORKER);
    drv_msg_init (&msg, DRV_CMD_HELLO, 20);
    msg.hello.kind = DRV_PEER_WORKER;
    seed_id (msg.hello.session, 0x20);
    msg.hello.name = "seed-worker";
    msg.hello.queues = queues;
    msg.hello.queue_count = 2;
    msg.hello.credit = 4;
    seed_msg (buf, codec, &msg, 0, "");
    drv_msg_init (&msg, DRV_CMD_CREDIT, 21);
    msg.credit = 100;
    seed_msg (buf, codec, &msg, 0, "");
    drv_msg_init (&msg, DRV_CMD_PROGRESS, 22);
    drv_progress_t progress [1];
    memcpy (progress [0].id, ids [0], DRV_ID_SIZE);
    progress [0].percent = 40;
    progress [0].message = "on its way";
    msg.progress = progress;
    msg.count = 1;
    seed_msg (buf, codec, &msg, 0, "");
    drv_msg_init (&msg, DRV_CMD_REPORT, 23);
    msg.results = results;
    msg.count = 4;
    seed_msg (buf, codec, &msg, 4, "result");
    drv_msg_init (&msg, DRV_CMD_HEARTBEAT, 24);
    seed_msg (buf, codec, &msg, 0, "");
    drv_msg_init (&msg, DRV_CMD_BYE, 25);
    seed_msg (buf, codec, &msg, 0, "");
    emit ("worker-cycle", buf->data, buf->size, arg);

    //  Worker: report for jobs it never had, with a harness Hello
    seed_begin (buf, SEED_WORKER | SEED_HELLO);
    drv_msg_init (&msg, DRV_CMD_REPORT, 26);
    msg.results = results + 2;
    msg.count = 2;
    seed_msg (buf, codec, &msg, 2, "r");
    emit ("report-unknown", buf->data, buf->size, arg);

    //  Worker: a client command on the worker endpoint
    seed_begin (buf, SEED_WORKER | SEED_HELLO);
    drv_msg_init (&msg, DRV_CMD_SUBMIT, 27);
    msg.specs = specs;
    msg.count = 1;
    seed_msg (buf, codec, &msg, 1, "p");
    emit ("worker-submit", buf->data, buf->size, arg);

    //  Client: stats, queue control, dead letters
    seed_begin (buf, SEED_HELLO);
    drv_msg_init (&msg, DRV_CMD_STATS, 30);
    seed_msg (buf, codec, &msg, 0, "");
    drv_msg_init (&msg, DRV_CMD_QUEUE_CONTROL, 31);
    msg.queue_control.queue = "q";
    msg.queue_control.action = DRV_QUEUE_PAUSE;
    seed_msg (buf, codec, &msg, 0, "");
    drv_msg_init (&msg, DRV_CMD_QUEUE_CONTROL, 32);
    msg.queue_control.queue = "q";
    msg.queue_control.action = DRV_QUEUE_RESUME;
    seed_msg (buf, codec, &msg, 0, "");
    for (int action = DRV_DEAD_LIST; action <= DRV_DEAD_PURGE; action++) {
        drv_msg_init (&msg, DRV_CMD_DEAD_LETTER, 33 + (uint64_t) action);
        msg.dead.queue = "q";
        msg.dead.action = (drv_dead_action_t) action;
        msg.dead.limit = 5;
        msg.ids = ids;
        msg.count = action == DRV_DEAD_LIST? 0: 2;
        seed_msg (buf, codec, &msg, 0, "");
    }
    emit ("admin", buf->data, buf->size, arg);

    //  Client: every shared-state operation
    seed_begin (buf, SEED_HELLO);
    for (int op = DRV_STATE_GET; op <= DRV_STATE_SNAPSHOT; op++) {
        drv_msg_init (&msg, DRV_CMD_STATE_REQUEST, 40 + (uint64_t) op);
        msg.state.op = (drv_state_op_t) op;
        msg.state.ns = "ns";
        msg.state.key = (const uint8_t *) (op == DRV_STATE_INCR? "counter": "key");
        msg.state.key_size = op == DRV_STATE_INCR? 7: 3;
        msg.state.expect_version = 1;
        msg.state.delta = 3;
        msg.state.limit = 10;
        msg.count = 1;
        seed_msg (buf, codec, &msg, 1, op == DRV_STATE_INCR? "41": "value");
    }
    emit ("state", buf->data, buf->size, arg);

    //  Client: every sync operation, waits included
    seed_begin (buf, SEED_HELLO | SEED_FRESH);
    for (int op = DRV_SYNC_LOCK; op <= DRV_SYNC_BARRIER_WAIT; op++) {
        drv_msg_init (&msg, DRV_CMD_SYNC_REQUEST, 50 + (uint64_t) op);
        msg.sync.op = (drv_sync_op_t) op;
        msg.sync.name = "gate";
        msg.sync.timeout_ms = 20;
        msg.sync.count = 2;
        seed_msg (buf, codec, &msg, 0, "");
    }
    emit ("sync", buf->data, buf->size, arg);

    //  Client: Hello of the wrong kind, a bad version, then garbage frames
    seed_begin (buf, 0);
    drv_msg_init (&msg, DRV_CMD_HELLO, 60);
    msg.hello.kind = DRV_PEER_WORKER;
    seed_id (msg.hello.session, 0x60);
    msg.hello.queues = queues;
    msg.hello.queue_count = 1;
    seed_msg (buf, codec, &msg, 0, "");
    drv_msg_init (&msg, DRV_CMD_HELLO, 61);
    msg.version = 9;
    msg.hello.kind = DRV_PEER_CLIENT;
    seed_id (msg.hello.session, 0x61);
    seed_msg (buf, codec, &msg, 0, "");
    seed_message (buf, 3);
    seed_frame (buf, "\x08\x01\x92\x01", 4);
    seed_frame (buf, "", 0);
    seed_frame (buf, "\xff\xff\xff", 3);
    emit ("bad-hello", buf->data, buf->size, arg);

    //  Every command the broker only sends, arriving from a peer
    for (int cmd = DRV_CMD_HELLO; cmd < DRV_CMD_COUNT_; cmd++) {
        seed_begin (buf, (uint8_t) (SEED_HELLO | (cmd % 2? SEED_WORKER: 0)));
        seed_full_msg (&msg, (drv_cmd_t) cmd, 70 + (uint64_t) cmd);
        if (cmd == DRV_CMD_HELLO)
            msg.hello.kind = cmd % 2? DRV_PEER_WORKER: DRV_PEER_CLIENT;
        seed_msg (buf, codec, &msg, drv_cmd_has_payloads ((drv_cmd_t) cmd)? (unsigned) msg.count: 0, "z");
        char name [64];
        snprintf (name, sizeof name, "any-%s", drv_cmd_name ((drv_cmd_t) cmd));
        emit (name, buf->data, buf->size, arg);
    }
    free (buf);
    drv_codec_destroy (&codec);
}

#endif
