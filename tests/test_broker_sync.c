/*  test_broker_sync.c - cluster-wide locks, semaphores, events and barriers
    in the broker (docs/PROTOCOL.md "Sync primitives").

    An in-process broker (insecure, 127.0.0.1, heartbeat 200 ms) and raw
    DEALER peers speaking the codec. Every wait in this file keeps the live
    peers' heartbeats going, so a peer only dies when a test says so; the
    broker then ends its session within about 600 ms and what it held must
    pass on. Last, sync.c is driven directly to check that idle primitives
    are freed.
*/
#include "broker.h"
#include "codec.h"
#include "sync.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond) \
    do { if (!(cond)) { fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
                        exit (1); } } while (0)

#define PEERS_MAX 8
#define HEARTBEAT_MS 200

//  One raw client (or worker) connection.
typedef struct {
    void *socket;                   //  DEALER to the broker
    bool beating;                   //  sends heartbeats while the test waits
    uint64_t last_beat;             //  monotonic ms of its last heartbeat
} peer_t;

static void *s_ctx;
static drv_codec_t *s_codec;        //  encodes requests, decodes answers
static drv_frames_t s_in;           //  frames of the last answer
static uint64_t s_next_corr = 1;    //  corr of the next request
static peer_t *s_live [PEERS_MAX];  //  peers whose heartbeats the waits keep up
static size_t s_live_count;         //  entries in s_live

static void
s_put (peer_t *peer, drv_msg_t *msg)
{
    zmq_msg_t envelope;
    CHECK (drv_codec_encode (s_codec, msg, &envelope) == 0);
    CHECK (zmq_msg_send (&envelope, peer->socket, 0) >= 0);
    drv_codec_reset (s_codec);
}

//  Heartbeats for every live peer that is due one.
static void
s_beat (void)
{
    uint64_t now = drv_now_ms ();
    for (size_t i = 0; i < s_live_count; i++) {
        peer_t *peer = s_live [i];
        if (!peer->beating || now - peer->last_beat < HEARTBEAT_MS / 2)
            continue;
        drv_msg_t beat;
        drv_msg_init (&beat, DRV_CMD_HEARTBEAT, 0);
        s_put (peer, &beat);
        peer->last_beat = now;
    }
}

//  Next message for peer other than a Heartbeat, waiting at most ms.
//  Returns false if none came; the message is decoded into *msg.
static bool
s_get (peer_t *peer, int ms, drv_msg_t *msg)
{
    uint64_t until = drv_now_ms () + (uint64_t) ms;
    while (true) {
        s_beat ();
        uint64_t now = drv_now_ms ();
        if (now >= until)
            return false;
        zmq_pollitem_t item = {peer->socket, 0, ZMQ_POLLIN, 0};
        long slice = (long) (until - now) < 50? (long) (until - now): 50;
        CHECK (zmq_poll (&item, 1, slice) >= 0);
        if (!(item.revents & ZMQ_POLLIN))
            continue;
        drv_frames_clear (&s_in);
        CHECK (drv_frames_recv (peer->socket, &s_in, 0, 16) >= 1);
        CHECK (drv_codec_decode (s_codec, zmq_msg_data (&s_in.msg [0]),
                                 zmq_msg_size (&s_in.msg [0]), msg) == 0);
        if (msg->cmd != DRV_CMD_HEARTBEAT)
            return true;
    }
}

//  Waits up to ms for a SyncReply and returns its code; fence and value
//  go to the pointers that are not NULL.
static drv_code_t
s_answer (peer_t *peer, uint64_t corr, int ms, uint64_t *fence, uint32_t *value)
{
    drv_msg_t msg;
    CHECK (s_get (peer, ms, &msg));
    CHECK (msg.cmd == DRV_CMD_SYNC_REPLY);
    CHECK (msg.corr == corr);
    if (fence)
        *fence = msg.sync_reply.fence;
    if (value)
        *value = msg.sync_reply.value;
    return msg.sync_reply.code;
}

