/*  empty_submit.c - a Submit that lists no job.

    Found by fuzz_broker (UndefinedBehaviorSanitizer: "applying zero offset
    to null pointer" where the broker builds the turn's SubmitAcks). A valid
    Submit envelope with an empty job list must get an answer (an empty
    SubmitAck or an Error), and the broker must go on serving; a build with
    -fsanitize=undefined -fno-sanitize-recover aborts the whole broker
    instead.

    Runs the broker actor in process (plaintext, in memory) with a raw DEALER.
*/
#define RAW_PEER_PROGRAM "empty_submit"
#include "raw_peer.h"

int
main (void)
{
    broker_config_t config;
    s_test_config (&config);
    char *producers, *workers;
    zactor_t *broker = s_test_broker (&config, &producers, &workers);
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
