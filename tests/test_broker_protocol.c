/*  test_broker_protocol.c - the broker actor against hand-made peers.

    Runs the broker in process on 127.0.0.1 with OS-chosen ports and speaks
    the wire protocol directly through raw DEALER sockets and the codec, so
    every rule of docs/PROTOCOL.md can be checked, bad input included,
    without the SDK in the way.
*/
#include "broker.h"
#include "codec.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#define CHECK(cond) \
    do { if (!(cond)) { fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); exit (1); } } while (0)

static char *s_producers, *s_workers;
static drv_codec_t *s_codec;
static uint64_t s_corr = 1;

typedef struct {
    void *socket;           //  raw DEALER
    uint8_t session [16];   //  session id sent in Hello
    bool silent;            //  does not heartbeat (plays dead)
    bool welcomed;          //  has a session (only then does it beat)
} peer_t;

//  Live test peers, kept alive with heartbeats while the test waits.
static peer_t *s_live [16];
static size_t s_live_count;
static uint64_t s_last_beat;

static void
s_beat_all (void)
{
    if (drv_now_ms () - s_last_beat < 60)
        return;
    s_last_beat = drv_now_ms ();
    //  A bare Heartbeat envelope: version 1, heartbeat body (field 18, empty)
    static const uint8_t beat [] = {0x08, 0x01, 0x92, 0x01, 0x00};
    for (size_t i = 0; i < s_live_count; i++)
        if (s_live [i]->socket && s_live [i]->welcomed && !s_live [i]->silent)
            zmq_send (s_live [i]->socket, beat, sizeof beat, ZMQ_DONTWAIT);
}

static peer_t
s_peer_new (const char *endpoint)
{
    peer_t peer;
    static void *ctx = NULL;
    if (!ctx)
        ctx = zmq_ctx_new ();
    peer.socket = zmq_socket (ctx, ZMQ_DEALER);
    CHECK (peer.socket && zmq_connect (peer.socket, endpoint) == 0);
    int timeout = 3000;
    zmq_setsockopt (peer.socket, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    drv_random_id (peer.session);
    peer.silent = false;
    peer.welcomed = false;
    return peer;
}

static void
s_live_add (peer_t *peer)
{
    CHECK (s_live_count < 16);
    s_live [s_live_count++] = peer;
}

static void
s_close (peer_t *peer)
{
    zmq_close (peer->socket);
    peer->socket = NULL;
}

//  Sends msg with count payload frames given as strings.
static void
s_send (peer_t *peer, drv_msg_t *msg, const char **payloads, size_t count)
{
    zmq_msg_t envelope;
    CHECK (drv_codec_encode (s_codec, msg, &envelope) == 0);
    drv_codec_reset (s_codec);
    zmq_msg_t frames [64];
    CHECK (count <= 64);
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen (payloads [i]);
        zmq_msg_init_size (&frames [i], len);
        memcpy (zmq_msg_data (&frames [i]), payloads [i], len);
    }
    CHECK (drv_send (peer->socket, NULL, &envelope, frames, count, false) == 0);
}

static void
s_send_raw (peer_t *peer, const void *data, size_t size, int more)
{
    CHECK (zmq_send (peer->socket, data, size, more? ZMQ_SNDMORE: 0) == (int) size);
}

//  Receives the next message that is not a Heartbeat; payload frames stay
//  in frames. Fails the test on timeout.
static drv_frames_t s_frames;

static drv_msg_t
s_recv (peer_t *peer)
{
    uint64_t end = drv_now_ms () + 3000;
    while (true) {
        s_beat_all ();
        zmq_pollitem_t item = {peer->socket, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 20) <= 0) {
            CHECK (drv_now_ms () < end);
            continue;
        }
        int total = drv_frames_recv (peer->socket, &s_frames, 0, 1000);
        CHECK (total >= 1);
        drv_msg_t msg;
        CHECK (drv_codec_decode (s_codec, zmq_msg_data (&s_frames.msg [0]),
                                 zmq_msg_size (&s_frames.msg [0]), &msg) == 0);
        if (msg.cmd != DRV_CMD_HEARTBEAT)
            return msg;
    }
}

//  Reads exactly one waiting message, heartbeats included.
static drv_msg_t
s_recv_one (peer_t *peer)
{
    CHECK (drv_frames_recv (peer->socket, &s_frames, 0, 1000) >= 1);
    drv_msg_t msg;
    CHECK (drv_codec_decode (s_codec, zmq_msg_data (&s_frames.msg [0]),
                             zmq_msg_size (&s_frames.msg [0]), &msg) == 0);
    return msg;
}

//  True if nothing but heartbeats arrives within ms.
static bool
s_quiet (peer_t *peer, int ms)
{
    uint64_t end = drv_now_ms () + ms;
    while (drv_now_ms () < end) {
        s_beat_all ();
        zmq_pollitem_t item = {peer->socket, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 50) > 0) {
            drv_msg_t msg = s_recv_one (peer);
            if (msg.cmd != DRV_CMD_HEARTBEAT)
                return false;
        }
    }
    return true;
}

static const char *
s_payload (size_t index, size_t *size)
{
    //  Payload frames follow the envelope
    *size = zmq_msg_size (&s_frames.msg [1 + index]);
    return (const char *) zmq_msg_data (&s_frames.msg [1 + index]);
}