//  True if peer hears nothing (but heartbeats) for ms.
static bool
s_quiet (peer_t *peer, int ms)
{
    drv_msg_t msg;
    return !s_get (peer, ms, &msg);
}

static peer_t *
s_connect (const char *endpoint, drv_peer_kind_t kind)
{
    peer_t *peer = (peer_t *) calloc (1, sizeof *peer);
    CHECK (peer && s_live_count < PEERS_MAX);
    peer->socket = zmq_socket (s_ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt (peer->socket, ZMQ_LINGER, &linger, sizeof linger);
    CHECK (zmq_connect (peer->socket, endpoint) == 0);
    drv_msg_t hello;
    drv_msg_init (&hello, DRV_CMD_HELLO, s_next_corr++);
    hello.hello.kind = kind;
    hello.hello.version_min = hello.hello.version_max = DRV_PROTOCOL_VERSION;
    drv_random_id (hello.hello.session);
    hello.hello.name = "sync-test";
    const char *queues [] = {"q"};
    if (kind == DRV_PEER_WORKER) {
        hello.hello.queues = queues;
        hello.hello.queue_count = 1;
    }
    s_put (peer, &hello);
    drv_msg_t welcome;
    CHECK (s_get (peer, 3000, &welcome));
    CHECK (welcome.cmd == DRV_CMD_WELCOME);
    peer->beating = true;
    peer->last_beat = drv_now_ms ();
    s_live [s_live_count++] = peer;
    return peer;
}

static void
s_close (peer_t *peer)
{
    for (size_t i = 0; i < s_live_count; i++)
        if (s_live [i] == peer) {
            s_live [i] = s_live [--s_live_count];
            break;
        }
    zmq_close (peer->socket);
    free (peer);
}

//  Sends a SyncRequest; returns its corr.
static uint64_t
s_ask (peer_t *peer, drv_sync_op_t op, const char *name, uint32_t timeout_ms, uint32_t count)
{
    drv_msg_t msg;
    uint64_t corr = s_next_corr++;
    drv_msg_init (&msg, DRV_CMD_SYNC_REQUEST, corr);
    msg.sync.op = op;
    msg.sync.name = name;
    msg.sync.timeout_ms = timeout_ms;
    msg.sync.count = count;
    s_put (peer, &msg);
    return corr;
}

//  A request answered at once (within a second): its code.
static drv_code_t
s_call (peer_t *peer, drv_sync_op_t op, const char *name, uint32_t timeout_ms, uint32_t count,
        uint64_t *fence, uint32_t *value)
{
    uint64_t corr = s_ask (peer, op, name, timeout_ms, count);
    return s_answer (peer, corr, 1000, fence, value);
}

//  Sends a blocking request and checks it is waiting: a probe on the same
//  connection (a zero-timeout wait for an event nobody sets) is answered
//  first, so the broker has taken the request and not answered it. This
//  also puts successive waiters at the broker in the order sent.
static uint64_t
s_park (peer_t *peer, drv_sync_op_t op, const char *name, uint32_t timeout_ms, uint32_t count)
{
    uint64_t corr = s_ask (peer, op, name, timeout_ms, count);
    CHECK (s_call (peer, DRV_SYNC_EVENT_WAIT, "park-probe", 0, 0, NULL, NULL) == DRV_CODE_TIMEOUT);
    return corr;
}

//  Tests ----------------------------------------------------------------------

static void
s_test_lock (const char *endpoint)
{
    peer_t *a = s_connect (endpoint, DRV_PEER_CLIENT);
    peer_t *waiters [3];
    for (int i = 0; i < 3; i++)
        waiters [i] = s_connect (endpoint, DRV_PEER_CLIENT);
    uint64_t fence = 0, last = 0;

    CHECK (s_call (a, DRV_SYNC_LOCK, "build", 0, 0, &fence, NULL) == DRV_CODE_OK);
    CHECK (fence > 0);
    last = fence;
    //  Held: a try fails at once, the holder may not take it twice, and
    //  only the holder may unlock
    CHECK (s_call (waiters [0], DRV_SYNC_LOCK, "build", 0, 0, NULL, NULL) == DRV_CODE_TIMEOUT);
    CHECK (s_call (a, DRV_SYNC_LOCK, "build", 1000, 0, NULL, NULL) == DRV_CODE_BAD_STATE);
    CHECK (s_call (waiters [1], DRV_SYNC_UNLOCK, "build", 0, 0, NULL, NULL) == DRV_CODE_BAD_STATE);
    CHECK (s_call (a, DRV_SYNC_UNLOCK, "nothing-here", 0, 0, NULL, NULL) == DRV_CODE_BAD_STATE);

    //  Three waiters, granted one at a time in arrival order
    uint64_t corrs [3];
    for (int i = 0; i < 3; i++)
        corrs [i] = s_park (waiters [i], DRV_SYNC_LOCK, "build", 10000, 0);
    CHECK (s_call (a, DRV_SYNC_UNLOCK, "build", 0, 0, NULL, NULL) == DRV_CODE_OK);
    for (int i = 0; i < 3; i++) {
        CHECK (s_answer (waiters [i], corrs [i], 1000, &fence, NULL) == DRV_CODE_OK);
        CHECK (fence > last);
        last = fence;
        //  Nobody behind it got in meanwhile
        for (int j = i + 1; j < 3; j++)
            CHECK (s_quiet (waiters [j], 30));
        CHECK (s_call (waiters [i], DRV_SYNC_UNLOCK, "build", 0, 0, NULL, NULL) == DRV_CODE_OK);
    }
    CHECK (s_call (a, DRV_SYNC_LOCK, "build", 0, 0, &fence, NULL) == DRV_CODE_OK);
    CHECK (fence > last);

    //  A timed wait ends with CODE_TIMEOUT at about its deadline, and a
    //  later unlock grants nothing to it
    uint64_t start = drv_now_ms ();
    uint64_t corr = s_ask (waiters [0], DRV_SYNC_LOCK, "build", 300, 0);
    CHECK (s_answer (waiters [0], corr, 5000, NULL, NULL) == DRV_CODE_TIMEOUT);
    uint64_t took = drv_now_ms () - start;
    CHECK (took >= 290 && took < 2000);
    CHECK (s_call (a, DRV_SYNC_UNLOCK, "build", 0, 0, NULL, NULL) == DRV_CODE_OK);
    CHECK (s_quiet (waiters [0], 100));

    //  Each kind has its own names: a lock "build" and an event "build"
    CHECK (s_call (a, DRV_SYNC_LOCK, "build", 0, 0, NULL, NULL) == DRV_CODE_OK);
    CHECK (s_call (a, DRV_SYNC_EVENT_WAIT, "build", 0, 0, NULL, NULL) == DRV_CODE_TIMEOUT);
    CHECK (s_call (a, DRV_SYNC_UNLOCK, "build", 0, 0, NULL, NULL) == DRV_CODE_OK);

    s_close (a);
    for (int i = 0; i < 3; i++)
        s_close (waiters [i]);
    printf ("lock: ok\n");
}

static void
s_test_lock_lease (const char *endpoint)
{
    peer_t *holder = s_connect (endpoint, DRV_PEER_CLIENT);
    peer_t *next = s_connect (endpoint, DRV_PEER_CLIENT);
    peer_t *third = s_connect (endpoint, DRV_PEER_CLIENT);
    uint64_t first = 0, fence = 0;
    CHECK (s_call (holder, DRV_SYNC_LOCK, "lease", 0, 0, &first, NULL) == DRV_CODE_OK);
    uint64_t corr = s_park (next, DRV_SYNC_LOCK, "lease", 20000, 0);

    //  The holder goes silent (as if killed): three missed heartbeats end
    //  its session and the lock passes on
    holder->beating = false;
    uint64_t start = drv_now_ms ();
    CHECK (s_answer (next, corr, 5000, &fence, NULL) == DRV_CODE_OK);
    CHECK (drv_now_ms () - start < 3000);
    CHECK (fence > first);

    //  Bye ends a session too
    corr = s_park (third, DRV_SYNC_LOCK, "lease", 20000, 0);
    drv_msg_t bye;
    drv_msg_init (&bye, DRV_CMD_BYE, s_next_corr++);
    s_put (next, &bye);
    CHECK (s_answer (third, corr, 1000, NULL, NULL) == DRV_CODE_OK);

    //  So does a Hello on the holder's connection: it replaces the session
    peer_t *last = s_connect (endpoint, DRV_PEER_CLIENT);
    corr = s_park (last, DRV_SYNC_LOCK, "lease", 20000, 0);
    drv_msg_t hello, welcome;
    drv_msg_init (&hello, DRV_CMD_HELLO, s_next_corr++);
    hello.hello.kind = DRV_PEER_CLIENT;
    hello.hello.version_min = hello.hello.version_max = DRV_PROTOCOL_VERSION;
    drv_random_id (hello.hello.session);
    s_put (third, &hello);
    CHECK (s_get (third, 1000, &welcome) && welcome.cmd == DRV_CMD_WELCOME);
    CHECK (s_answer (last, corr, 1000, NULL, NULL) == DRV_CODE_OK);
    CHECK (s_call (third, DRV_SYNC_UNLOCK, "lease", 0, 0, NULL, NULL) == DRV_CODE_BAD_STATE);
    CHECK (s_call (last, DRV_SYNC_UNLOCK, "lease", 0, 0, NULL, NULL) == DRV_CODE_OK);
    s_close (last);
    s_close (holder);
    s_close (next);
    s_close (third);
    printf ("lock lease: ok\n");
}

static void
s_test_semaphore (const char *endpoint)
{
    peer_t *p [4];
    for (int i = 0; i < 4; i++)
        p [i] = s_connect (endpoint, DRV_PEER_CLIENT);
    uint32_t value = 99;
    CHECK (s_call (p [0], DRV_SYNC_SEM_ACQUIRE, "pool", 0, 0, NULL, NULL) == DRV_CODE_BAD_REQUEST);
    CHECK (s_call (p [0], DRV_SYNC_SEM_RELEASE, "pool", 0, 0, NULL, NULL) == DRV_CODE_BAD_STATE);
    CHECK (s_call (p [0], DRV_SYNC_SEM_ACQUIRE, "pool", 0, 2, NULL, &value) == DRV_CODE_OK);
    CHECK (value == 1);
    CHECK (s_call (p [1], DRV_SYNC_SEM_ACQUIRE, "pool", 0, 2, NULL, &value) == DRV_CODE_OK);
    CHECK (value == 0);
    //  Never more than two inside
    CHECK (s_call (p [2], DRV_SYNC_SEM_ACQUIRE, "pool", 0, 2, NULL, NULL) == DRV_CODE_TIMEOUT);
    uint64_t corr2 = s_park (p [2], DRV_SYNC_SEM_ACQUIRE, "pool", 20000, 2);
    uint64_t corr3 = s_park (p [3], DRV_SYNC_SEM_ACQUIRE, "pool", 20000, 2);
    CHECK (s_call (p [0], DRV_SYNC_SEM_RELEASE, "pool", 0, 0, NULL, &value) == DRV_CODE_OK);
    CHECK (value == 1);
    CHECK (s_answer (p [2], corr2, 1000, NULL, &value) == DRV_CODE_OK);
    CHECK (value == 0);
    CHECK (s_quiet (p [3], 100));
    //  p [0] gave its one permit back: a second release is refused
    CHECK (s_call (p [0], DRV_SYNC_SEM_RELEASE, "pool", 0, 0, NULL, NULL) == DRV_CODE_BAD_STATE);

    //  A dead holder's permit returns
    p [1]->beating = false;
    uint64_t start = drv_now_ms ();
    CHECK (s_answer (p [3], corr3, 5000, NULL, &value) == DRV_CODE_OK);
    CHECK (drv_now_ms () - start < 3000);
    CHECK (value == 0);
    CHECK (s_call (p [2], DRV_SYNC_SEM_RELEASE, "pool", 0, 0, NULL, &value) == DRV_CODE_OK);
    CHECK (value == 1);
    CHECK (s_call (p [3], DRV_SYNC_SEM_RELEASE, "pool", 0, 0, NULL, &value) == DRV_CODE_OK);
    CHECK (value == 2);
    for (int i = 0; i < 4; i++)
        s_close (p [i]);
    printf ("semaphore: ok\n");
}

static void
s_test_event (const char *endpoint)
{
    peer_t *p [4];
    for (int i = 0; i < 4; i++)
        p [i] = s_connect (endpoint, DRV_PEER_CLIENT);
    CHECK (s_call (p [0], DRV_SYNC_EVENT_WAIT, "go", 0, 0, NULL, NULL) == DRV_CODE_TIMEOUT);
    uint64_t corrs [4];
    for (int i = 1; i < 4; i++)
        corrs [i] = s_park (p [i], DRV_SYNC_EVENT_WAIT, "go", 20000, 0);
    CHECK (s_call (p [0], DRV_SYNC_EVENT_SET, "go", 0, 0, NULL, NULL) == DRV_CODE_OK);
    for (int i = 1; i < 4; i++)
        CHECK (s_answer (p [i], corrs [i], 1000, NULL, NULL) == DRV_CODE_OK);
    //  Set: waits return at once, until it is cleared
    CHECK (s_call (p [1], DRV_SYNC_EVENT_WAIT, "go", 5000, 0, NULL, NULL) == DRV_CODE_OK);
    CHECK (s_call (p [0], DRV_SYNC_EVENT_CLEAR, "go", 0, 0, NULL, NULL) == DRV_CODE_OK);
    CHECK (s_call (p [1], DRV_SYNC_EVENT_WAIT, "go", 0, 0, NULL, NULL) == DRV_CODE_TIMEOUT);
    uint64_t corr = s_ask (p [1], DRV_SYNC_EVENT_WAIT, "go", 200, 0);
    CHECK (s_answer (p [1], corr, 1000, NULL, NULL) == DRV_CODE_TIMEOUT);
    for (int i = 0; i < 4; i++)
        s_close (p [i]);
    printf ("event: ok\n");
}

static void
s_test_barrier (const char *endpoint)
{
    peer_t *p [4];
    for (int i = 0; i < 4; i++)
        p [i] = s_connect (endpoint, DRV_PEER_CLIENT);
    uint32_t last = 0;
    for (int round = 0; round < 2; round++) {
        uint64_t c0 = s_park (p [0], DRV_SYNC_BARRIER_WAIT, "stage", 20000, 3);
        uint64_t c1 = s_park (p [1], DRV_SYNC_BARRIER_WAIT, "stage", 20000, 3);
        uint64_t c2 = s_ask (p [2], DRV_SYNC_BARRIER_WAIT, "stage", 20000, 3);
        uint32_t g0 = 0, g1 = 0, g2 = 0;
        CHECK (s_answer (p [2], c2, 1000, NULL, &g2) == DRV_CODE_OK);
        CHECK (s_answer (p [0], c0, 1000, NULL, &g0) == DRV_CODE_OK);
        CHECK (s_answer (p [1], c1, 1000, NULL, &g1) == DRV_CODE_OK);
        CHECK (g0 == g2 && g1 == g2 && g2 > last);
        last = g2;
    }
    //  Another party count while a round is in progress is refused
    uint64_t c0 = s_park (p [0], DRV_SYNC_BARRIER_WAIT, "stage", 300, 3);
    CHECK (s_call (p [1], DRV_SYNC_BARRIER_WAIT, "stage", 1000, 2, NULL, NULL) == DRV_CODE_BAD_STATE);
    CHECK (s_call (p [1], DRV_SYNC_BARRIER_WAIT, "stage", 0, 0, NULL, NULL) == DRV_CODE_BAD_REQUEST);
    //  A waiter that times out leaves the round: two more are not enough
    CHECK (s_answer (p [0], c0, 1000, NULL, NULL) == DRV_CODE_TIMEOUT);
    uint64_t c1 = s_park (p [1], DRV_SYNC_BARRIER_WAIT, "stage", 20000, 3);
    uint64_t c2 = s_park (p [2], DRV_SYNC_BARRIER_WAIT, "stage", 20000, 3);
    CHECK (s_quiet (p [1], 100));
    uint64_t c3 = s_ask (p [3], DRV_SYNC_BARRIER_WAIT, "stage", 20000, 3);
    CHECK (s_answer (p [3], c3, 1000, NULL, NULL) == DRV_CODE_OK);
    CHECK (s_answer (p [1], c1, 1000, NULL, NULL) == DRV_CODE_OK);
    CHECK (s_answer (p [2], c2, 1000, NULL, NULL) == DRV_CODE_OK);
    for (int i = 0; i < 4; i++)
        s_close (p [i]);
    printf ("barrier: ok\n");
}

static void
s_test_refusals (const char *producers, const char *workers)
{
    peer_t *client = s_connect (producers, DRV_PEER_CLIENT);
    char longest [DRV_QUEUE_NAME_MAX + 2];
    memset (longest, 'n', sizeof longest - 1);
    longest [sizeof longest - 1] = 0;
    const char *bad [] = {"", "has space", "slash/y", longest};
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        CHECK (s_call (client, DRV_SYNC_LOCK, bad [i], 0, 0, NULL, NULL) == DRV_CODE_BAD_REQUEST);
    CHECK (s_call (client, (drv_sync_op_t) 99, "x", 0, 0, NULL, NULL) == DRV_CODE_BAD_REQUEST);

    //  The worker endpoint does not take SyncRequest
    peer_t *worker = s_connect (workers, DRV_PEER_WORKER);
    uint64_t corr = s_ask (worker, DRV_SYNC_LOCK, "x", 0, 0);
    drv_msg_t msg;
    CHECK (s_get (worker, 1000, &msg));
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.corr == corr);
    CHECK (msg.error.code == DRV_CODE_UNKNOWN_COMMAND);
    s_close (client);
    s_close (worker);
    printf ("refusals: ok\n");
}

