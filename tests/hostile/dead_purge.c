/*  dead_purge.c - a purged dead letter must not come back when its time is up.

    Found by fuzz_broker. A job that fails for good waits in its queue's
    dead letters and in the broker's timer heap (until dead_ttl_s). When an
    admin purges it, the broker must take it out of both; if the timer
    stays behind, it fires later for a job the broker no longer holds, and
    the broker loop stops answering anyone (or forgets another job that
    took the freed slot).

    Runs the broker actor in process (plaintext, in memory, dead_ttl_s 1),
    fails one job with raw DEALERs, purges it, waits past the TTL and
    checks that the broker still answers Stats and a new job's round trip.
*/
#include "broker.h"
#include "codec.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(cond, ...) \
    do { if (!(cond)) { fprintf (stderr, "dead_purge: FAIL: " __VA_ARGS__); \
                        fprintf (stderr, "\n"); _exit (1); } } while (0)

static drv_codec_t *s_codec;
static drv_frames_t s_frames;
static uint64_t s_corr = 1;

static void
s_send (void *socket, drv_msg_t *msg, size_t payloads)
{
    zmq_msg_t envelope, frames [4];
    CHECK (drv_codec_encode (s_codec, msg, &envelope) == 0, "encode");
    drv_codec_reset (s_codec);
    for (size_t i = 0; i < payloads; i++) {
        zmq_msg_init_size (&frames [i], 4);
        memcpy (zmq_msg_data (&frames [i]), "data", 4);
    }
    CHECK (drv_send (socket, NULL, &envelope, frames, payloads, false) == 0, "send");
}

//  Waits for a message of command cmd (any corr), answering nothing else.
static drv_msg_t
s_expect (void *socket, drv_cmd_t cmd, int timeout_ms, const char *what)
{
    uint64_t end = drv_now_ms () + (uint64_t) timeout_ms;
    while (true) {
        zmq_pollitem_t item = {socket, 0, ZMQ_POLLIN, 0};
        int left = (int) (end - drv_now_ms ());
        CHECK (left > 0, "no %s within %d ms: the broker stopped answering", what, timeout_ms);
        if (zmq_poll (&item, 1, left) <= 0)
            continue;
        CHECK (drv_frames_recv (socket, &s_frames, 0, 100) >= 1, "receive");
        drv_msg_t msg;
        CHECK (drv_codec_decode (s_codec, zmq_msg_data (&s_frames.msg [0]),
                                 zmq_msg_size (&s_frames.msg [0]), &msg) == 0, "decode");
        if (msg.cmd == cmd)
            return msg;
        CHECK (msg.cmd != DRV_CMD_ERROR, "%s: got Error %s", what, msg.error.message);
    }
}

static void *
s_peer (void *ctx, const char *endpoint, drv_peer_kind_t kind)
{
    void *socket = zmq_socket (ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt (socket, ZMQ_LINGER, &linger, sizeof linger);
    CHECK (zmq_connect (socket, endpoint) == 0, "connect");
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_HELLO, s_corr++);
    msg.hello.kind = kind;
    drv_random_id (msg.hello.session);
    msg.hello.name = kind == DRV_PEER_WORKER? "purge-worker": "purge-admin";
    const char *queues [1] = {"dq"};
    msg.hello.queues = queues;
    msg.hello.queue_count = kind == DRV_PEER_WORKER? 1: 0;
    msg.hello.credit = 4;
    s_send (socket, &msg, 0);
    s_expect (socket, DRV_CMD_WELCOME, 3000, "Welcome");
    return socket;
}