static drv_msg_t
s_hello (peer_t *peer, drv_peer_kind_t kind, const char *queue, uint32_t credit)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_HELLO, s_corr++);
    msg.hello.kind = kind;
    memcpy (msg.hello.session, peer->session, 16);
    msg.hello.name = kind == DRV_PEER_WORKER? "test-worker": "test-client";
    const char *queues [1] = {queue};
    if (queue) {
        msg.hello.queues = queues;
        msg.hello.queue_count = 1;
    }
    msg.hello.credit = credit;
    s_send (peer, &msg, NULL, 0);
    msg = s_recv (peer);
    if (msg.cmd == DRV_CMD_WELCOME)
        peer->welcomed = true;
    return msg;
}

static void
s_ids (uint8_t ids [][16], size_t n)
{
    for (size_t i = 0; i < n; i++)
        drv_random_id (ids [i]);
}

//  Submits n jobs with given payloads; returns the ack message.
static drv_msg_t
s_submit (peer_t *client, uint8_t ids [][16], const char **payloads, size_t n,
          const char *queue, const drv_jobspec_t *options)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_SUBMIT, s_corr++);
    drv_jobspec_t specs [64];
    for (size_t i = 0; i < n; i++) {
        if (options)
            specs [i] = *options;
        else
            memset (&specs [i], 0, sizeof specs [i]);
        memcpy (specs [i].id, ids [i], 16);
        specs [i].queue = queue;
    }
    msg.specs = specs;
    msg.count = n;
    s_send (client, &msg, payloads, n);
    return s_recv (client);
}

static void
s_report (peer_t *worker, const uint8_t *id, drv_job_state_t state, const char *payload,
          const char *error)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_REPORT, 0);
    drv_result_t result = {{0}, state, error? error: "", 0, false};
    memcpy (result.id, id, 16);
    msg.results = &result;
    msg.count = 1;
    const char *payloads [1] = {payload? payload: ""};
    s_send (worker, &msg, payloads, 1);
}

static drv_msg_t
s_query (peer_t *client, const uint8_t *id, bool want_result, bool watch)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_QUERY, s_corr++);
    uint8_t ids [1][16];
    memcpy (ids [0], id, 16);
    msg.ids = ids;
    msg.count = 1;
    msg.query.want_result = want_result;
    msg.query.watch = watch;
    s_send (client, &msg, NULL, 0);
    drv_msg_t reply;
    do
        reply = s_recv (client);
    while (reply.cmd == DRV_CMD_DELIVER);
    return reply;
}