//  sync.c on its own: a recording deliver, and the registry empties when
//  nothing is held or awaited any more.
static int s_delivered;             //  replies seen by s_record
static drv_code_t s_last_code;      //  code of the last one

static bool
s_record (void *arg, const uint8_t *session, uint64_t corr, drv_code_t code,
          const char *message, uint64_t fence, uint32_t value)
{
    (void) arg, (void) session, (void) corr, (void) message, (void) fence, (void) value;
    s_delivered++;
    s_last_code = code;
    return true;
}

//  The deadline heap under many waiters, some leaving from the middle:
//  timeouts come out in deadline order, none early, none lost.
static uint64_t s_deadline [1000];  //  deadline of the waiter with corr i
static uint64_t s_step_from;        //  expiry step: lower bound (exclusive)
static uint64_t s_step_to;          //  expiry step: upper bound (inclusive)

static bool
s_check_step (void *arg, const uint8_t *session, uint64_t corr, drv_code_t code,
              const char *message, uint64_t fence, uint32_t value)
{
    (void) arg, (void) session, (void) message, (void) fence, (void) value;
    CHECK (code == DRV_CODE_TIMEOUT && corr < 1000);
    CHECK (s_deadline [corr] > s_step_from && s_deadline [corr] <= s_step_to);
    s_delivered++;
    return true;
}

