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
#define RAW_PEER_PROGRAM "barrier_self"
#include "raw_peer.h"

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
    broker_config_t config;
    s_test_config (&config);
    char *producers, *workers;
    zactor_t *broker = s_test_broker (&config, &producers, &workers);
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