static void
test_handshake_and_bad_input (void)
{
    s_live_count = 0;
    peer_t client = s_peer_new (s_producers);
    s_live_add (&client);

    //  Anything before Hello: re-hello
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_STATS, 77);
    s_send (&client, &msg, NULL, 0);
    msg = s_recv (&client);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_REHELLO && msg.corr == 77);

    //  Garbage envelope: bad request, connection still served
    s_send_raw (&client, "\xff\xff\xff garbage", 12, 0);
    msg = s_recv (&client);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_BAD_REQUEST);

    //  Wrong kind on this endpoint
    msg = s_hello (&client, DRV_PEER_WORKER, "q", 1);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_UNKNOWN_COMMAND);

    //  Unsupported version
    drv_msg_init (&msg, DRV_CMD_HELLO, 5);
    msg.version = 9;
    msg.hello.kind = DRV_PEER_CLIENT;
    memcpy (msg.hello.session, client.session, 16);
    s_send (&client, &msg, NULL, 0);
    msg = s_recv (&client);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_BAD_VERSION);
    CHECK (strstr (msg.error.message, "version 1"));

    //  A proper Hello
    msg = s_hello (&client, DRV_PEER_CLIENT, NULL, 0);
    CHECK (msg.cmd == DRV_CMD_WELCOME);
    CHECK (msg.welcome.version == 1 && msg.welcome.heartbeat_ms == 200);
    CHECK (msg.welcome.max_payload == 1000 && msg.welcome.max_batch == 50);
    CHECK (streq (msg.welcome.role, "admin"));

    //  Worker commands are not for clients
    drv_msg_init (&msg, DRV_CMD_CREDIT, 9);
    msg.credit = 5;
    s_send (&client, &msg, NULL, 0);
    msg = s_recv (&client);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_UNKNOWN_COMMAND && msg.corr == 9);

    //  Frame count must match the job list
    uint8_t ids [60][16];
    s_ids (ids, 60);
    drv_jobspec_t specs [2];
    memset (specs, 0, sizeof specs);
    memcpy (specs [0].id, ids [0], 16);
    memcpy (specs [1].id, ids [1], 16);
    specs [0].queue = specs [1].queue = "q";
    drv_msg_init (&msg, DRV_CMD_SUBMIT, 11);
    msg.specs = specs;
    msg.count = 2;
    const char *one [1] = {"x"};
    s_send (&client, &msg, one, 1);
    msg = s_recv (&client);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_BAD_REQUEST && msg.corr == 11);

    //  Per-job refusals: bad queue, oversized payload, bad priority; the good one passes
    char big [1200];
    memset (big, 'b', sizeof big - 1);
    big [sizeof big - 1] = 0;
    const char *payloads [3] = {"fine", big, "x"};
    drv_jobspec_t options;
    memset (&options, 0, sizeof options);
    msg = s_submit (&client, ids, payloads, 2, "q", &options);
    CHECK (msg.cmd == DRV_CMD_SUBMIT_ACK && msg.count == 2);
    CHECK (msg.acks [0].code == DRV_CODE_OK && !msg.acks [0].duplicate);
    CHECK (msg.acks [1].code == DRV_CODE_TOO_LARGE);
    msg = s_submit (&client, ids + 2, payloads, 1, "bad queue name!", NULL);
    CHECK (msg.acks [0].code == DRV_CODE_UNKNOWN_QUEUE);
    options.priority = 10;
    msg = s_submit (&client, ids + 3, payloads, 1, "q", &options);
    CHECK (msg.acks [0].code == DRV_CODE_BAD_REQUEST);

    //  Too many jobs in one message
    const char *many [51];
    for (int i = 0; i < 51; i++)
        many [i] = "m";
    drv_jobspec_t many_specs [51];
    memset (many_specs, 0, sizeof many_specs);
    for (int i = 0; i < 51; i++) {
        drv_random_id (many_specs [i].id);
        many_specs [i].queue = "q";
    }
    drv_msg_init (&msg, DRV_CMD_SUBMIT, 12);
    msg.specs = many_specs;
    msg.count = 51;
    zmq_msg_t envelope;
    CHECK (drv_codec_encode (s_codec, &msg, &envelope) == 0);
    drv_codec_reset (s_codec);
    zmq_msg_t frames [51];
    for (int i = 0; i < 51; i++) {
        zmq_msg_init_size (&frames [i], 1);
        memcpy (zmq_msg_data (&frames [i]), many [i], 1);
    }
    CHECK (drv_send (client.socket, NULL, &envelope, frames, 51, false) == 0);
    msg = s_recv (&client);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_TOO_LARGE && msg.corr == 12);

    //  Duplicate: same id again is acknowledged, not enqueued twice
    msg = s_submit (&client, ids, payloads, 1, "q", NULL);
    CHECK (msg.acks [0].code == DRV_CODE_OK && msg.acks [0].duplicate);

    //  Unknown job id
    uint8_t unknown [16];
    drv_random_id (unknown);
    msg = s_query (&client, unknown, true, false);
    CHECK (msg.cmd == DRV_CMD_QUERY_REPLY && msg.count == 1 && msg.infos [0].state == DRV_JOB_UNKNOWN);

    //  Stats: one job queued on q, submitted once
    drv_msg_init (&msg, DRV_CMD_STATS, 13);
    s_send (&client, &msg, NULL, 0);
    msg = s_recv (&client);
    CHECK (msg.cmd == DRV_CMD_STATS_REPLY);
    bool found = false;
    for (size_t i = 0; i < msg.count; i++)
        if (streq (msg.queues [i].name, "q")) {
            CHECK (msg.queues [i].queued == 1 && msg.queues [i].submitted == 1);
            found = true;
        }
    CHECK (found);

    //  Cancel the queued job: its owner hears about it
    drv_msg_init (&msg, DRV_CMD_CANCEL, 14);
    uint8_t cancel_ids [1][16];
    memcpy (cancel_ids [0], ids [0], 16);
    msg.ids = cancel_ids;
    msg.count = 1;
    s_send (&client, &msg, NULL, 0);
    bool replied = false, delivered = false;
    for (int i = 0; i < 2; i++) {
        msg = s_recv (&client);
        if (msg.cmd == DRV_CMD_QUERY_REPLY) {
            CHECK (msg.infos [0].state == DRV_JOB_CANCELLED);
            replied = true;
        }
        if (msg.cmd == DRV_CMD_DELIVER) {
            CHECK (msg.results [0].state == DRV_JOB_CANCELLED);
            delivered = true;
        }
    }
    CHECK (replied && delivered);
    s_close (&client);
}