//  Submits one job; the worker fails it for good; returns nothing.
static void
s_fail_one (void *client, void *worker, const uint8_t *id)
{
    drv_jobspec_t spec;
    memset (&spec, 0, sizeof spec);
    memcpy (spec.id, id, DRV_ID_SIZE);
    spec.queue = "dq";
    spec.max_attempts = 1;
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_SUBMIT, s_corr++);
    msg.specs = &spec;
    msg.count = 1;
    s_send (client, &msg, 1);
    msg = s_expect (client, DRV_CMD_SUBMIT_ACK, 3000, "SubmitAck");
    CHECK (msg.count == 1 && msg.acks [0].code == DRV_CODE_OK, "job refused");
    msg = s_expect (worker, DRV_CMD_DISPATCH, 3000, "Dispatch");
    CHECK (msg.count == 1 && memcmp (msg.jobs [0].id, id, DRV_ID_SIZE) == 0, "wrong job");
    drv_result_t result;
    memset (&result, 0, sizeof result);
    memcpy (result.id, id, DRV_ID_SIZE);
    result.state = DRV_JOB_FAILED;
    result.error = "on purpose";
    result.no_retry = true;
    drv_msg_init (&msg, DRV_CMD_REPORT, s_corr++);
    msg.results = &result;
    msg.count = 1;
    s_send (worker, &msg, 1);
    s_expect (client, DRV_CMD_DELIVER, 3000, "Deliver of the failure");
}

int
main (void)
{
    zsys_init ();
    zsys_set_logstream (NULL);
    drv_log_setup (DRV_LOG_ERROR, false);
    s_codec = drv_codec_new ();
    drv_frames_init (&s_frames);
    broker_config_t config;
    broker_config_defaults (&config);
    config.producers = "tcp://127.0.0.1:*";
    config.workers = "tcp://127.0.0.1:*";
    config.state = "tcp://127.0.0.1:*";
    config.metrics = NULL;
    config.insecure = true;
    config.in_memory = true;
    config.heartbeat_ms = 300;
    config.dead_ttl_s = 1;
    config.default_result_ttl_s = 1;
    zactor_t *broker = broker_start (&config);
    CHECK (broker, "broker did not start");
    char *producers, *workers;
    CHECK (broker_endpoints (broker, &producers, &workers) == 0, "endpoints");
    void *ctx = zmq_ctx_new ();
    void *client = s_peer (ctx, producers, DRV_PEER_CLIENT);
    void *worker = s_peer (ctx, workers, DRV_PEER_WORKER);

    uint8_t id [DRV_ID_SIZE];
    drv_random_id (id);
    s_fail_one (client, worker, id);
    //  Purge it from the dead letters
    uint8_t ids [1][DRV_ID_SIZE];
    memcpy (ids [0], id, DRV_ID_SIZE);
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_DEAD_LETTER, s_corr++);
    msg.dead.queue = "dq";
    msg.dead.action = DRV_DEAD_PURGE;
    msg.ids = ids;
    msg.count = 1;
    s_send (client, &msg, 0);
    msg = s_expect (client, DRV_CMD_QUERY_REPLY, 3000, "purge reply");
    CHECK (msg.count == 1 && msg.infos [0].state == DRV_JOB_UNKNOWN, "job not purged");

    //  Past dead_ttl_s, both peers beating so they stay registered
    static const uint8_t beat [] = {0x08, 0x01, 0x92, 0x01, 0x00};
    for (int i = 0; i < 8; i++) {
        zmq_send (client, beat, sizeof beat, ZMQ_DONTWAIT);
        zmq_send (worker, beat, sizeof beat, ZMQ_DONTWAIT);
        usleep (200000);
    }
    drv_msg_init (&msg, DRV_CMD_STATS, s_corr++);
    s_send (client, &msg, 0);
    s_expect (client, DRV_CMD_STATS_REPLY, 3000, "StatsReply after the purged job's TTL");
    //  And a new job still goes round
    drv_random_id (id);
    s_fail_one (client, worker, id);

    zmq_close (client);
    zmq_close (worker);
    zmq_ctx_term (ctx);
    zactor_destroy (&broker);
    zstr_free (&producers);
    zstr_free (&workers);
    drv_frames_destroy (&s_frames);
    drv_codec_destroy (&s_codec);
    printf ("dead_purge: the broker still serves after a purged job's TTL\n");
    return 0;
}
