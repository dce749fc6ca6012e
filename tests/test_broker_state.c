/*  test_broker_state.c - shared state in the broker: StateRequest ops, the
    PUB channel and durability.

    Runs the broker in process (insecure, 127.0.0.1, OS-chosen ports) and
    talks to it through a raw DEALER and raw SUB sockets with the codec, so
    the wire rules of docs/PROTOCOL.md "Shared state" are checked directly.
*/
#include "broker.h"
#include "codec.h"
#include "persist.h"
#include "state.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(cond) \
    do { if (!(cond)) { fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); exit (1); } } while (0)

static void *s_ctx;
static drv_codec_t *s_enc;          //  builds requests
static drv_codec_t *s_dec;          //  decodes answers (valid until the next)
static drv_frames_t s_frames;       //  frames of the last answer
static uint64_t s_corr = 1;

//  A running broker and its endpoints.
typedef struct {
    zactor_t *actor;                //  the broker
    char *producers;                //  client endpoint
    char *workers;                  //  worker endpoint
    char *state;                    //  PUB endpoint
} broker_t;

static volatile int s_sync_fails;   //  makes fdatasync fail while set

static int
s_faulty_fdatasync (int fd)
{
    if (s_sync_fails) {
        errno = EIO;
        return -1;
    }
    return fdatasync (fd);
}

static const journal_io_t s_faulty_io = {NULL, s_faulty_fdatasync, NULL};

//  dir NULL: in memory. max_value 1000 keeps the size tests small.
static broker_t
s_broker (const char *dir)
{
    broker_config_t config;
    broker_config_defaults (&config);
    config.producers = "tcp://127.0.0.1:*";
    config.workers = "tcp://127.0.0.1:*";
    config.insecure = true;
    config.max_value = 1000;
    config.in_memory = dir == NULL;
    config.data_dir = dir;
    config.io = &s_faulty_io;
    //  No sequence beacons (sent once a heartbeat) inside the checked
    //  update streams, and raw peers that never heartbeat stay known
    config.heartbeat_ms = 60000;
    broker_t broker;
    broker.actor = broker_start (&config);
    CHECK (broker.actor);
    CHECK (broker_endpoints (broker.actor, &broker.producers, &broker.workers) == 0);
    CHECK (broker_state_endpoint (broker.actor, &broker.state) == 0);
    CHECK (strncmp (broker.state, "tcp://127.0.0.1:", 16) == 0);
    return broker;
}

static void
s_broker_stop (broker_t *broker)
{
    zactor_destroy (&broker->actor);
    zstr_free (&broker->producers);
    zstr_free (&broker->workers);
    zstr_free (&broker->state);
}

//  Sends msg with count payloads (data/size pairs).
static void
s_send (void *socket, drv_msg_t *msg, const void **data, const size_t *size, size_t count)
{
    zmq_msg_t envelope;
    CHECK (drv_codec_encode (s_enc, msg, &envelope) == 0);
    CHECK (zmq_msg_send (&envelope, socket, count? ZMQ_SNDMORE: 0) >= 0);
    for (size_t i = 0; i < count; i++)
        CHECK (zmq_send (socket, data [i], size [i], i + 1 < count? ZMQ_SNDMORE: 0) >= 0);
    drv_codec_reset (s_enc);
}

//  Receives one message (3 s at most) and decodes its first frame (after
//  skip frames: 1 for the SUB topic).
static drv_msg_t
s_recv (void *socket, size_t skip)
{
    drv_frames_clear (&s_frames);
    int total = drv_frames_recv (socket, &s_frames, 0, 100000);
    CHECK (total > (int) skip);
    drv_msg_t msg;
    zmq_msg_t *envelope = &s_frames.msg [skip];
    CHECK (drv_codec_decode (s_dec, zmq_msg_data (envelope), zmq_msg_size (envelope), &msg) == 0);
    return msg;
}