static void
test_job_path (void)
{
    s_live_count = 0;
    peer_t client = s_peer_new (s_producers);
    s_live_add (&client);
    peer_t worker = s_peer_new (s_workers);
    s_live_add (&worker);
    drv_msg_t msg = s_hello (&client, DRV_PEER_CLIENT, NULL, 0);
    CHECK (msg.cmd == DRV_CMD_WELCOME);
    msg = s_hello (&worker, DRV_PEER_WORKER, "path", 2);
    CHECK (msg.cmd == DRV_CMD_WELCOME);

    //  Five jobs; credit 2 means exactly two arrive
    uint8_t ids [5][16];
    s_ids (ids, 5);
    const char *payloads [5] = {"p0", "p1", "p2", "p3", "p4"};
    msg = s_submit (&client, ids, payloads, 5, "path", NULL);
    for (int i = 0; i < 5; i++)
        CHECK (msg.acks [i].code == DRV_CODE_OK);
    size_t got = 0;
    uint8_t running [5][16];
    while (got < 2) {
        msg = s_recv (&worker);
        CHECK (msg.cmd == DRV_CMD_DISPATCH);
        for (size_t i = 0; i < msg.count; i++) {
            size_t size;
            const char *data = s_payload (i, &size);
            CHECK (size == 2 && data [0] == 'p');
            CHECK (msg.jobs [i].attempt == 1 && streq (msg.jobs [i].queue, "path"));
            memcpy (running [got++], msg.jobs [i].id, 16);
        }
    }
    CHECK (got == 2);
    CHECK (s_quiet (&worker, 300));     //  no third job without credit

    //  One result: its credit brings exactly one more job
    s_report (&worker, running [0], DRV_JOB_DONE, "result-0", NULL);
    msg = s_recv (&worker);
    CHECK (msg.cmd == DRV_CMD_DISPATCH && msg.count == 1);
    memcpy (running [2], msg.jobs [0].id, 16);
    msg = s_recv (&client);
    CHECK (msg.cmd == DRV_CMD_DELIVER && msg.count == 1);
    CHECK (memcmp (msg.results [0].id, running [0], 16) == 0 && msg.results [0].state == DRV_JOB_DONE);
    size_t size;
    const char *data = s_payload (0, &size);
    CHECK (size == 8 && memcmp (data, "result-0", 8) == 0);

    //  The result stays fetchable
    msg = s_query (&client, running [0], true, false);
    CHECK (msg.infos [0].state == DRV_JOB_DONE && msg.infos [0].attempts == 1);
    data = s_payload (0, &size);
    CHECK (size == 8 && memcmp (data, "result-0", 8) == 0);

    //  A resubmit of a finished job is a duplicate and re-delivers the outcome
    uint8_t again [1][16];
    memcpy (again [0], running [0], 16);
    drv_msg_init (&msg, DRV_CMD_SUBMIT, s_corr++);
    drv_jobspec_t spec;
    memset (&spec, 0, sizeof spec);
    memcpy (spec.id, running [0], 16);
    spec.queue = "path";
    msg.specs = &spec;
    msg.count = 1;
    const char *p [1] = {"p0"};
    s_send (&client, &msg, p, 1);
    bool acked = false, redelivered = false;
    for (int i = 0; i < 2; i++) {
        msg = s_recv (&client);
        if (msg.cmd == DRV_CMD_SUBMIT_ACK)
            acked = msg.acks [0].duplicate;
        if (msg.cmd == DRV_CMD_DELIVER)
            redelivered = msg.results [0].state == DRV_JOB_DONE;
    }
    CHECK (acked && redelivered);

    //  A failure is retried (attempt 2) after the backoff, then fails for good
    s_report (&worker, running [1], DRV_JOB_FAILED, NULL, "boom");
    bool retried = false;
    uint64_t end = drv_now_ms () + 3000;
    while (!retried && drv_now_ms () < end) {
        msg = s_recv (&worker);
        CHECK (msg.cmd == DRV_CMD_DISPATCH);
        for (size_t i = 0; i < msg.count; i++) {
            if (memcmp (msg.jobs [i].id, running [1], 16) == 0) {
                CHECK (msg.jobs [i].attempt == 2);
                retried = true;
            }
            else
                s_report (&worker, msg.jobs [i].id, DRV_JOB_DONE, "ok", NULL);
        }
    }
    CHECK (retried);
    s_report (&worker, running [1], DRV_JOB_FAILED, NULL, "boom again");
    bool failed = false;
    end = drv_now_ms () + 3000;
    while (!failed && drv_now_ms () < end) {
        msg = s_recv (&client);
        if (msg.cmd == DRV_CMD_DELIVER)
            for (size_t i = 0; i < msg.count; i++)
                if (memcmp (msg.results [i].id, running [1], 16) == 0) {
                    CHECK (msg.results [i].state == DRV_JOB_FAILED);
                    CHECK (strstr (msg.results [i].error, "failed after 2 attempts: boom again"));
                    failed = true;
                }
    }
    CHECK (failed);

    //  A permanent failure is not retried
    uint8_t perm [1][16];
    s_ids (perm, 1);
    const char *pp [1] = {"perm"};
    msg = s_submit (&client, perm, pp, 1, "path", NULL);
    CHECK (msg.acks [0].code == DRV_CODE_OK);
    bool permanent = false;
    end = drv_now_ms () + 3000;
    while (!permanent && drv_now_ms () < end) {
        msg = s_recv (&worker);
        if (msg.cmd != DRV_CMD_DISPATCH)
            continue;
        for (size_t i = 0; i < msg.count; i++) {
            if (memcmp (msg.jobs [i].id, perm [0], 16) == 0) {
                drv_msg_t rep;
                drv_msg_init (&rep, DRV_CMD_REPORT, 0);
                drv_result_t r = {{0}, DRV_JOB_FAILED, "bad input", 0, true};
                memcpy (r.id, perm [0], 16);
                rep.results = &r;
                rep.count = 1;
                const char *empty [1] = {""};
                s_send (&worker, &rep, empty, 1);
                permanent = true;
            }
            else
                s_report (&worker, msg.jobs [i].id, DRV_JOB_DONE, "ok", NULL);
        }
    }
    CHECK (permanent);
    bool perm_failed = false;
    end = drv_now_ms () + 3000;
    while (!perm_failed && drv_now_ms () < end) {
        msg = s_recv (&client);
        if (msg.cmd == DRV_CMD_DELIVER)
            for (size_t i = 0; i < msg.count; i++)
                if (memcmp (msg.results [i].id, perm [0], 16) == 0) {
                    CHECK (msg.results [i].state == DRV_JOB_FAILED && msg.results [i].attempts == 1);
                    CHECK (streq (msg.results [i].error, "bad input"));
                    perm_failed = true;
                }
    }
    CHECK (perm_failed);
    s_close (&worker);
    s_close (&client);
}

