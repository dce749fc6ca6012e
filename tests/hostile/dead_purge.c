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
#define RAW_PEER_PROGRAM "dead_purge"
#include "raw_peer.h"

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
    broker_config_t config;
    s_test_config (&config);
    config.heartbeat_ms = 300;
    config.dead_ttl_s = 1;
    config.default_result_ttl_s = 1;
    char *producers, *workers;
    zactor_t *broker = s_test_broker (&config, &producers, &workers);
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
