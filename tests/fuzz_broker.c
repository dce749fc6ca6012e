/*  fuzz_broker.c - the broker's handling of whole messages against arbitrary input.

    The fuzz input is a short conversation (format in hostile/seeds.h): the
    endpoint to talk to, whether to say a valid Hello first, whether to use
    a fresh connection, then multipart messages split by length prefixes.
    Each message goes over a raw DEALER to a broker actor running in this
    process (in memory, plaintext, small limits so they are reached), so
    validation, sessions, submit, dispatch, report, query, cancel, credit,
    dead letters, queue control, shared state and sync all see the input,
    not only the decoder.

    After each input the same connection asks for Stats and waits for the
    answer to that request: the broker must answer (within 5 s), and every
    message it sends on the way must decode and carry exactly the payload
    frames its command calls for. Every 200 ms another client, which never
    sends anything odd, must get its StatsReply too. Any violation aborts.

    Under clang this is a libFuzzer target; elsewhere main() below replays
    the files named on the command line, or with none the seeds of every
    command with their truncations, byte flips and splices.
*/
#include "broker.h"
#include "codec.h"
#include "util.h"
#include "hostile/seeds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond, ...) \
    do { if (!(cond)) { fprintf (stderr, "fuzz_broker: " __VA_ARGS__); fprintf (stderr, "\n"); abort (); } } while (0)

//  Inputs handled by one broker before it is replaced by a fresh one, so
//  that state from old inputs does not pile up without end.
#define RECYCLE_EVERY 3000

static struct {
    zactor_t *broker;           //  the broker under test
    char *endpoint [2];         //  client and worker endpoints bound
    void *ctx;                  //  ZeroMQ context of the peers
    void *peer [2];             //  long-lived DEALER per endpoint
    void *monitor;              //  well-behaved client checking liveness
    drv_codec_t *codec;         //  encodes requests, decodes replies
    drv_frames_t frames;        //  receive buffer
    uint64_t corr;              //  next correlation number of ours
    uint64_t inputs;            //  inputs run on this broker
    uint64_t next_check;        //  monotonic ms of the next monitor check
    uint8_t session [2][DRV_ID_SIZE];  //  long-lived peers' sessions
} s;