//  A silent worker's jobs move to another worker once its heartbeats stop.
static void
test_dead_worker_and_timeout (void)
{
    s_live_count = 0;
    peer_t client = s_peer_new (s_producers);
    s_live_add (&client);
    peer_t silent = s_peer_new (s_workers);
    s_live_add (&silent);
    silent.silent = true;
    CHECK (s_hello (&client, DRV_PEER_CLIENT, NULL, 0).cmd == DRV_CMD_WELCOME);
    //  The silent worker's Hello is the last the broker hears from it
    uint64_t start = drv_now_ms ();
    CHECK (s_hello (&silent, DRV_PEER_WORKER, "dead", 10).cmd == DRV_CMD_WELCOME);
    uint8_t ids [3][16];
    s_ids (ids, 3);
    const char *payloads [3] = {"a", "b", "c"};
    drv_msg_t msg = s_submit (&client, ids, payloads, 3, "dead", NULL);
    CHECK (msg.acks [2].code == DRV_CODE_OK);
    msg = s_recv (&silent);
    CHECK (msg.cmd == DRV_CMD_DISPATCH && msg.count == 3);
    //  The silent worker now says nothing; a live one joins
    peer_t live = s_peer_new (s_workers);
    s_live_add (&live);
    CHECK (s_hello (&live, DRV_PEER_WORKER, "dead", 10).cmd == DRV_CMD_WELCOME);
    size_t moved = 0;
    while (moved < 3) {
        msg = s_recv (&live);
        CHECK (msg.cmd == DRV_CMD_DISPATCH);
        for (size_t i = 0; i < msg.count; i++) {
            CHECK (msg.jobs [i].attempt == 2);
            s_report (&live, msg.jobs [i].id, DRV_JOB_DONE, "moved", NULL);
            moved++;
        }
    }
    //  Heartbeat 200 ms: dead 600 ms after its Hello (not sooner), and
    //  requeued then (the upper bound only catches a worker never expired)
    uint64_t took = drv_now_ms () - start;
    CHECK (took >= 550 && took < 5000);
    size_t done = 0;
    while (done < 3) {
        msg = s_recv (&client);
        if (msg.cmd == DRV_CMD_DELIVER)
            for (size_t i = 0; i < msg.count; i++) {
                CHECK (msg.results [i].state == DRV_JOB_DONE);
                done++;
            }
    }
    //  The silent worker is unknown now: it must re-hello
    drv_msg_init (&msg, DRV_CMD_HEARTBEAT, 3);
    s_send (&silent, &msg, NULL, 0);
    msg = s_recv (&silent);
    if (msg.cmd == DRV_CMD_CANCEL)
        msg = s_recv (&silent);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_REHELLO);

    //  Per-attempt timeout: the worker keeps beating but never answers
    uint8_t slow [1][16];
    s_ids (slow, 1);
    drv_jobspec_t options;
    memset (&options, 0, sizeof options);
    options.timeout_ms = 300;
    options.max_attempts = 2;
    options.backoff_ms = 1;
    const char *sp [1] = {"slow"};
    msg = s_submit (&client, slow, sp, 1, "dead", &options);
    CHECK (msg.acks [0].code == DRV_CODE_OK);
    int dispatched = 0, cancels = 0;
    bool failed = false;
    uint64_t end = drv_now_ms () + 8000;
    zmq_pollitem_t items [2] = {{live.socket, 0, ZMQ_POLLIN, 0}, {client.socket, 0, ZMQ_POLLIN, 0}};
    //  Until the failure, and the worker's messages it can overtake, are in
    while ((!failed || dispatched < 2 || cancels < 1) && drv_now_ms () < end) {
        drv_msg_t beat;
        drv_msg_init (&beat, DRV_CMD_HEARTBEAT, 0);
        s_send (&live, &beat, NULL, 0);
        if (zmq_poll (items, 2, 100) <= 0)
            continue;
        if (items [0].revents & ZMQ_POLLIN) {
            msg = s_recv_one (&live);
            if (msg.cmd == DRV_CMD_DISPATCH)
                dispatched += (int) msg.count;
            if (msg.cmd == DRV_CMD_CANCEL)
                cancels++;
        }
        if (items [1].revents & ZMQ_POLLIN) {
            msg = s_recv_one (&client);
            if (msg.cmd == DRV_CMD_DELIVER) {
                CHECK (msg.results [0].state == DRV_JOB_FAILED);
                CHECK (strstr (msg.results [0].error, "timed out"));
                failed = true;
            }
        }
    }
    CHECK (failed && dispatched == 2 && cancels >= 1);

    //  Cancelling a running job: the reply names it, its worker is told
    uint8_t run [1][16];
    s_ids (run, 1);
    const char *rp [1] = {"run"};
    msg = s_submit (&client, run, rp, 1, "dead", NULL);
    CHECK (msg.acks [0].code == DRV_CODE_OK);
    do
        msg = s_recv (&live);
    while (msg.cmd != DRV_CMD_DISPATCH);
    CHECK (memcmp (msg.jobs [0].id, run [0], 16) == 0);
    drv_msg_init (&msg, DRV_CMD_CANCEL, 31);
    msg.ids = run;
    msg.count = 1;
    s_send (&client, &msg, NULL, 0);
    bool cancel_replied = false, cancel_delivered = false;
    while (!cancel_replied || !cancel_delivered) {
        msg = s_recv (&client);
        if (msg.cmd == DRV_CMD_QUERY_REPLY) {
            CHECK (msg.corr == 31 && msg.count == 1);
            CHECK (memcmp (msg.infos [0].id, run [0], 16) == 0);
            CHECK (msg.infos [0].state == DRV_JOB_CANCELLED);
            cancel_replied = true;
        }
        else
        if (msg.cmd == DRV_CMD_DELIVER) {
            CHECK (memcmp (msg.results [0].id, run [0], 16) == 0);
            cancel_delivered = true;
        }
    }
    msg = s_recv (&live);
    CHECK (msg.cmd == DRV_CMD_CANCEL && memcmp (msg.ids [0], run [0], 16) == 0);
    //  Its late result is ignored but returns the credit
    s_report (&live, run [0], DRV_JOB_DONE, "too late", NULL);
    msg = s_query (&client, run [0], true, false);
    CHECK (msg.infos [0].state == DRV_JOB_CANCELLED);

    //  Draining: Bye is answered, no more jobs come, held jobs still count
    drv_msg_init (&msg, DRV_CMD_BYE, 99);
    s_send (&live, &msg, NULL, 0);
    msg = s_recv (&live);
    while (msg.cmd == DRV_CMD_CANCEL)
        msg = s_recv (&live);
    CHECK (msg.cmd == DRV_CMD_BYE && msg.corr == 99);
    s_close (&silent);
    s_close (&live);
    s_close (&client);
}

