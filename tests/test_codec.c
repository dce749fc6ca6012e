/*  test_codec.c - every command survives encode/decode unchanged, and
    malformed input (random bytes, truncations, ids of the wrong length,
    an empty envelope) is refused with a reason, never a crash.  */
#undef NDEBUG
#include "codec.h"
#include "util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static drv_codec_t *s_tx, *s_rx;

static void
s_id (uint8_t *id, int seed)
{
    for (int i = 0; i < DRV_ID_SIZE; i++)
        id [i] = (uint8_t) (seed * 31 + i);
}

//  Encodes msg, decodes it into out. The frame stays alive in *frame.
static void
s_round_trip (const drv_msg_t *msg, drv_msg_t *out, zmq_msg_t *frame)
{
    assert (drv_codec_encode (s_tx, msg, frame) == 0);
    int rc = drv_codec_decode (s_rx, zmq_msg_data (frame), zmq_msg_size (frame), out);
    if (rc)
        fprintf (stderr, "decode %s: %s\n", drv_cmd_name (msg->cmd), drv_codec_error (s_rx));
    assert (rc == 0);
    assert (out->cmd == msg->cmd);
    assert (out->corr == msg->corr);
    assert (out->version == DRV_PROTOCOL_VERSION);
}

static void
test_round_trips (void)
{
    drv_msg_t msg, out;
    zmq_msg_t frame;

    drv_msg_init (&msg, DRV_CMD_HELLO, 42);
    const char *queues [] = {"a", "b.c"};
    msg.hello.kind = DRV_PEER_WORKER;
    s_id (msg.hello.session, 1);
    msg.hello.name = "host:1";
    msg.hello.queues = queues;
    msg.hello.queue_count = 2;
    msg.hello.credit = 12;
    msg.hello.version_min = 1;
    msg.hello.version_max = 1;
    s_round_trip (&msg, &out, &frame);
    assert (out.hello.kind == DRV_PEER_WORKER && out.hello.credit == 12);
    assert (memcmp (out.hello.session, msg.hello.session, 16) == 0);
    assert (strcmp (out.hello.name, "host:1") == 0);
    assert (out.hello.queue_count == 2 && strcmp (out.hello.queues [1], "b.c") == 0);
    assert (out.hello.version_min == 1 && out.hello.version_max == 1);
    zmq_msg_close (&frame);

    drv_msg_init (&msg, DRV_CMD_WELCOME, 42);
    s_id (msg.welcome.broker_id, 2);
    msg.welcome.version = 1;
    msg.welcome.heartbeat_ms = 1000;
    msg.welcome.max_payload = 8 << 20;
    msg.welcome.max_batch = 1000;
    msg.welcome.role = "producer";
    s_round_trip (&msg, &out, &frame);
    assert (memcmp (out.welcome.broker_id, msg.welcome.broker_id, 16) == 0);
    assert (out.welcome.heartbeat_ms == 1000 && out.welcome.max_payload == 8 << 20);
    assert (out.welcome.max_batch == 1000 && strcmp (out.welcome.role, "producer") == 0);
    zmq_msg_close (&frame);

    drv_cmd_t simple [] = {DRV_CMD_HEARTBEAT, DRV_CMD_BYE, DRV_CMD_STATS};
    for (size_t i = 0; i < 3; i++) {
        drv_msg_init (&msg, simple [i], 7);
        s_round_trip (&msg, &out, &frame);
        zmq_msg_close (&frame);
    }

    uint8_t ids [3][DRV_ID_SIZE];
    for (int i = 0; i < 3; i++)
        s_id (ids [i], 10 + i);
    drv_msg_init (&msg, DRV_CMD_ERROR, 9);
    msg.error.code = DRV_CODE_TOO_LARGE;
    msg.error.message = "too big";
    msg.error.ids = ids;
    msg.error.id_count = 2;
    s_round_trip (&msg, &out, &frame);
    assert (out.error.code == DRV_CODE_TOO_LARGE && strcmp (out.error.message, "too big") == 0);
    assert (out.error.id_count == 2 && memcmp (out.error.ids [1], ids [1], 16) == 0);
    zmq_msg_close (&frame);

    drv_jobspec_t specs [2] = {{.queue = "q", .priority = 9, .timeout_ms = 5, .max_attempts = 3,
                                .delay_ms = 1ULL << 40, .run_at_ms = 77, .backoff_ms = 100,
                                .result_ttl_s = 60},
                               {.queue = "other"}};
    s_id (specs [0].id, 20);
    s_id (specs [1].id, 21);
    drv_msg_init (&msg, DRV_CMD_SUBMIT, 11);
    msg.specs = specs;
    msg.count = 2;
    s_round_trip (&msg, &out, &frame);
    assert (out.count == 2);
    assert (memcmp (&out.specs [0].id, specs [0].id, 16) == 0);
    assert (strcmp (out.specs [0].queue, "q") == 0 && out.specs [0].priority == 9);
    assert (out.specs [0].timeout_ms == 5 && out.specs [0].max_attempts == 3);
    assert (out.specs [0].delay_ms == 1ULL << 40 && out.specs [0].run_at_ms == 77);
    assert (out.specs [0].backoff_ms == 100 && out.specs [0].result_ttl_s == 60);
    assert (strcmp (out.specs [1].queue, "other") == 0 && out.specs [1].priority == 0);
    zmq_msg_close (&frame);

    drv_joback_t acks [2] = {{.code = DRV_CODE_OK, .message = "", .duplicate = true},
                             {.code = DRV_CODE_UNKNOWN_QUEUE, .message = "bad"}};
    s_id (acks [0].id, 30);
    s_id (acks [1].id, 31);
    drv_msg_init (&msg, DRV_CMD_SUBMIT_ACK, 11);
    msg.acks = acks;
    msg.count = 2;
    s_round_trip (&msg, &out, &frame);
    assert (out.count == 2 && out.acks [0].duplicate && out.acks [1].code == DRV_CODE_UNKNOWN_QUEUE);
    assert (strcmp (out.acks [1].message, "bad") == 0 && memcmp (out.acks [1].id, acks [1].id, 16) == 0);
    zmq_msg_close (&frame);

    drv_job_t jobs [1] = {{.queue = "q", .attempt = 2, .timeout_ms = 300}};
    s_id (jobs [0].id, 40);
    drv_msg_init (&msg, DRV_CMD_DISPATCH, 0);
    msg.jobs = jobs;
    msg.count = 1;
    s_round_trip (&msg, &out, &frame);
    assert (out.count == 1 && out.jobs [0].attempt == 2 && out.jobs [0].timeout_ms == 300);
    assert (strcmp (out.jobs [0].queue, "q") == 0 && memcmp (out.jobs [0].id, jobs [0].id, 16) == 0);
    zmq_msg_close (&frame);

    drv_result_t results [2] = {{.state = DRV_JOB_DONE, .error = "", .attempts = 1},
                                {.state = DRV_JOB_FAILED, .error = "oops", .attempts = 3, .no_retry = true}};
    s_id (results [0].id, 50);
    s_id (results [1].id, 51);
    drv_cmd_t result_cmds [] = {DRV_CMD_REPORT, DRV_CMD_DELIVER};
    for (int c = 0; c < 2; c++) {
        drv_msg_init (&msg, result_cmds [c], 3);
        msg.results = results;
        msg.count = 2;
        s_round_trip (&msg, &out, &frame);
        assert (out.count == 2 && out.results [1].state == DRV_JOB_FAILED);
        assert (strcmp (out.results [1].error, "oops") == 0 && out.results [1].no_retry);
        assert (out.results [1].attempts == 3 && memcmp (out.results [0].id, results [0].id, 16) == 0);
        zmq_msg_close (&frame);
    }

    drv_msg_init (&msg, DRV_CMD_CREDIT, 4);
    msg.credit = 17;
    s_round_trip (&msg, &out, &frame);
    assert (out.credit == 17);
    zmq_msg_close (&frame);

    drv_msg_init (&msg, DRV_CMD_QUERY, 5);
    msg.ids = ids;
    msg.count = 3;
    msg.query.want_result = true;
    msg.query.watch = true;
    s_round_trip (&msg, &out, &frame);
    assert (out.count == 3 && out.query.want_result && out.query.watch);
    assert (memcmp (out.ids [2], ids [2], 16) == 0);
    zmq_msg_close (&frame);

    drv_msg_init (&msg, DRV_CMD_CANCEL, 6);
    msg.ids = ids;
    msg.count = 1;
    s_round_trip (&msg, &out, &frame);
    assert (out.count == 1 && memcmp (out.ids [0], ids [0], 16) == 0);
    zmq_msg_close (&frame);

    drv_jobinfo_t infos [1] = {{.state = DRV_JOB_RUNNING, .queue = "q", .attempts = 2, .error = "e",
                                .created_ms = 1000, .finished_ms = 0, .priority = 4, .payload_size = 99}};
    s_id (infos [0].id, 60);
    drv_msg_init (&msg, DRV_CMD_QUERY_REPLY, 5);
    msg.infos = infos;
    msg.count = 1;
    s_round_trip (&msg, &out, &frame);
    assert (out.count == 1 && out.infos [0].state == DRV_JOB_RUNNING && out.infos [0].priority == 4);
    assert (out.infos [0].payload_size == 99 && out.infos [0].created_ms == 1000);
    assert (strcmp (out.infos [0].error, "e") == 0 && memcmp (out.infos [0].id, infos [0].id, 16) == 0);
    zmq_msg_close (&frame);

    drv_queue_stats_t queues_stats [2] = {{.name = "a", .queued = 1, .scheduled = 2, .running = 3,
                                           .submitted = 4, .done = 5, .failed = 6, .retried = 7, .workers = 8},
                                          {.name = "b"}};
    drv_msg_init (&msg, DRV_CMD_STATS_REPLY, 8);
    msg.queues = queues_stats;
    msg.count = 2;
    msg.stats.workers = 3;
    msg.stats.clients = 4;
    msg.stats.uptime_ms = 5;
    msg.stats.jobs_stored = 6;
    s_round_trip (&msg, &out, &frame);
    assert (out.count == 2 && strcmp (out.queues [0].name, "a") == 0 && out.queues [0].retried == 7);
    assert (out.queues [0].workers == 8 && strcmp (out.queues [1].name, "b") == 0);
    assert (out.stats.workers == 3 && out.stats.clients == 4);
    assert (out.stats.uptime_ms == 5 && out.stats.jobs_stored == 6);
    zmq_msg_close (&frame);

    //  Empty lists are fine
    drv_msg_init (&msg, DRV_CMD_SUBMIT, 1);
    s_round_trip (&msg, &out, &frame);
    assert (out.count == 0);
    zmq_msg_close (&frame);

    //  Names and payload flags
    assert (strcmp (drv_cmd_name (DRV_CMD_SUBMIT_ACK), "SUBMIT_ACK") == 0);
    assert (strcmp (drv_cmd_name ((drv_cmd_t) 999), "?") == 0);
    assert (strcmp (drv_code_name (DRV_CODE_REHELLO), "REHELLO") == 0);
    assert (drv_cmd_has_payloads (DRV_CMD_SUBMIT) && drv_cmd_has_payloads (DRV_CMD_QUERY_REPLY));
    assert (!drv_cmd_has_payloads (DRV_CMD_QUERY) && !drv_cmd_has_payloads (DRV_CMD_SUBMIT_ACK));
}

