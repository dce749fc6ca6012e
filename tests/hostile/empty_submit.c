/*  empty_submit.c - a Submit that lists no job.

    Found by fuzz_broker (UndefinedBehaviorSanitizer: "applying zero offset
    to null pointer" where the broker builds the turn's SubmitAcks). A valid
    Submit envelope with an empty job list must get an answer (an empty
    SubmitAck or an Error), and the broker must go on serving; a build with
    -fsanitize=undefined -fno-sanitize-recover aborts the whole broker
    instead.

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
    do { if (!(cond)) { fprintf (stderr, "empty_submit: FAIL: " __VA_ARGS__); \
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

    //  The first thing this broker is asked to accept: nothing at all
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_SUBMIT, s_corr++);
    msg.count = 0;
    s_send (client, &msg, 0);
    uint64_t corr = s_corr - 1;
    bool answered = false;
    uint64_t end = drv_now_ms () + 3000;
    while (!answered && drv_now_ms () < end) {
        zmq_pollitem_t item = {client, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 100) <= 0)
            continue;
        CHECK (drv_frames_recv (client, &s_frames, 0, 100) >= 1, "receive");
        CHECK (drv_codec_decode (s_codec, zmq_msg_data (&s_frames.msg [0]),
                                 zmq_msg_size (&s_frames.msg [0]), &msg) == 0, "decode");
        if (msg.corr == corr) {
            CHECK ((msg.cmd == DRV_CMD_SUBMIT_ACK && msg.count == 0) || msg.cmd == DRV_CMD_ERROR,
                   "an empty Submit got %s", drv_cmd_name (msg.cmd));
            answered = true;
        }
    }
    CHECK (answered, "no answer to an empty Submit within 3 s");
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
    printf ("empty_submit: an empty Submit is answered and the broker goes on\n");
    return 0;
}