//  Journal faults: an fsync that fails makes the broker refuse new jobs
//  (and take back the ones of that turn) while it keeps serving the rest;
//  once the disk works again jobs are accepted, and a restart replays
//  exactly what was acknowledged.
static volatile int s_sync_fails;

static int
s_faulty_fdatasync (int fd)
{
    if (s_sync_fails) {
        errno = EIO;
        return -1;
    }
    return fdatasync (fd);
}

static zactor_t *
s_durable_broker (const char *dir, const journal_io_t *io, char **producers)
{
    broker_config_t config;
    broker_config_defaults (&config);
    config.producers = "tcp://127.0.0.1:*";
    config.workers = "tcp://127.0.0.1:*";
    config.insecure = true;
    config.data_dir = dir;
    config.io = io;
    config.heartbeat_ms = 200;
    zactor_t *broker = broker_start (&config);
    CHECK (broker);
    char *workers;
    CHECK (broker_endpoints (broker, producers, &workers) == 0);
    zstr_free (&workers);
    return broker;
}

static drv_job_state_t
s_state_of (peer_t *client, const uint8_t *id)
{
    drv_msg_t msg = s_query (client, id, false, false);
    CHECK (msg.cmd == DRV_CMD_QUERY_REPLY && msg.count == 1);
    return msg.infos [0].state;
}

static void
test_storage_failure (void)
{
    s_live_count = 0;
    char dir [] = "/tmp/drover-durable-XXXXXX";
    CHECK (mkdtemp (dir));
    journal_io_t io = {NULL, s_faulty_fdatasync, NULL};
    char *endpoint;
    zactor_t *broker = s_durable_broker (dir, &io, &endpoint);
    peer_t client = s_peer_new (endpoint);
    s_live_add (&client);
    CHECK (s_hello (&client, DRV_PEER_CLIENT, NULL, 0).cmd == DRV_CMD_WELCOME);

    uint8_t ids [4][16];
    s_ids (ids, 4);
    const char *payload [1] = {"kept"};
    drv_msg_t msg = s_submit (&client, ids, payload, 1, "disk", NULL);
    CHECK (msg.acks [0].code == DRV_CODE_OK);

    //  The disk fails: the job of that turn is refused and taken back
    s_sync_fails = 1;
    msg = s_submit (&client, ids + 1, payload, 1, "disk", NULL);
    CHECK (msg.acks [0].code == DRV_CODE_UNAVAILABLE);
    CHECK (strstr (msg.acks [0].message, "journal"));
    CHECK (s_state_of (&client, ids [1]) == DRV_JOB_UNKNOWN);
    //  Everything else is still served, and new jobs are refused at once
    CHECK (s_state_of (&client, ids [0]) == DRV_JOB_QUEUED);
    msg = s_submit (&client, ids + 2, payload, 1, "disk", NULL);
    CHECK (msg.acks [0].code == DRV_CODE_UNAVAILABLE);

    //  The disk recovers: after the pause, jobs are accepted again
    s_sync_fails = 0;
    uint64_t end = drv_now_ms () + 5000;
    bool accepted = false;
    while (!accepted && drv_now_ms () < end) {
        msg = s_submit (&client, ids + 3, payload, 1, "disk", NULL);
        accepted = msg.acks [0].code == DRV_CODE_OK;
        if (!accepted)
            zclock_sleep (100);
    }
    CHECK (accepted);

    //  A restart on the same directory brings back exactly the accepted jobs
    s_close (&client);
    zactor_destroy (&broker);
    zstr_free (&endpoint);
    broker = s_durable_broker (dir, NULL, &endpoint);
    peer_t again = s_peer_new (endpoint);
    s_live_count = 0;
    s_live_add (&again);
    CHECK (s_hello (&again, DRV_PEER_CLIENT, NULL, 0).cmd == DRV_CMD_WELCOME);
    CHECK (s_state_of (&again, ids [0]) == DRV_JOB_QUEUED);
    CHECK (s_state_of (&again, ids [1]) == DRV_JOB_UNKNOWN);
    CHECK (s_state_of (&again, ids [2]) == DRV_JOB_UNKNOWN);
    CHECK (s_state_of (&again, ids [3]) == DRV_JOB_QUEUED);
    msg = s_query (&again, ids [0], false, false);
    CHECK (streq (msg.infos [0].queue, "disk") && msg.infos [0].payload_size == 4);
    s_close (&again);
    zactor_destroy (&broker);
    zstr_free (&endpoint);
    char command [128];
    snprintf (command, sizeof command, "rm -rf %s", dir);
    CHECK (system (command) == 0);
}