static void
s_expect_bad (const uint8_t *data, size_t size, const char *what)
{
    drv_msg_t out;
    int rc = drv_codec_decode (s_rx, data, size, &out);
    if (rc == 0)
        fprintf (stderr, "accepted malformed %s\n", what);
    assert (rc == -1);
    assert (*drv_codec_error (s_rx));
}

static void
test_malformed (void)
{
    //  Empty envelope: valid protobuf, but no command
    s_expect_bad ((const uint8_t *) "", 0, "empty");
    s_expect_bad ((const uint8_t *) "\x08\x01", 2, "version only");
    //  Garbage
    s_expect_bad ((const uint8_t *) "\xff\xff\xff\xff\xff", 5, "garbage");

    //  Cancel with a 15-byte id: 08 01 | EA 01 len | 0A 0F <15>
    uint8_t cancel [64] = {0x08, 0x01, 0xEA, 0x01, 17, 0x0A, 15};
    s_expect_bad (cancel, 7 + 15, "short cancel id");
    //  Submit whose JobSpec id has 3 bytes: 08 01 | AA 01 07 | 0A 05 | 0A 03 x x x
    uint8_t submit [] = {0x08, 0x01, 0xAA, 0x01, 7, 0x0A, 5, 0x0A, 3, 1, 2, 3};
    s_expect_bad (submit, sizeof submit, "short job id");
    //  Hello with a 17-byte session: 82 01 len | 12 11 <17>
    uint8_t hello [64] = {0x08, 0x01, 0x82, 0x01, 19, 0x12, 17};
    s_expect_bad (hello, 7 + 17, "long session");
    //  Welcome without a broker id
    uint8_t welcome [] = {0x08, 0x01, 0x8A, 0x01, 2, 0x10, 1};
    s_expect_bad (welcome, sizeof welcome, "welcome without broker id");
    //  Query reply entry with an empty id: E2 01 len | 0A 02 | 10 04
    uint8_t reply [] = {0x08, 0x01, 0xE2, 0x01, 4, 0x0A, 2, 0x10, 4};
    s_expect_bad (reply, sizeof reply, "info without id");

    //  Every truncation of a real message: refused or decoded, never a crash
    uint8_t ids [4][DRV_ID_SIZE];
    drv_jobspec_t specs [4];
    memset (specs, 0, sizeof specs);
    for (int i = 0; i < 4; i++) {
        s_id (ids [i], i);
        memcpy (specs [i].id, ids [i], 16);
        specs [i].queue = "queue.name";
        specs [i].priority = i;
    }
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_SUBMIT, 12345);
    msg.specs = specs;
    msg.count = 4;
    zmq_msg_t frame;
    assert (drv_codec_encode (s_tx, &msg, &frame) == 0);
    size_t size = zmq_msg_size (&frame);
    int refused = 0;
    for (size_t cut = 0; cut < size; cut++) {
        uint8_t *copy = malloc (cut? cut: 1);
        memcpy (copy, zmq_msg_data (&frame), cut);
        drv_msg_t out;
        if (drv_codec_decode (s_rx, copy, cut, &out) != 0)
            refused++;
        else
            assert (out.count <= 4);
        free (copy);
    }
    assert (refused > (int) size / 2);
    zmq_msg_close (&frame);

    //  Random bytes
    srand (7);
    uint8_t buffer [256];
    int accepted = 0;
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t) (rand () % (int) sizeof buffer);
        for (size_t i = 0; i < n; i++)
            buffer [i] = (uint8_t) rand ();
        //  Half the time start like a real envelope, to get deeper
        if (n > 4 && round % 2) {
            buffer [0] = 0x08;
            buffer [1] = 0x01;
        }
        drv_msg_t out;
        if (drv_codec_decode (s_rx, buffer, n, &out) == 0) {
            accepted++;
            assert (out.cmd > DRV_CMD_NONE && out.cmd < DRV_CMD_COUNT_);
        }
    }
    printf ("random: %d of 20000 decoded as some command\n", accepted);
}

int
main (void)
{
    s_tx = drv_codec_new ();
    s_rx = drv_codec_new ();
    assert (s_tx && s_rx);
    test_round_trips ();
    test_malformed ();
    drv_codec_destroy (&s_tx);
    drv_codec_destroy (&s_rx);
    assert (s_tx == NULL);
    drv_codec_destroy (&s_tx);
    printf ("test_codec: OK\n");
    return 0;
}