//  A connected, welcomed peer of the given kind.
static void *
s_peer (const char *endpoint, drv_peer_kind_t kind, drv_msg_t *welcome)
{
    void *socket = zmq_socket (s_ctx, ZMQ_DEALER);
    int timeout = 3000, linger = 0;
    zmq_setsockopt (socket, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt (socket, ZMQ_LINGER, &linger, sizeof linger);
    CHECK (zmq_connect (socket, endpoint) == 0);
    drv_msg_t hello;
    drv_msg_init (&hello, DRV_CMD_HELLO, s_corr++);
    hello.hello.kind = kind;
    drv_random_id (hello.hello.session);
    hello.hello.name = "test";
    const char *queues [] = {"q"};
    if (kind == DRV_PEER_WORKER) {
        hello.hello.queues = queues;
        hello.hello.queue_count = 1;
        hello.hello.credit = 1;
    }
    hello.hello.version_min = hello.hello.version_max = DRV_PROTOCOL_VERSION;
    s_send (socket, &hello, NULL, NULL, 0);
    drv_msg_t msg = s_recv (socket, 0);
    CHECK (msg.cmd == DRV_CMD_WELCOME);
    if (welcome)
        *welcome = msg;
    return socket;
}

//  One StateRequest and its reply; the reply's value frames are s_value().
static drv_msg_t
s_state (void *client, drv_state_op_t op, const char *ns, const char *key, const char *value,
         uint64_t expect, int64_t delta, uint32_t limit)
{
    drv_msg_t req;
    drv_msg_init (&req, DRV_CMD_STATE_REQUEST, s_corr++);
    req.state.op = op;
    req.state.ns = ns;
    req.state.key = (const uint8_t *) key;
    req.state.key_size = key? strlen (key): 0;
    req.state.expect_version = expect;
    req.state.delta = delta;
    req.state.limit = limit;
    req.count = 1;
    const void *data [1] = {value? value: ""};
    size_t size [1] = {value? strlen (value): 0};
    s_send (client, &req, data, size, 1);
    drv_msg_t reply = s_recv (client, 0);
    CHECK (reply.corr == req.corr);
    if (reply.cmd == DRV_CMD_STATE_REPLY)
        CHECK (s_frames.count == 1 + reply.count);
    return reply;
}

//  Whether payload frame i of the last DEALER answer holds text.
static bool
s_value_is (size_t i, const char *text)
{
    zmq_msg_t *frame = &s_frames.msg [1 + i];
    return zmq_msg_size (frame) == strlen (text) && memcmp (zmq_msg_data (frame), text, strlen (text)) == 0;
}

static bool
s_key_is (const drv_state_entry_t *entry, const char *text)
{
    return entry->key_size == strlen (text) && memcmp (entry->key, text, entry->key_size) == 0;
}

static char *
s_filled (size_t size)
{
    char *text = malloc (size + 1);
    CHECK (text);
    memset (text, 'x', size);
    text [size] = 0;
    return text;
}

static void
test_ops (void)
{
    broker_t broker = s_broker (NULL);
    drv_msg_t welcome;
    void *client = s_peer (broker.producers, DRV_PEER_CLIENT, &welcome);
    CHECK (welcome.welcome.max_value == 1000);
    const char *colon = strrchr (broker.state, ':');
    CHECK (welcome.welcome.state_port == (uint32_t) atoi (colon + 1));

    //  SET, GET, versions and seq
    drv_msg_t r = s_state (client, DRV_STATE_SET, "ns", "k1", "v1", 0, 0, 0);
    CHECK (r.cmd == DRV_CMD_STATE_REPLY && r.state_reply.code == DRV_CODE_OK);
    CHECK (r.count == 1 && r.entries [0].version == 1 && r.state_reply.seq == 1);
    r = s_state (client, DRV_STATE_SET, "ns", "k1", "v2", 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_OK && r.entries [0].version == 2);
    CHECK (r.state_reply.seq == 2);
    r = s_state (client, DRV_STATE_GET, "ns", "k1", NULL, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_OK && r.count == 1 && r.entries [0].version == 2);
    CHECK (s_key_is (&r.entries [0], "k1") && s_value_is (0, "v2") && r.state_reply.seq == 2);

    //  Missing key, missing namespace: NOT_FOUND with the key at version 0
    r = s_state (client, DRV_STATE_GET, "ns", "nope", NULL, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_NOT_FOUND && r.count == 1);
    CHECK (r.entries [0].version == 0 && s_key_is (&r.entries [0], "nope") && s_value_is (0, ""));
    CHECK (strstr (r.state_reply.message, "no such key"));
    r = s_state (client, DRV_STATE_GET, "other", "k1", NULL, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_NOT_FOUND && strstr (r.state_reply.message, "namespace"));

    //  DEL
    r = s_state (client, DRV_STATE_DEL, "ns", "k1", NULL, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_OK && r.state_reply.seq == 3);
    r = s_state (client, DRV_STATE_DEL, "ns", "k1", NULL, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_NOT_FOUND && r.state_reply.seq == 3);
    r = s_state (client, DRV_STATE_GET, "ns", "k1", NULL, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_NOT_FOUND);

    //  CAS: 0 = must not exist; match; mismatch returns the current entry
    r = s_state (client, DRV_STATE_CAS, "ns", "c", "one", 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_OK && r.entries [0].version == 1);
    r = s_state (client, DRV_STATE_CAS, "ns", "c", "again", 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_CONFLICT && r.count == 1);
    CHECK (r.entries [0].version == 1 && s_value_is (0, "one"));
    r = s_state (client, DRV_STATE_CAS, "ns", "c", "two", 1, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_OK && r.entries [0].version == 2);
    r = s_state (client, DRV_STATE_CAS, "ns", "c", "three", 1, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_CONFLICT && r.entries [0].version == 2);
    CHECK (s_value_is (0, "two"));
    r = s_state (client, DRV_STATE_CAS, "ns", "missing", "x", 4, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_CONFLICT && r.entries [0].version == 0);
    CHECK (s_value_is (0, ""));

    //  INCR: missing = 0, negative deltas, non-integers and overflow refused
    r = s_state (client, DRV_STATE_INCR, "ns", "n", NULL, 0, 5, 0);
    CHECK (r.state_reply.code == DRV_CODE_OK && s_value_is (0, "5") && r.entries [0].version == 1);
    r = s_state (client, DRV_STATE_INCR, "ns", "n", NULL, 0, -7, 0);
    CHECK (r.state_reply.code == DRV_CODE_OK && s_value_is (0, "-2") && r.entries [0].version == 2);
    r = s_state (client, DRV_STATE_INCR, "ns", "c", NULL, 0, 1, 0);
    CHECK (r.state_reply.code == DRV_CODE_BAD_REQUEST);
    s_state (client, DRV_STATE_SET, "ns", "big", "9223372036854775807", 0, 0, 0);
    r = s_state (client, DRV_STATE_INCR, "ns", "big", NULL, 0, 1, 0);
    CHECK (r.state_reply.code == DRV_CODE_BAD_REQUEST && strstr (r.state_reply.message, "overflow"));
    r = s_state (client, DRV_STATE_INCR, "ns", "big", NULL, 0, -1, 0);
    CHECK (r.state_reply.code == DRV_CODE_OK && s_value_is (0, "9223372036854775806"));

    //  Sizes: key 1..1024, value up to max_value
    char *key = s_filled (1025);
    r = s_state (client, DRV_STATE_SET, "ns", key, "v", 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_TOO_LARGE);
    key [1024] = 0;
    r = s_state (client, DRV_STATE_SET, "ns", key, "v", 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_OK);
    s_state (client, DRV_STATE_DEL, "ns", key, NULL, 0, 0, 0);
    free (key);
    r = s_state (client, DRV_STATE_GET, "ns", "", NULL, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_BAD_REQUEST);
    char *value = s_filled (1001);
    r = s_state (client, DRV_STATE_SET, "ns", "v", value, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_TOO_LARGE && strstr (r.state_reply.message, "max_value"));
    value [1000] = 0;
    r = s_state (client, DRV_STATE_SET, "ns", "v", value, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_OK);
    r = s_state (client, DRV_STATE_GET, "ns", "v", NULL, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_OK && s_value_is (0, value));
    free (value);

    //  Bad namespace names and operations
    r = s_state (client, DRV_STATE_SET, "bad name!", "k", "v", 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_BAD_REQUEST && strstr (r.state_reply.message, "namespace"));
    r = s_state (client, DRV_STATE_GET, "", "k", NULL, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_BAD_REQUEST);
    r = s_state (client, (drv_state_op_t) 42, "ns", "k", NULL, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_BAD_REQUEST);

    //  LIST by prefix, in key order, with limit; other namespaces untouched
    const char *keys [] = {"p/b", "q/a", "p/a", "p", "p/c", "o"};
    for (size_t i = 0; i < 6; i++)
        CHECK (s_state (client, DRV_STATE_SET, "list", keys [i], keys [i], 0, 0, 0)
               .state_reply.code == DRV_CODE_OK);
    s_state (client, DRV_STATE_SET, "list2", "p/0", "x", 0, 0, 0);
    r = s_state (client, DRV_STATE_LIST, "list", "p/", NULL, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_OK && r.count == 3 && r.state_reply.seq == 6);
    CHECK (s_key_is (&r.entries [0], "p/a") && s_key_is (&r.entries [1], "p/b")
        && s_key_is (&r.entries [2], "p/c"));
    CHECK (s_value_is (0, "p/a") && s_value_is (2, "p/c") && r.entries [1].version == 1);
    r = s_state (client, DRV_STATE_LIST, "list", "p/", NULL, 0, 0, 2);
    CHECK (r.count == 2 && s_key_is (&r.entries [1], "p/b"));
    r = s_state (client, DRV_STATE_LIST, "list", "", NULL, 0, 0, 0);
    CHECK (r.count == 6 && s_key_is (&r.entries [0], "o") && s_key_is (&r.entries [1], "p")
        && s_key_is (&r.entries [5], "q/a"));
    r = s_state (client, DRV_STATE_LIST, "nothing", "", NULL, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_OK && r.count == 0 && r.state_reply.seq == 0);

    //  SNAPSHOT: everything with the seq it reflects
    r = s_state (client, DRV_STATE_SNAPSHOT, "list", NULL, NULL, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_OK && r.count == 6 && r.state_reply.seq == 6);
    CHECK (s_key_is (&r.entries [3], "p/b") && s_value_is (3, "p/b"));

    //  The worker endpoint does not take StateRequests
    void *worker = s_peer (broker.workers, DRV_PEER_WORKER, NULL);
    r = s_state (worker, DRV_STATE_GET, "ns", "k", NULL, 0, 0, 0);
    CHECK (r.cmd == DRV_CMD_ERROR && r.error.code == DRV_CODE_UNKNOWN_COMMAND);

    //  A StateRequest without its payload frame is malformed
    drv_msg_t req;
    drv_msg_init (&req, DRV_CMD_STATE_REQUEST, s_corr++);
    req.state.op = DRV_STATE_GET;
    req.state.ns = "ns";
    req.state.key = (const uint8_t *) "k";
    req.state.key_size = 1;
    req.count = 1;
    s_send (client, &req, NULL, NULL, 0);
    r = s_recv (client, 0);
    CHECK (r.cmd == DRV_CMD_ERROR && r.error.code == DRV_CODE_BAD_REQUEST);

    zmq_close (worker);
    zmq_close (client);
    s_broker_stop (&broker);
}

static void *
s_sub (const char *endpoint, const char *ns)
{
    void *sub = zmq_socket (s_ctx, ZMQ_SUB);
    int timeout = 3000, linger = 0;
    zmq_setsockopt (sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt (sub, ZMQ_LINGER, &linger, sizeof linger);
    //  The topic is the name and its zero byte
    CHECK (zmq_setsockopt (sub, ZMQ_SUBSCRIBE, ns, strlen (ns) + 1) == 0);
    CHECK (zmq_connect (sub, endpoint) == 0);
    return sub;
}

//  Receives one update and checks its framing; returns it.
static drv_msg_t
s_update (void *sub, const char *ns)
{
    drv_msg_t msg = s_recv (sub, 1);
    CHECK (s_frames.count == 3);
    CHECK (zmq_msg_size (&s_frames.msg [0]) == strlen (ns) + 1);
    CHECK (memcmp (zmq_msg_data (&s_frames.msg [0]), ns, strlen (ns) + 1) == 0);
    CHECK (msg.cmd == DRV_CMD_STATE_UPDATE && streq (msg.update.ns, ns));
    return msg;
}

static bool
s_update_value_is (const char *text)
{
    zmq_msg_t *frame = &s_frames.msg [2];
    return zmq_msg_size (frame) == strlen (text) && memcmp (zmq_msg_data (frame), text, strlen (text)) == 0;
}

static void
test_pub (void)
{
    broker_t broker = s_broker (NULL);
    void *client = s_peer (broker.producers, DRV_PEER_CLIENT, NULL);
    void *sub = s_sub (broker.state, "ab");
    void *sub_abc = s_sub (broker.state, "abc");
    //  Subscriptions travel asynchronously: wait until one arrives
    int timeout = 100;
    zmq_setsockopt (sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt (sub_abc, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    bool joined = false, joined_abc = false;
    for (int i = 0; i < 50 && !(joined && joined_abc); i++) {
        s_state (client, DRV_STATE_SET, "ab", "sync", "x", 0, 0, 0);
        s_state (client, DRV_STATE_SET, "abc", "sync", "x", 0, 0, 0);
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        while (zmq_msg_recv (&frame, sub, 0) >= 0)
            joined = true;
        while (zmq_msg_recv (&frame, sub_abc, 0) >= 0)
            joined_abc = true;
        zmq_msg_close (&frame);
    }
    CHECK (joined && joined_abc);
    timeout = 3000;
    zmq_setsockopt (sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt (sub_abc, ZMQ_RCVTIMEO, &timeout, sizeof timeout);

    uint64_t seq = s_state (client, DRV_STATE_SNAPSHOT, "ab", NULL, NULL, 0, 0, 0).state_reply.seq;
    uint64_t seq_abc = s_state (client, DRV_STATE_SNAPSHOT, "abc", NULL, NULL, 0, 0, 0).state_reply.seq;
    //  Interleave changes to "ab" and "abc"
    for (int i = 0; i < 20; i++) {
        char value [16];
        snprintf (value, sizeof value, "%d", i);
        s_state (client, DRV_STATE_SET, "ab", "k", value, 0, 0, 0);
        s_state (client, DRV_STATE_SET, "abc", "k", value, 0, 0, 0);
    }
    s_state (client, DRV_STATE_DEL, "ab", "k", NULL, 0, 0, 0);
    s_state (client, DRV_STATE_INCR, "ab", "n", NULL, 0, 3, 0);
    //  "ab\0" gets only "ab", each change with the next seq
    for (int i = 0; i < 20; i++) {
        char value [16];
        snprintf (value, sizeof value, "%d", i);
        drv_msg_t u = s_update (sub, "ab");
        CHECK (u.update.seq == seq + 1 + (uint64_t) i);
        CHECK (u.update.key_size == 1 && u.update.key [0] == 'k' && !u.update.deleted);
        CHECK (u.update.version == (uint64_t) i + 1 && s_update_value_is (value));
    }
    drv_msg_t u = s_update (sub, "ab");
    CHECK (u.update.seq == seq + 21 && u.update.deleted && u.update.version == 0 && s_update_value_is (""));
    u = s_update (sub, "ab");
    CHECK (u.update.seq == seq + 22 && !u.update.deleted && s_update_value_is ("3"));
    //  and "abc" only "abc"
    for (int i = 0; i < 20; i++) {
        u = s_update (sub_abc, "abc");
        CHECK (u.update.seq == seq_abc + 1 + (uint64_t) i);
    }
    timeout = 200;
    zmq_setsockopt (sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_msg_t frame;
    zmq_msg_init (&frame);
    CHECK (zmq_msg_recv (&frame, sub, 0) < 0 && zmq_errno () == EAGAIN);
    zmq_msg_close (&frame);
    //  Refused requests change nothing and publish nothing
    s_state (client, DRV_STATE_CAS, "ab", "n", "x", 99, 0, 0);
    s_state (client, DRV_STATE_DEL, "ab", "absent", NULL, 0, 0, 0);
    s_state (client, DRV_STATE_SET, "ab", "after", "y", 0, 0, 0);
    u = s_update (sub, "ab");
    CHECK (u.update.seq == seq + 23 && s_update_value_is ("y"));

    zmq_close (sub);
    zmq_close (sub_abc);
    zmq_close (client);
    s_broker_stop (&broker);
}

static void
test_durable (void)
{
    char dir [] = "/tmp/drover-state-XXXXXX";
    CHECK (mkdtemp (dir));
    broker_t broker = s_broker (dir);
    void *client = s_peer (broker.producers, DRV_PEER_CLIENT, NULL);
    s_state (client, DRV_STATE_SET, "d", "a", "alpha", 0, 0, 0);
    s_state (client, DRV_STATE_SET, "d", "b", "beta", 0, 0, 0);
    s_state (client, DRV_STATE_SET, "d", "b", "beta2", 0, 0, 0);
    s_state (client, DRV_STATE_SET, "d", "gone", "x", 0, 0, 0);
    s_state (client, DRV_STATE_DEL, "d", "gone", NULL, 0, 0, 0);
    s_state (client, DRV_STATE_INCR, "d", "n", NULL, 0, 41, 0);
    drv_msg_t r = s_state (client, DRV_STATE_INCR, "d", "n", NULL, 0, 1, 0);
    CHECK (r.state_reply.seq == 7);

    //  A failing disk: writes refused (reads of that turn too), nothing
    //  changes, no seq is used
    s_sync_fails = 1;
    r = s_state (client, DRV_STATE_SET, "d", "a", "lost", 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_UNAVAILABLE);
    r = s_state (client, DRV_STATE_SET, "d", "a", "lost", 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_UNAVAILABLE);
    s_sync_fails = 0;
    r = s_state (client, DRV_STATE_GET, "d", "a", NULL, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_OK && s_value_is (0, "alpha") && r.state_reply.seq == 7);
    CHECK (r.entries [0].version == 1);
    //  Writes come back within the retry delay (one second)
    for (int i = 0; i < 40; i++) {
        r = s_state (client, DRV_STATE_SET, "d", "c", "gamma", 0, 0, 0);
        if (r.state_reply.code == DRV_CODE_OK)
            break;
        zclock_sleep (50);
    }
    CHECK (r.state_reply.code == DRV_CODE_OK && r.state_reply.seq == 8);
    zmq_close (client);
    s_broker_stop (&broker);

    //  Restart: values, versions and seq survive
    broker = s_broker (dir);
    client = s_peer (broker.producers, DRV_PEER_CLIENT, NULL);
    r = s_state (client, DRV_STATE_SNAPSHOT, "d", NULL, NULL, 0, 0, 0);
    CHECK (r.state_reply.code == DRV_CODE_OK && r.state_reply.seq == 8 && r.count == 4);
    CHECK (s_key_is (&r.entries [0], "a") && s_value_is (0, "alpha"));
    CHECK (s_key_is (&r.entries [1], "b") && s_value_is (1, "beta2") && r.entries [1].version == 2);
    CHECK (s_key_is (&r.entries [2], "c") && s_value_is (2, "gamma"));
    CHECK (s_key_is (&r.entries [3], "n") && s_value_is (3, "42") && r.entries [3].version == 2);
    r = s_state (client, DRV_STATE_SET, "d", "a", "alpha2", 0, 0, 0);
    CHECK (r.state_reply.seq == 9 && r.entries [0].version == 2);
    //  Deleting the last key keeps the namespace's seq across a restart
    s_state (client, DRV_STATE_SET, "e", "only", "1", 0, 0, 0);
    r = s_state (client, DRV_STATE_DEL, "e", "only", NULL, 0, 0, 0);
    CHECK (r.state_reply.seq == 2);
    zmq_close (client);
    s_broker_stop (&broker);

    broker = s_broker (dir);
    client = s_peer (broker.producers, DRV_PEER_CLIENT, NULL);
    r = s_state (client, DRV_STATE_SET, "e", "next", "1", 0, 0, 0);
    CHECK (r.state_reply.seq == 3);
    r = s_state (client, DRV_STATE_GET, "d", "a", NULL, 0, 0, 0);
    CHECK (s_value_is (0, "alpha2") && r.state_reply.seq == 9);
    zmq_close (client);
    s_broker_stop (&broker);
    char command [128];
    snprintf (command, sizeof command, "rm -rf %s", dir);
    CHECK (system (command) == 0);
}

static queue_t *
s_no_queue (const char *name, void *arg)
{
    (void) name;
    (void) arg;
    return NULL;
}

static void
s_put (state_t *state, journal_t *journal, const char *ns_name, const char *key, const char *text)
{
    state_ns_t *ns = state_ns_require (state, ns_name);
    CHECK (ns);
    state_entry_t *old = state_get (ns, (const uint8_t *) key, strlen (key));
    zmq_msg_t value;
    CHECK (zmq_msg_init_size (&value, strlen (text)) == 0);
    memcpy (zmq_msg_data (&value), text, strlen (text));
    state_entry_t *entry = state_put (state, ns, (const uint8_t *) key, strlen (key),
                                      old? old->version + 1: 1, &value);
    CHECK (entry);
    CHECK (persist_state_set (journal, ns_name, entry, ++ns->seq) == 0);
}

//  Compaction writes every entry and each namespace's seq; replay of the
//  compacted journal gives the same state, seq included.
static void
test_compaction (void)
{
    char dir [] = "/tmp/drover-state-XXXXXX";
    CHECK (mkdtemp (dir));
    char why [256];
    journal_t *journal = journal_open (dir, NULL, why, sizeof why);
    CHECK (journal);
    job_store_t *jobs = job_store_new ();
    state_t *state = state_new ();
    CHECK (persist_replay (journal, jobs, state, s_no_queue, NULL, NULL, why, sizeof why) == 0);
    s_put (state, journal, "x", "k2", "two");
    s_put (state, journal, "x", "k1", "one");
    s_put (state, journal, "x", "k1", "uno");
    s_put (state, journal, "y", "only", "1");
    state_ns_t *y = state_ns_find (state, "y");
    state_remove (state, y, (const uint8_t *) "only", 4);
    CHECK (persist_state_del (journal, "y", (const uint8_t *) "only", 4, ++y->seq) == 0);
    CHECK (journal_commit (journal, why, sizeof why) == 0);
    CHECK (persist_compact (journal, jobs, state, NULL, 0, why, sizeof why) == 0);
    journal_close (&journal);
    state_destroy (&state);

    journal = journal_open (dir, NULL, why, sizeof why);
    CHECK (journal);
    state = state_new ();
    CHECK (persist_replay (journal, jobs, state, s_no_queue, NULL, NULL, why, sizeof why) == 0);
    state_ns_t *x = state_ns_find (state, "x");
    y = state_ns_find (state, "y");
    CHECK (x && x->seq == 3 && x->count == 2);
    CHECK (x->entries [0]->key_size == 2 && memcmp (x->entries [0]->key, "k1", 2) == 0);
    CHECK (x->entries [0]->version == 2 && zmq_msg_size (&x->entries [0]->value) == 3);
    CHECK (memcmp (zmq_msg_data (&x->entries [0]->value), "uno", 3) == 0);
    CHECK (y && y->seq == 2 && y->count == 0);
    journal_close (&journal);
    state_destroy (&state);
    job_store_destroy (&jobs);
    char command [128];
    snprintf (command, sizeof command, "rm -rf %s", dir);
    CHECK (system (command) == 0);
}

int
main (void)
{
    zsys_init ();
    zsys_set_logstream (NULL);
    drv_log_setup (DRV_LOG_ERROR, false);
    s_ctx = zmq_ctx_new ();
    s_enc = drv_codec_new ();
    s_dec = drv_codec_new ();
    drv_frames_init (&s_frames);
    test_ops ();
    printf ("ops ok\n");
    test_pub ();
    printf ("pub ok\n");
    test_durable ();
    printf ("durable ok\n");
    test_compaction ();
    printf ("compaction ok\n");
    drv_frames_destroy (&s_frames);
    drv_codec_destroy (&s_enc);
    drv_codec_destroy (&s_dec);
    zmq_ctx_term (s_ctx);
    return 0;
}
