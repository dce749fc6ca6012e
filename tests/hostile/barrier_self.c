/*  barrier_self.c - one session waiting twice at a barrier.

    Found by fuzz_broker (AddressSanitizer: heap-use-after-free in
    s_sync_deliver). A session waits at a barrier, then arrives at the same
    barrier again with a request that completes the round. Releasing the
    round ends the session's only wait, which frees the broker's record of
    the session while the request that completed the round is still being
    answered through it. Both requests must be answered OK with the same
    generation, and the broker must go on serving; under AddressSanitizer
    the stale record is a crash.

    Runs the broker actor in process (plaintext, in memory) with a raw DEALER.
*/
#include "broker.h"
#include "codec.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(cond, ...) \
    do { if (!(cond)) { fprintf (stderr, "barrier_self: FAIL: " __VA_ARGS__); \
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

static drv_msg_t
s_sync (void *client, drv_sync_op_t op, const char *name, uint32_t count, uint32_t timeout_ms,
        bool wait_reply)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_SYNC_REQUEST, s_corr++);
    msg.sync.op = op;
    msg.sync.name = name;
    msg.sync.count = count;
    msg.sync.timeout_ms = timeout_ms;
    s_send (client, &msg, 0);
    if (wait_reply)
        msg = s_expect (client, DRV_CMD_SYNC_REPLY, 3000, "SyncReply");
    return msg;
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
    zactor_t *broker = broker_start (&config);
    CHECK (broker, "broker did not start");
    char *producers, *workers;
    CHECK (broker_endpoints (broker, &producers, &workers) == 0, "endpoints");
    void *ctx = zmq_ctx_new ();
    void *client = s_peer (ctx, producers, DRV_PEER_CLIENT);

    //  Wait at the barrier (two parties), then arrive again: the round completes
    s_sync (client, DRV_SYNC_BARRIER_WAIT, "gate", 2, 5000, false);
    usleep (100000);
    s_sync (client, DRV_SYNC_BARRIER_WAIT, "gate", 2, 5000, false);
    drv_msg_t first = s_expect (client, DRV_CMD_SYNC_REPLY, 3000, "first barrier reply");
    drv_code_t first_code = first.sync_reply.code;
    uint32_t first_value = first.sync_reply.value;
    drv_msg_t second = s_expect (client, DRV_CMD_SYNC_REPLY, 3000, "second barrier reply");
    CHECK (first_code == DRV_CODE_OK && second.sync_reply.code == DRV_CODE_OK,
           "barrier replies %s and %s", drv_code_name (first_code),
           drv_code_name (second.sync_reply.code));
    CHECK (first_value == second.sync_reply.value, "generations %u and %u differ",
           first_value, second.sync_reply.value);
    //  The session still works: an event of its own, set and waited on
    drv_msg_t msg = s_sync (client, DRV_SYNC_EVENT_SET, "flag", 0, 0, true);
    CHECK (msg.sync_reply.code == DRV_CODE_OK, "event set: %s", drv_code_name (msg.sync_reply.code));
    msg = s_sync (client, DRV_SYNC_EVENT_WAIT, "flag", 0, 1000, true);
    CHECK (msg.sync_reply.code == DRV_CODE_OK, "event wait: %s", drv_code_name (msg.sync_reply.code));
    drv_msg_init (&msg, DRV_CMD_STATS, s_corr++);
    s_send (client, &msg, 0);
    s_expect (client, DRV_CMD_STATS_REPLY, 3000, "StatsReply");

    zmq_close (client);
    zmq_ctx_term (ctx);
    zactor_destroy (&broker);
    zstr_free (&producers);
    zstr_free (&workers);
    drv_frames_destroy (&s_frames);
    drv_codec_destroy (&s_codec);
    printf ("barrier_self: a session completing its own barrier round is answered twice\n");
    return 0;
}