//  The next reply, skipping outcomes the broker delivers on its own.
static drv_msg_t
s_recv_reply (peer_t *peer)
{
    drv_msg_t msg;
    do
        msg = s_recv (peer);
    while (msg.cmd == DRV_CMD_DELIVER);
    return msg;
}

static drv_msg_t
s_queue_control (peer_t *client, const char *queue, drv_queue_action_t action)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_QUEUE_CONTROL, s_corr++);
    msg.queue_control.queue = queue;
    msg.queue_control.action = action;
    s_send (client, &msg, NULL, 0);
    return s_recv_reply (client);
}

static drv_msg_t
s_dead (peer_t *client, const char *queue, drv_dead_action_t action, uint8_t (*ids) [16], size_t n)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_DEAD_LETTER, s_corr++);
    msg.dead.queue = queue;
    msg.dead.action = action;
    msg.ids = ids;
    msg.count = n;
    s_send (client, &msg, NULL, 0);
    return s_recv_reply (client);
}

//  Waits for a Dispatch on the worker and returns the number of jobs.
static size_t
s_expect_dispatch (peer_t *worker, uint8_t *first_id)
{
    drv_msg_t msg;
    do
        msg = s_recv (worker);
    while (msg.cmd != DRV_CMD_DISPATCH);
    memcpy (first_id, msg.jobs [0].id, 16);
    return msg.count;
}