static void *
s_dealer (int worker)
{
    void *socket = zmq_socket (s.ctx, ZMQ_DEALER);
    CHECK (socket, "cannot create a socket");
    int linger = 0, timeout = 2000, hwm = 10000;
    zmq_setsockopt (socket, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (socket, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt (socket, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (socket, ZMQ_RCVHWM, &hwm, sizeof hwm);
    CHECK (zmq_connect (socket, s.endpoint [worker]) == 0, "cannot connect");
    return socket;
}

static void
s_send_msg (void *socket, drv_msg_t *msg)
{
    zmq_msg_t envelope;
    CHECK (drv_codec_encode (s.codec, msg, &envelope) == 0, "cannot encode");
    drv_codec_reset (s.codec);
    CHECK (drv_send (socket, NULL, &envelope, NULL, 0, false) == 0, "cannot send %s",
           drv_cmd_name (msg->cmd));
}

//  Reads what the broker sends on socket until the answer to corr, which is
//  left decoded in *msg. Every message on the way must be well formed.
static void
s_await (void *socket, uint64_t corr, drv_msg_t *msg, const char *what)
{
    uint64_t end = drv_now_ms () + 5000;
    while (true) {
        zmq_pollitem_t item = {socket, 0, ZMQ_POLLIN, 0};
        int left = (int) (end - drv_now_ms ());
        CHECK (left > 0, "no answer to %s within 5 s: the broker is stuck", what);
        if (zmq_poll (&item, 1, left) <= 0)
            continue;
        int total = drv_frames_recv (socket, &s.frames, 0, 100000);
        CHECK (total >= 1 && (size_t) total == s.frames.count, "bad receive");
        CHECK (drv_codec_decode (s.codec, zmq_msg_data (&s.frames.msg [0]),
                                 zmq_msg_size (&s.frames.msg [0]), msg) == 0,
               "the broker sent an envelope it cannot decode itself: %s",
               drv_codec_error (s.codec));
        size_t expected = 1 + (drv_cmd_has_payloads (msg->cmd)? msg->count: 0);
        CHECK ((size_t) total == expected, "the broker sent %s with %d frames, not %zu",
               drv_cmd_name (msg->cmd), total, expected);
        bool done = msg->corr == corr;
        drv_frames_clear (&s.frames);
        if (done)
            return;
    }
}

static void
s_hello (void *socket, int worker, const uint8_t *session)
{
    drv_msg_t msg;
    uint64_t corr = s.corr++;
    drv_msg_init (&msg, DRV_CMD_HELLO, corr);
    msg.hello.kind = worker? DRV_PEER_WORKER: DRV_PEER_CLIENT;
    memcpy (msg.hello.session, session, DRV_ID_SIZE);
    msg.hello.name = worker? "fuzz-worker": "fuzz-client";
    const char *queues [2] = {"q", "other"};
    if (worker) {
        msg.hello.queues = queues;
        msg.hello.queue_count = 2;
        msg.hello.credit = 8;
    }
    s_send_msg (socket, &msg);
    s_await (socket, corr, &msg, "Hello");
    CHECK (msg.cmd == DRV_CMD_WELCOME
           || (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_LIMIT),
           "a valid Hello got %s (%s)", drv_cmd_name (msg.cmd),
           msg.cmd == DRV_CMD_ERROR? msg.error.message: "");
}

//  Asks for Stats on socket and waits for whatever answers it.
static void
s_probe (void *socket, drv_msg_t *msg)
{
    uint64_t corr = s.corr++;
    drv_msg_init (msg, DRV_CMD_STATS, corr);
    s_send_msg (socket, msg);
    s_await (socket, corr, msg, "Stats");
}

static void
s_broker_stop (void)
{
    if (!s.broker)
        return;
    for (int i = 0; i < 2; i++) {
        zmq_close (s.peer [i]);
        zstr_free (&s.endpoint [i]);
    }
    zmq_close (s.monitor);
    zactor_destroy (&s.broker);
}

static void
s_broker_start (void)
{
    broker_config_t config;
    broker_config_defaults (&config);
    config.producers = "tcp://127.0.0.1:*";
    config.workers = "tcp://127.0.0.1:*";
    config.state = "tcp://127.0.0.1:*";
    config.metrics = NULL;
    config.insecure = true;         //  every peer is admin: every command is reachable
    config.in_memory = true;
    config.heartbeat_ms = 250;
    config.max_payload = 4096;
    config.max_batch = 32;
    config.max_value = 1024;
    config.max_key = 64;
    config.max_queues = 64;
    config.max_inflight = 2000;
    config.max_clients = 200;
    config.max_workers = 200;
    config.default_timeout_ms = 300;
    config.default_backoff_ms = 1;
    config.default_result_ttl_s = 2;
    config.dead_ttl_s = 5;
    s.broker = broker_start (&config);
    CHECK (s.broker, "the broker did not start");
    CHECK (broker_endpoints (s.broker, &s.endpoint [0], &s.endpoint [1]) == 0, "no endpoints");
    for (int i = 0; i < 2; i++) {
        s.peer [i] = s_dealer (i);
        drv_random_id (s.session [i]);
    }
    s.monitor = s_dealer (0);
    uint8_t session [DRV_ID_SIZE];
    drv_random_id (session);
    s_hello (s.monitor, 0, session);
    s.inputs = 0;
}

static void
s_teardown (void)
{
    s_broker_stop ();
    drv_frames_destroy (&s.frames);
    drv_codec_destroy (&s.codec);
    if (s.ctx)
        zmq_ctx_term (s.ctx);
    s.ctx = NULL;
}

static void
s_setup (void)
{
    zsys_init ();
    zsys_set_logstream (NULL);
    //  The broker logs every refusal (rate-limited); errors only, here
    drv_log_setup (DRV_LOG_ERROR, false);
    s.ctx = zmq_ctx_new ();
    s.codec = drv_codec_new ();
    drv_frames_init (&s.frames);
    s.corr = 1ULL << 40;            //  far from the corr values the seeds use
    s_broker_start ();
    atexit (s_teardown);            //  after CZMQ's own: runs first
}

//  The well-behaved client must always be served.
static void
s_monitor_check (void)
{
    drv_msg_t msg;
    s_probe (s.monitor, &msg);
    if (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_REHELLO) {
        //  Dropped for silence while the fuzzer itself paused (three
        //  heartbeats): the broker is right; greet it again
        uint8_t session [DRV_ID_SIZE];
        drv_random_id (session);
        s_hello (s.monitor, 0, session);
        s_probe (s.monitor, &msg);
    }
    CHECK (msg.cmd == DRV_CMD_STATS_REPLY, "the monitoring client got %s (%s: %s), not STATS_REPLY",
           drv_cmd_name (msg.cmd), msg.cmd == DRV_CMD_ERROR? drv_code_name (msg.error.code): "",
           msg.cmd == DRV_CMD_ERROR? msg.error.message: "");
    s.next_check = drv_now_ms () + 200;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (!s.ctx)
        s_setup ();
    if (s.inputs >= RECYCLE_EVERY) {
        s_broker_stop ();
        s_broker_start ();
    }
    s.inputs++;
    if (size < 1)
        return 0;
    uint8_t flags = data [0];
    int worker = flags & SEED_WORKER? 1: 0;
    void *socket = flags & SEED_FRESH? s_dealer (worker): s.peer [worker];
    if (flags & SEED_HELLO) {
        uint8_t session [DRV_ID_SIZE];
        if (flags & SEED_FRESH)
            drv_random_id (session);
        else
            memcpy (session, s.session [worker], DRV_ID_SIZE);
        s_hello (socket, worker, session);
    }
    size_t at = 1;
    while (at < size) {
        unsigned frames = data [at++] & 15;
        const uint8_t *frame [16];
        size_t length [16];
        unsigned count = 0;
        while (count < frames && at + 2 <= size) {
            size_t len = data [at] | (size_t) data [at + 1] << 8;
            at += 2;
            if (len > size - at)
                len = size - at;        //  a short tail: what is left
            frame [count] = data + at;
            length [count++] = len;
            at += len;
        }
        if (count == 0)
            continue;
        //  A message cut short by the end of the input still goes out,
        //  with the frames it has
        for (unsigned i = 0; i < count; i++)
            CHECK (zmq_send (socket, frame [i], length [i], i + 1 < count? ZMQ_SNDMORE: 0)
                   == (int) length [i], "cannot send a frame");
    }
    drv_msg_t msg;
    s_probe (socket, &msg);
    if (flags & SEED_FRESH)
        zmq_close (socket);
    if (drv_now_ms () >= s.next_check)
        s_monitor_check ();
    return 0;
}

#ifndef DROVER_LIBFUZZER
static uint64_t s_state = 0x853c49e6748fea9bULL;

static uint64_t
s_rand (void)
{
    s_state ^= s_state << 13;
    s_state ^= s_state >> 7;
    s_state ^= s_state << 17;
    return s_state;
}

//  Seeds kept for splicing.
static struct {
    uint8_t *data;
    size_t size;
} s_seeds [64];
static size_t s_seed_count;
static size_t s_runs;

static void
s_keep (const char *name, const uint8_t *data, size_t size, void *arg)
{
    if (s_seed_count < 64) {
        s_seeds [s_seed_count].data = malloc (size);
        memcpy (s_seeds [s_seed_count].data, data, size);
        s_seeds [s_seed_count++].size = size;
    }
}

static void
s_run (const uint8_t *data, size_t size)
{
    LLVMFuzzerTestOneInput (data, size);
    s_runs++;
}

static int
s_run_file (const char *path)
{
    size_t size;
    char *data = drv_read_file (path, &size);
    if (!data) {
        perror (path);
        return 1;
    }
    s_run ((const uint8_t *) data, size);
    free (data);
    return 0;
}

int
main (int argc, char *argv [])
{
    if (argc > 1) {
        int rc = 0;
        for (int i = 1; i < argc; i++)
            rc |= s_run_file (argv [i]);
        s_monitor_check ();
        printf ("fuzz_broker: %d inputs replayed\n", argc - 1);
        return rc;
    }
    seeds_broker (s_keep, NULL);
    static uint8_t copy [16384];
    for (size_t n = 0; n < s_seed_count; n++) {
        const uint8_t *data = s_seeds [n].data;
        size_t size = s_seeds [n].size;
        s_run (data, size);
        //  Truncations (a few per seed: each costs a round trip)
        for (size_t cut = 1; cut < size; cut += 1 + size / 12)
            s_run (data, cut);
        //  Byte flips, other flags
        for (int round = 0; round < 150; round++) {
            memcpy (copy, data, size);
            for (int k = 0; k < 1 + (int) (s_rand () % 3); k++)
                copy [s_rand () % size] ^= (uint8_t) (1 + s_rand () % 255);
            s_run (copy, size);
        }
        //  Splices: this seed's head on another's tail
        for (int round = 0; round < 30; round++) {
            size_t other = s_rand () % s_seed_count;
            size_t head = 1 + s_rand () % size;
            size_t tail = s_rand () % s_seeds [other].size;
            if (head + s_seeds [other].size - tail > sizeof copy)
                continue;
            memcpy (copy, data, head);
            memcpy (copy + head, s_seeds [other].data + tail, s_seeds [other].size - tail);
            s_run (copy, head + s_seeds [other].size - tail);
        }
    }
    //  Random bytes behind each flag combination
    for (int round = 0; round < 2000; round++) {
        size_t size = 1 + s_rand () % 300;
        for (size_t i = 0; i < size; i++)
            copy [i] = (uint8_t) s_rand ();
        s_run (copy, size);
    }
    s_monitor_check ();
    for (size_t n = 0; n < s_seed_count; n++)
        free (s_seeds [n].data);
    printf ("fuzz_broker: %zu generated inputs, broker answered every one\n", s_runs);
    return 0;
}
#endif