static void
s_test_heap (void)
{
    sync_t *sync = sync_new (s_check_step, NULL, 0);
    CHECK (sync);
    s_delivered = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        uint8_t session [DRV_ID_SIZE] = {(uint8_t) (i % 50)};
        sync_request_t wait = {DRV_SYNC_EVENT_WAIT, "h", (uint32_t) (i * 7919 % 997) + 1, 0};
        s_deadline [i] = wait.timeout_ms;
        sync_request (sync, session, i, &wait, 0);
    }
    CHECK (s_delivered == 0);
    for (uint8_t gone = 0; gone < 10; gone++) {
        uint8_t session [DRV_ID_SIZE] = {gone};
        sync_session_drop (sync, session);
    }
    for (uint64_t now = 10; now <= 1000; now += 10) {
        s_step_to = now;
        sync_expire (sync, now);
        CHECK (sync_next_deadline (sync) > now);
        s_step_from = now;
    }
    CHECK (s_delivered == 800);
    CHECK (sync_size (sync) == 0);
    sync_destroy (&sync);
    printf ("deadline heap: ok\n");
}

static void
s_test_registry (void)
{
    sync_t *sync = sync_new (s_record, NULL, 0);
    CHECK (sync);
    uint8_t one [DRV_ID_SIZE] = {1}, two [DRV_ID_SIZE] = {2};
    sync_request_t lock = {DRV_SYNC_LOCK, "l", 1000, 0};
    sync_request_t sem = {DRV_SYNC_SEM_ACQUIRE, "s", 1000, 1};
    sync_request_t set = {DRV_SYNC_EVENT_SET, "e", 0, 0};
    sync_request_t clear = {DRV_SYNC_EVENT_CLEAR, "e", 0, 0};
    sync_request_t wait = {DRV_SYNC_EVENT_WAIT, "w", 500, 0};
    sync_request_t barrier = {DRV_SYNC_BARRIER_WAIT, "b", 800, 2};
    sync_request (sync, one, 1, &lock, 0);
    sync_request (sync, two, 2, &lock, 0);          //  waits
    sync_request (sync, one, 3, &sem, 0);
    sync_request (sync, two, 4, &sem, 0);           //  waits
    sync_request (sync, one, 5, &set, 0);
    sync_request (sync, two, 6, &wait, 0);          //  waits
    sync_request (sync, two, 7, &barrier, 0);       //  waits
    CHECK (s_delivered == 3);
    CHECK (sync_size (sync) == 5);
    CHECK (sync_next_deadline (sync) == 500);
    //  One's end hands the lock and permit to two
    sync_session_drop (sync, one);
    CHECK (s_delivered == 5 && s_last_code == DRV_CODE_OK);
    sync_expire (sync, 499);
    CHECK (s_delivered == 5);
    sync_expire (sync, 800);
    CHECK (s_delivered == 7 && s_last_code == DRV_CODE_TIMEOUT);
    CHECK (sync_next_deadline (sync) == UINT64_MAX);
    sync_request (sync, one, 8, &clear, 0);
    sync_session_drop (sync, two);
    CHECK (sync_size (sync) == 0);
    //  Left-overs are freed by destroy (valgrind checks)
    sync_request (sync, one, 9, &lock, 0);
    sync_request (sync, two, 10, &lock, 0);
    sync_destroy (&sync);
    CHECK (!sync);
    printf ("registry: ok\n");
}

int
main (void)
{
    s_test_registry ();
    s_test_heap ();
    s_ctx = zmq_ctx_new ();
    s_codec = drv_codec_new ();
    drv_frames_init (&s_in);
    broker_config_t config;
    broker_config_defaults (&config);
    config.producers = "tcp://127.0.0.1:*";
    config.workers = "tcp://127.0.0.1:*";
    config.insecure = true;
    config.in_memory = true;
    config.heartbeat_ms = HEARTBEAT_MS;
    zactor_t *broker = broker_start (&config);
    CHECK (broker);
    char *producers = NULL, *workers = NULL;
    CHECK (broker_endpoints (broker, &producers, &workers) == 0);

    s_test_lock (producers);
    s_test_lock_lease (producers);
    s_test_semaphore (producers);
    s_test_event (producers);
    s_test_barrier (producers);
    s_test_refusals (producers, workers);

    zactor_destroy (&broker);
    zstr_free (&producers);
    zstr_free (&workers);
    drv_frames_destroy (&s_in);
    drv_codec_destroy (&s_codec);
    zmq_ctx_term (s_ctx);
    printf ("test_broker_sync: all passed\n");
    return 0;
}