//  Pause and resume, progress, and the dead-letter list; then a restart
//  of a durable broker keeps the pause and the dead letters.
static void
test_admin_features (void)
{
    s_live_count = 0;
    char dir [] = "/tmp/drover-admin-XXXXXX";
    CHECK (mkdtemp (dir));
    char *endpoint, *workers;
    broker_config_t config;
    broker_config_defaults (&config);
    config.producers = config.workers = "tcp://127.0.0.1:*";
    config.insecure = true;
    config.data_dir = dir;
    config.heartbeat_ms = 200;
    zactor_t *broker = broker_start (&config);
    CHECK (broker && broker_endpoints (broker, &endpoint, &workers) == 0);
    peer_t client = s_peer_new (endpoint);
    peer_t worker = s_peer_new (workers);
    s_live_add (&client);
    s_live_add (&worker);
    CHECK (s_hello (&client, DRV_PEER_CLIENT, NULL, 0).cmd == DRV_CMD_WELCOME);
    CHECK (s_hello (&worker, DRV_PEER_WORKER, "adm", 5).cmd == DRV_CMD_WELCOME);

    //  Paused: jobs are accepted but not dispatched; resumed: they flow
    drv_msg_t msg = s_queue_control (&client, "adm", DRV_QUEUE_PAUSE);
    CHECK (msg.cmd == DRV_CMD_STATS_REPLY && msg.count == 1 && msg.queues [0].paused);
    uint8_t ids [2][16];
    s_ids (ids, 2);
    const char *payloads [2] = {"one", "two"};
    drv_jobspec_t options;
    memset (&options, 0, sizeof options);
    options.max_attempts = 1;
    msg = s_submit (&client, ids, payloads, 2, "adm", &options);
    CHECK (msg.acks [0].code == DRV_CODE_OK && msg.acks [1].code == DRV_CODE_OK);
    CHECK (s_quiet (&worker, 400));
    msg = s_queue_control (&client, "adm", DRV_QUEUE_RESUME);
    CHECK (msg.cmd == DRV_CMD_STATS_REPLY && !msg.queues [0].paused && msg.queues [0].queued == 2);
    uint8_t running [16];
    size_t got = s_expect_dispatch (&worker, running);
    if (got < 2) {
        uint8_t other [16];
        got += s_expect_dispatch (&worker, other);
    }
    CHECK (got == 2);
    msg = s_queue_control (&client, "bad name!", DRV_QUEUE_PAUSE);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_UNKNOWN_QUEUE);

    //  Progress from the worker running the job shows in Query
    drv_msg_init (&msg, DRV_CMD_PROGRESS, 0);
    drv_progress_t progress = {{0}, 42, "halfway there"};
    memcpy (progress.id, ids [0], 16);
    msg.progress = &progress;
    msg.count = 1;
    s_send (&worker, &msg, NULL, 0);
    uint64_t end = drv_now_ms () + 2000;
    bool seen = false;
    while (!seen && drv_now_ms () < end) {
        msg = s_query (&client, ids [0], false, false);
        seen = msg.infos [0].progress == 42 && streq (msg.infos [0].progress_message, "halfway there");
    }
    CHECK (seen);

    //  Both fail for good: they land in the dead letters, oldest first
    s_report (&worker, ids [0], DRV_JOB_FAILED, NULL, "first failure");
    s_report (&worker, ids [1], DRV_JOB_FAILED, NULL, "second failure");
    end = drv_now_ms () + 2000;
    do
        msg = s_dead (&client, "adm", DRV_DEAD_LIST, NULL, 0);
    while (msg.count < 2 && drv_now_ms () < end);
    CHECK (msg.cmd == DRV_CMD_QUERY_REPLY && msg.count == 2);
    CHECK (memcmp (msg.infos [0].id, ids [0], 16) == 0 && msg.infos [0].state == DRV_JOB_FAILED);
    CHECK (strstr (msg.infos [1].error, "second failure"));
    msg = s_dead (&client, "nosuchqueue", DRV_DEAD_LIST, NULL, 0);
    CHECK (msg.cmd == DRV_CMD_QUERY_REPLY && msg.count == 0);

    //  Retry one by id: it runs again from attempt 1
    uint8_t one [1][16];
    memcpy (one [0], ids [0], 16);
    msg = s_dead (&client, "adm", DRV_DEAD_RETRY, one, 1);
    CHECK (msg.count == 1 && msg.infos [0].state == DRV_JOB_QUEUED);
    drv_msg_t dispatch;
    do
        dispatch = s_recv (&worker);
    while (dispatch.cmd != DRV_CMD_DISPATCH);
    CHECK (memcmp (dispatch.jobs [0].id, ids [0], 16) == 0 && dispatch.jobs [0].attempt == 1);
    size_t size;
    const char *data = s_payload (0, &size);
    CHECK (size == 3 && memcmp (data, "one", 3) == 0);      //  input kept while dead
    s_report (&worker, ids [0], DRV_JOB_DONE, "fixed", NULL);

    //  A restart keeps the pause and the remaining dead letter
    msg = s_queue_control (&client, "adm", DRV_QUEUE_PAUSE);
    CHECK (msg.queues [0].paused && msg.queues [0].dead == 1);
    s_close (&client);
    s_close (&worker);
    zactor_destroy (&broker);
    zstr_free (&endpoint);
    zstr_free (&workers);
    broker = broker_start (&config);
    CHECK (broker && broker_endpoints (broker, &endpoint, &workers) == 0);
    peer_t again = s_peer_new (endpoint);
    s_live_count = 0;
    s_live_add (&again);
    CHECK (s_hello (&again, DRV_PEER_CLIENT, NULL, 0).cmd == DRV_CMD_WELCOME);
    drv_msg_init (&msg, DRV_CMD_STATS, s_corr++);
    s_send (&again, &msg, NULL, 0);
    msg = s_recv (&again);
    bool found = false;
    for (size_t i = 0; i < msg.count; i++)
        if (streq (msg.queues [i].name, "adm")) {
            CHECK (msg.queues [i].paused && msg.queues [i].dead == 1);
            found = true;
        }
    CHECK (found);
    msg = s_query (&again, ids [0], true, false);
    CHECK (msg.infos [0].state == DRV_JOB_DONE);
    //  Purge empties the dead letters
    msg = s_dead (&again, "adm", DRV_DEAD_PURGE, NULL, 0);
    CHECK (msg.count == 1 && msg.infos [0].state == DRV_JOB_UNKNOWN);
    CHECK (s_state_of (&again, ids [1]) == DRV_JOB_UNKNOWN);
    msg = s_dead (&again, "adm", DRV_DEAD_LIST, NULL, 0);
    CHECK (msg.count == 0);
    s_close (&again);
    zactor_destroy (&broker);
    zstr_free (&endpoint);
    zstr_free (&workers);
    char command [128];
    snprintf (command, sizeof command, "rm -rf %s", dir);
    CHECK (system (command) == 0);
}

int
main (void)
{
    zsys_init ();
    zsys_set_logstream (NULL);
    s_codec = drv_codec_new ();
    drv_frames_init (&s_frames);
    broker_config_t config;
    broker_config_defaults (&config);
    config.producers = "tcp://127.0.0.1:*";
    config.workers = "tcp://127.0.0.1:*";
    config.insecure = true;
    config.in_memory = true;
    config.heartbeat_ms = 200;
    config.max_payload = 1000;
    config.max_batch = 50;
    config.default_backoff_ms = 50;
    config.default_attempts = 2;
    zactor_t *broker = broker_start (&config);
    CHECK (broker);
    CHECK (broker_endpoints (broker, &s_producers, &s_workers) == 0);
    CHECK (strncmp (s_producers, "tcp://127.0.0.1:", 16) == 0);

    test_handshake_and_bad_input ();
    test_job_path ();
    test_dead_worker_and_timeout ();
    test_storage_failure ();
    test_admin_features ();

    zactor_destroy (&broker);
    zstr_free (&s_producers);
    zstr_free (&s_workers);
    drv_frames_destroy (&s_frames);
    drv_codec_destroy (&s_codec);
    printf ("broker protocol: all checks passed\n");
    return 0;
}
