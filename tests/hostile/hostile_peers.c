/*  hostile_peers.c - a real droverd serving honest peers among hostile ones.

        hostile_peers DROVERD

    Starts droverd with CURVE and an allow-list. Several authenticated
    hostile peers (producer and worker keys) send thousands of bad
    messages on both endpoints: random bytes, valid envelopes with the
    wrong number of frames, commands before Hello, Reports for jobs that do
    not exist, batch counts over the limit, oversized frames, Credit floods,
    state and sync requests with absurd sizes, counts and timeouts, commands
    of the other endpoint, and connections opened, greeted and dropped in
    quick succession. They never read a reply, and their sockets hold at
    most a few messages each way.

    Meanwhile an honest producer (the SDK) submits 2000 jobs that an honest
    SDK worker runs, and asks for Stats and shared state now and then.

    Checks: every honest job completes with the right result; every honest
    request is answered (latency recorded); droverd stays alive; its
    resident memory stays under 200 MiB and does not keep growing while
    the attack goes on after the honest work is done; it still answers
    Stats at the end, and stops cleanly on SIGTERM.

    Why 200 MiB: the broker needs about 10 MiB; the honest jobs (2000 x
    under 100 bytes) and what hostile keys may legitimately leave behind
    (a few hundred jobs, the queues their Hellos name, the state keys they
    set) add a few MiB; ZeroMQ's pipes to peers that never read are
    bounded by high-water marks. Everything beyond that would be memory a
    hostile peer can make the broker hold for nothing.
*/
#include "harness.h"
#include "codec.h"
#include "util.h"
#include "drover.h"

#include <pthread.h>
#include <stdatomic.h>

#define HONEST_JOBS     2000
#define HONEST_BATCH    100
#define HOSTILE_THREADS 6
#define MAX_PAYLOAD     65536       //  droverd --max-payload
#define RSS_LIMIT_KIB   (200 * 1024 * HH_MEMORY_FACTOR)
#define LAST_PHASE_MS   6000
#define WARM_UP_MS      2000
#define AMPLIFIER_MS    5000
#define AMPLIFIER_KIB   (64 * 1024 * HH_MEMORY_FACTOR)  //  what one peer that never reads may cost

static atomic_bool s_stop;
static atomic_ulong s_sent;         //  hostile messages the sockets took
static atomic_ulong s_refused;      //  hostile sends refused (EAGAIN: HWM)
static atomic_ulong s_connections;  //  hostile connections opened

//  RSS samples (KiB) every 100 ms from the sampling thread.
static long s_rss [2000];
static uint64_t s_rss_at [2000];
static atomic_int s_rss_count;

//  A hostile peer --------------------------------------------------------

typedef struct {
    int who;                    //  HH_PRODUCER or HH_WORKER
    void *ctx;                  //  its ZeroMQ context
    void *socket;               //  the current long-lived connection
    const char *home;           //  endpoint of its role
    const char *other;          //  the other endpoint
    drv_codec_t *codec;         //  builds envelopes
    uint64_t rng;               //  xorshift state
    unsigned valid_jobs;        //  valid jobs it has submitted (kept few)
} hostile_t;

static uint64_t
s_rand (hostile_t *self)
{
    self->rng ^= self->rng << 13;
    self->rng ^= self->rng >> 7;
    self->rng ^= self->rng << 17;
    return self->rng;
}

static void
s_fill (hostile_t *self, uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++)
        data [i] = (uint8_t) s_rand (self);
}

//  Sends frames as one message without waiting; a full queue drops it.
static void
s_send_frames (void *socket, zmq_msg_t *frames, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (zmq_msg_send (&frames [i], socket, (i + 1 < count? ZMQ_SNDMORE: 0) | ZMQ_DONTWAIT) < 0) {
            //  Only the first frame can be refused (the queue counts whole
            //  messages); close what was not sent
            for (size_t k = i; k < count; k++)
                zmq_msg_close (&frames [k]);
            atomic_fetch_add (&s_refused, 1);
            if (i == 0)
                usleep (200);
            return;
        }
    }
    atomic_fetch_add (&s_sent, 1);
}

//  Encodes msg and sends it with payloads payload frames of size bytes.
static void
s_send (hostile_t *self, void *socket, drv_msg_t *msg, size_t payloads, size_t size)
{
    static __thread zmq_msg_t frames [1300];
    if (payloads > 1299)
        payloads = 1299;
    if (drv_codec_encode (self->codec, msg, &frames [0])) {
        fprintf (stderr, "cannot encode %s\n", drv_cmd_name (msg->cmd));
        exit (1);
    }
    drv_codec_reset (self->codec);
    for (size_t i = 0; i < payloads; i++) {
        zmq_msg_init_size (&frames [1 + i], size);
        memset (zmq_msg_data (&frames [1 + i]), 'h', size);
    }
    s_send_frames (socket, frames, 1 + payloads);
}

static void
s_send_bytes (void *socket, const uint8_t *data, size_t size, bool more)
{
    int rc = zmq_send (socket, data, size, (more? ZMQ_SNDMORE: 0) | ZMQ_DONTWAIT);
    if (!more || rc < 0)
        atomic_fetch_add (rc < 0? &s_refused: &s_sent, 1);
}

static void
s_hello (hostile_t *self, void *socket, int kind_worker)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_HELLO, s_rand (self));
    msg.hello.kind = kind_worker? DRV_PEER_WORKER: DRV_PEER_CLIENT;
    drv_random_id (msg.hello.session);
    msg.hello.name = "hostile";
    const char *queues [1] = {"hostile-sink"};
    msg.hello.queues = queues;
    msg.hello.queue_count = 1;
    msg.hello.credit = 1000;
    s_send (self, socket, &msg, 0, 0);
}

//  A new connection; linger lets what was sent on a short-lived one go out
//  after it is closed.
static void *
s_connect (hostile_t *self, const char *endpoint)
{
    void *socket = hh_dealer (self->ctx, endpoint, self->who, 4);
    if (!socket) {
        fprintf (stderr, "hostile: cannot connect\n");
        exit (1);
    }
    int linger = 200;
    zmq_setsockopt (socket, ZMQ_LINGER, &linger, sizeof linger);
    atomic_fetch_add (&s_connections, 1);
    return socket;
}

static void
s_ids (hostile_t *self, uint8_t (*ids) [DRV_ID_SIZE], size_t n)
{
    for (size_t i = 0; i < n; i++)
        s_fill (self, ids [i], DRV_ID_SIZE);
}

//  One hostile action, picked at random.
static void
s_attack (hostile_t *self)
{
    static __thread uint8_t ids [1300][DRV_ID_SIZE];
    static __thread drv_jobspec_t specs [6000];
    static __thread drv_result_t results [1300];
    static __thread uint8_t junk [300000];
    bool worker = self->who == HH_WORKER;
    void *socket = self->socket;
    drv_msg_t msg;
    switch (s_rand (self) % 16) {
        case 0: {               //  random bytes, one to four frames
            unsigned frames = 1 + (unsigned) (s_rand (self) % 4);
            for (unsigned i = 0; i < frames; i++) {
                size_t size = s_rand (self) % 300;
                s_fill (self, junk, size);
                s_send_bytes (socket, junk, size, i + 1 < frames);
            }
            break;
        }
        case 1: {               //  a valid Submit with the wrong number of frames
            size_t n = 1 + s_rand (self) % 50;
            for (size_t i = 0; i < n; i++) {
                memset (&specs [i], 0, sizeof specs [i]);
                s_fill (self, specs [i].id, DRV_ID_SIZE);
                specs [i].queue = "hostile-sink";
            }
            drv_msg_init (&msg, DRV_CMD_SUBMIT, s_rand (self));
            msg.specs = specs;
            msg.count = n;
            size_t frames = s_rand (self) % (2 * n);
            s_send (self, socket, &msg, frames == n? n + 1: frames, 8);
            break;
        }
        case 2: {               //  commands before any Hello, on a new connection
            void *fresh = s_connect (self, s_rand (self) % 2? self->home: self->other);
            for (int i = 0; i < 3; i++) {
                drv_cmd_t cmds [4] = {DRV_CMD_SUBMIT, DRV_CMD_REPORT, DRV_CMD_STATS, DRV_CMD_CREDIT};
                drv_msg_init (&msg, cmds [s_rand (self) % 4], s_rand (self));
                msg.credit = 1000000;
                s_send (self, fresh, &msg, 0, 0);
            }
            zmq_close (fresh);
            break;
        }
        case 3: {               //  Reports (and Progress) for jobs that do not exist
            size_t n = 1 + s_rand (self) % 100;
            s_ids (self, ids, n);
            for (size_t i = 0; i < n; i++) {
                memset (&results [i], 0, sizeof results [i]);
                memcpy (results [i].id, ids [i], DRV_ID_SIZE);
                results [i].state = (drv_job_state_t) (s_rand (self) % 8);
                results [i].error = "";
            }
            drv_msg_init (&msg, s_rand (self) % 4? DRV_CMD_REPORT: DRV_CMD_DELIVER, s_rand (self));
            msg.results = results;
            msg.count = n;
            s_send (self, socket, &msg, n, 4);
            break;
        }
        case 4: {               //  batch counts over the limit (max_batch 1000)
            size_t n = s_rand (self) % 2? 1200: 5000;
            for (size_t i = 0; i < n; i++) {
                memset (&specs [i], 0, sizeof specs [i]);
                s_fill (self, specs [i].id, DRV_ID_SIZE);
                specs [i].queue = "hostile-sink";
            }
            drv_msg_init (&msg, DRV_CMD_SUBMIT, s_rand (self));
            msg.specs = specs;
            msg.count = n;
            s_send (self, socket, &msg, n == 1200? 1200: 0, 0);
            break;
        }
        case 5: {               //  oversized frames: a payload and an envelope
            uint8_t id [1][DRV_ID_SIZE];
            s_ids (self, id, 1);
            memset (&specs [0], 0, sizeof specs [0]);
            memcpy (specs [0].id, id [0], DRV_ID_SIZE);
            specs [0].queue = "hostile-sink";
            drv_msg_init (&msg, DRV_CMD_SUBMIT, s_rand (self));
            msg.specs = specs;
            msg.count = 1;
            s_send (self, socket, &msg, 1, MAX_PAYLOAD + 1 + s_rand (self) % 1000);
            s_fill (self, junk, sizeof junk);
            s_send_bytes (socket, junk, sizeof junk, false);
            break;
        }
        case 6:                 //  a Credit flood
            for (int i = 0; i < 200; i++) {
                drv_msg_init (&msg, DRV_CMD_CREDIT, s_rand (self));
                msg.credit = 0xffffffffu;
                s_send (self, socket, &msg, 0, 0);
            }
            break;
        case 7: {               //  state requests with absurd sizes
            static const drv_state_op_t ops [7] = {DRV_STATE_GET, DRV_STATE_SET, DRV_STATE_DEL,
                DRV_STATE_CAS, DRV_STATE_INCR, DRV_STATE_LIST, DRV_STATE_SNAPSHOT};
            drv_msg_init (&msg, DRV_CMD_STATE_REQUEST, s_rand (self));
            msg.state.op = ops [s_rand (self) % 7];
            msg.state.ns = s_rand (self) % 2? "hostile": "";
            size_t key_size = s_rand (self) % 3 == 0? 70000: s_rand (self) % 8;
            s_fill (self, junk, key_size);
            msg.state.key = junk;
            msg.state.key_size = key_size;
            msg.state.expect_version = UINT64_MAX;
            msg.state.delta = s_rand (self) % 2? INT64_MAX: INT64_MIN;
            msg.state.limit = 0xffffffffu;
            msg.count = 1;
            //  the value: empty, small, or over max_value
            size_t value = s_rand (self) % 3 == 0? 1100000: s_rand (self) % 16;
            s_send (self, socket, &msg, s_rand (self) % 5? 1: 3, value);
            break;
        }
        case 8: {               //  sync requests with absurd counts and waits
            drv_msg_init (&msg, DRV_CMD_SYNC_REQUEST, s_rand (self));
            msg.sync.op = (drv_sync_op_t) (1 + s_rand (self) % 9);
            char name [40];
            snprintf (name, sizeof name, "hostile-%u", (unsigned) (s_rand (self) % 50));
            msg.sync.name = name;
            msg.sync.timeout_ms = s_rand (self) % 2? 0xffffffffu: 0;
            msg.sync.count = s_rand (self) % 2? 0xffffffffu: 0;
            s_send (self, socket, &msg, 0, 0);
            break;
        }
        case 9:                 //  connect, say Hello, drop: several times
            for (int i = 0; i < 4; i++) {
                void *fresh = s_connect (self, self->home);
                s_hello (self, fresh, worker);
                zmq_close (fresh);
            }
            break;
        case 10: {              //  Hello naming many queues (valid names and not)
            const char *queues [300];
            static __thread char names [300][24];
            for (int i = 0; i < 300; i++) {
                snprintf (names [i], sizeof names [i], i % 7? "hq-%u": "bad queue %u",
                          (unsigned) (s_rand (self) % 100000));
                queues [i] = names [i];
            }
            drv_msg_init (&msg, DRV_CMD_HELLO, s_rand (self));
            msg.hello.kind = worker? DRV_PEER_WORKER: DRV_PEER_CLIENT;
            drv_random_id (msg.hello.session);
            msg.hello.queues = queues;
            msg.hello.queue_count = s_rand (self) % 2? 300: 6;
            msg.hello.credit = 0xffffffffu;
            s_send (self, socket, &msg, 0, 0);
            break;
        }
        case 11: {              //  the other endpoint's commands, and the broker's own
            static const drv_cmd_t cmds [8] = {DRV_CMD_WELCOME, DRV_CMD_DISPATCH, DRV_CMD_SUBMIT_ACK,
                DRV_CMD_QUERY_REPLY, DRV_CMD_STATS_REPLY, DRV_CMD_STATE_UPDATE, DRV_CMD_ERROR,
                DRV_CMD_SYNC_REPLY};
            drv_msg_init (&msg, cmds [s_rand (self) % 8], s_rand (self));
            msg.count = 0;
            msg.error.message = "";
            msg.state_reply.message = "";
            msg.sync_reply.message = "";
            msg.update.ns = "";
            msg.welcome.role = "admin";
            s_send (self, socket, &msg, 0, 0);
            drv_msg_init (&msg, worker? DRV_CMD_STATS: DRV_CMD_CREDIT, s_rand (self));
            msg.credit = 5;
            s_send (self, socket, &msg, 0, 0);
            break;
        }
        case 12: {              //  queries and cancels of many unknown jobs, watching
            size_t n = 1 + s_rand (self) % 1000;
            s_ids (self, ids, n);
            drv_msg_init (&msg, s_rand (self) % 2? DRV_CMD_QUERY: DRV_CMD_CANCEL, s_rand (self));
            msg.ids = ids;
            msg.count = n;
            msg.query.want_result = true;
            msg.query.watch = true;
            s_send (self, socket, &msg, 0, 0);
            break;
        }
        case 13:                //  valid jobs no one serves (a few per peer)
            if (!worker && self->valid_jobs < 200) {
                size_t n = 10;
                for (size_t i = 0; i < n; i++) {
                    memset (&specs [i], 0, sizeof specs [i]);
                    s_fill (self, specs [i].id, DRV_ID_SIZE);
                    specs [i].queue = "hostile-sink";
                    specs [i].result_ttl_s = 1;
                }
                drv_msg_init (&msg, DRV_CMD_SUBMIT, s_rand (self));
                msg.specs = specs;
                msg.count = n;
                s_send (self, socket, &msg, n, 16);
                self->valid_jobs += (unsigned) n;
            }
            break;
        case 14:                //  Bye, then carry on as if nothing happened
            drv_msg_init (&msg, DRV_CMD_BYE, s_rand (self));
            s_send (self, socket, &msg, 0, 0);
            drv_msg_init (&msg, worker? DRV_CMD_REPORT: DRV_CMD_SUBMIT, s_rand (self));
            s_send (self, socket, &msg, 0, 0);
            break;
        default:                //  a new long-lived connection, greeted or not
            zmq_close (self->socket);
            self->socket = s_connect (self, self->home);
            if (s_rand (self) % 4)
                s_hello (self, self->socket, worker);
            break;
    }
}

static void *
s_hostile_thread (void *arg)
{
    hostile_t *self = (hostile_t *) arg;
    self->ctx = zmq_ctx_new ();
    self->codec = drv_codec_new ();
    self->socket = s_connect (self, self->home);
    s_hello (self, self->socket, self->who == HH_WORKER);
    while (!atomic_load (&s_stop)) {
        s_attack (self);
        usleep (300);       //  leave the CPUs to the broker and the honest peers
    }
    zmq_close (self->socket);
    drv_codec_destroy (&self->codec);
    zmq_ctx_term (self->ctx);
    return NULL;
}

static size_t s_stats_reply_size;      //  bytes of one StatsReply envelope
static size_t s_stats_reply_peers;     //  peers it listed

//  One long-lived producer connection that asks for Stats as fast as its
//  queue lets it and never reads an answer: what the broker holds for a
//  peer that does not read must stay bounded.
static void *
s_amplifier_thread (void *arg)
{
    hostile_t *self = (hostile_t *) arg;
    self->ctx = zmq_ctx_new ();
    self->codec = drv_codec_new ();
    void *socket = hh_dealer (self->ctx, self->home, HH_PRODUCER, 4);
    s_hello (self, socket, 0);
    //  One answer read, for the record: how big the reply is
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_STATS, 1);
    s_send (self, socket, &msg, 0, 0);
    uint64_t until = hh_now_ms () + 3000;
    while (hh_now_ms () < until) {
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        zmq_pollitem_t item = {socket, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 100) > 0 && zmq_msg_recv (&frame, socket, 0) >= 0) {
            size_t size = zmq_msg_size (&frame);
            drv_msg_t reply;
            if (drv_codec_decode (self->codec, zmq_msg_data (&frame), size, &reply) == 0
            &&  reply.cmd == DRV_CMD_STATS_REPLY) {
                s_stats_reply_size = size;
                s_stats_reply_peers = reply.stats.peer_count;
                until = 0;
            }
        }
        zmq_msg_close (&frame);
    }
    while (!atomic_load (&s_stop)) {
        drv_msg_init (&msg, DRV_CMD_STATS, s_rand (self));
        s_send (self, socket, &msg, 0, 0);
        usleep (100);
    }
    zmq_close (socket);
    drv_codec_destroy (&self->codec);
    zmq_ctx_term (self->ctx);
    return NULL;
}

//  Honest peers --------------------------------------------------------------

static int
s_honest_handler (drover_job_t *job, void *arg)
{
    size_t size;
    const char *data = (const char *) drover_job_payload (job, &size);
    char result [128];
    int n = snprintf (result, sizeof result, "done:%.*s", (int) size, data);
    return drover_job_set_result (job, result, (size_t) n);
}

static void *
s_worker_thread (void *arg)
{
    int rc = drover_worker_run ((drover_worker_t *) arg);
    if (rc)
        fprintf (stderr, "honest worker: %s\n", drover_strerror (rc));
    return NULL;
}

static void *
s_sampler_thread (void *arg)
{
    while (!atomic_load (&s_stop)) {
        int n = atomic_load (&s_rss_count);
        if (n < 2000) {
            s_rss [n] = hh_rss_kib ();
            s_rss_at [n] = hh_now_ms ();
            atomic_store (&s_rss_count, n + 1);
        }
        usleep (100000);
    }
    return NULL;
}

static long
s_rss_max (uint64_t from, uint64_t to)
{
    long max = 0;
    for (int i = 0; i < atomic_load (&s_rss_count); i++)
        if (s_rss_at [i] >= from && s_rss_at [i] <= to && s_rss [i] > max)
            max = s_rss [i];
    return max;
}

//  Stats through the honest client; returns its latency in ms.
static uint64_t
s_honest_stats (drover_client_t *client)
{
    uint64_t start = hh_now_ms ();
    drover_stats_t *stats = NULL;
    int rc = drover_stats (client, &stats, 10000);
    HH_CHECK (rc == 0, "honest Stats failed: %s", drover_strerror (rc));
    drover_stats_destroy (&stats);
    return hh_now_ms () - start;
}

int
main (int argc, char *argv [])
{
    if (argc != 2) {
        fprintf (stderr, "usage: hostile_peers DROVERD\n");
        return 2;
    }
    uint64_t test_start = hh_now_ms ();
    hh_setup ();
    static const char *extra [] = {"--durability", "none", "--max-payload", "65536",
                                   "--max-batch", "1000", NULL};
    hh_start (argv [1], extra);
    printf ("droverd %d on %s and %s\n", (int) hh.pid, hh.producers, hh.workers);
    long rss_start = hh_rss_kib ();

    //  Honest worker and client
    drover_connect_t wcfg = {0};
    wcfg.endpoint = hh.workers;
    wcfg.server_key = hh.server_pub;
    wcfg.cert = hh_key_path (HH_WORKER, true);
    wcfg.name = "honest-worker";
    drover_worker_t *worker = drover_worker_new (&wcfg);
    HH_CHECK (worker, "cannot create the honest worker");
    HH_CHECK (drover_worker_handle (worker, "honest", s_honest_handler, NULL) == 0, "handle");
    drover_worker_set_concurrency (worker, 2);
    drover_worker_set_prefetch (worker, 32);
    pthread_t worker_thread;
    pthread_create (&worker_thread, NULL, s_worker_thread, worker);

    drover_connect_t ccfg = {0};
    ccfg.endpoint = hh.producers;
    ccfg.server_key = hh.server_pub;
    ccfg.cert = hh_key_path (HH_PRODUCER, true);
    ccfg.name = "honest-client";
    drover_client_t *client = NULL;
    int rc = drover_client_connect (&ccfg, &client);
    HH_CHECK (rc == 0, "honest client cannot connect: %s", drover_strerror (rc));

    //  The attack begins, and goes on until the end
    pthread_t sampler, amplifier, hostile_threads [HOSTILE_THREADS];
    pthread_create (&sampler, NULL, s_sampler_thread, NULL);
    static hostile_t hostile [HOSTILE_THREADS];
    for (int i = 0; i < HOSTILE_THREADS; i++) {
        hostile [i].who = i % 2? HH_WORKER: HH_PRODUCER;
        hostile [i].home = i % 2? hh.workers: hh.producers;
        hostile [i].other = i % 2? hh.producers: hh.workers;
        hostile [i].rng = 0x9e3779b97f4a7c15ULL * (uint64_t) (i + 1);
        pthread_create (&hostile_threads [i], NULL, s_hostile_thread, &hostile [i]);
    }
    usleep (WARM_UP_MS * 1000);

    //  Honest work: batches of jobs, with Stats and shared state between them
    uint64_t honest_start = hh_now_ms ();
    static drover_future_t *futures [HONEST_JOBS];
    static char payloads [HONEST_JOBS][32];
    uint64_t stats_max = 0, stats_total = 0;
    int stats_count = 0;
    for (int batch = 0; batch < HONEST_JOBS / HONEST_BATCH; batch++) {
        const void *data [HONEST_BATCH];
        size_t sizes [HONEST_BATCH];
        for (int i = 0; i < HONEST_BATCH; i++) {
            int n = batch * HONEST_BATCH + i;
            snprintf (payloads [n], sizeof payloads [n], "job-%d", n);
            data [i] = payloads [n];
            sizes [i] = strlen (payloads [n]);
        }
        rc = drover_submit_many (client, "honest", data, sizes, HONEST_BATCH, NULL,
                                 futures + batch * HONEST_BATCH);
        HH_CHECK (rc == 0, "honest submit failed: %s", drover_strerror (rc));
        if (batch % 4 == 0) {
            uint64_t latency = s_honest_stats (client);
            stats_max = latency > stats_max? latency: stats_max;
            stats_total += latency;
            stats_count++;
            char value [32];
            int n = snprintf (value, sizeof value, "v%d", batch);
            uint64_t version = 0;
            rc = drover_state_set (client, "honest", "k", value, (size_t) n, &version, 10000);
            HH_CHECK (rc == 0, "honest state set failed: %s", drover_strerror (rc));
            void *got = NULL;
            size_t got_size = 0;
            rc = drover_state_get (client, "honest", "k", &got, &got_size, NULL, 10000);
            HH_CHECK (rc == 0 && got_size == (size_t) n && memcmp (got, value, (size_t) n) == 0,
                      "honest state get: %s", drover_strerror (rc));
            free (got);
        }
    }
    int done = 0;
    for (int n = 0; n < HONEST_JOBS; n++) {
        int left = (int) (30000 - (hh_now_ms () - honest_start));
        rc = drover_future_wait (futures [n], left > 0? left: 1);
        HH_CHECK (rc == 0, "honest job %d: %s (%d of %d done)", n, drover_strerror (rc),
                  done, HONEST_JOBS);
        size_t size;
        const char *result = (const char *) drover_future_result (futures [n], &size);
        char expected [64];
        int len = snprintf (expected, sizeof expected, "done:%s", payloads [n]);
        HH_CHECK (result && size == (size_t) len && memcmp (result, expected, size) == 0,
                  "honest job %d: wrong result", n);
        drover_future_destroy (&futures [n]);
        done++;
    }
    uint64_t honest_ms = hh_now_ms () - honest_start;
    HH_CHECK (hh_alive (), "droverd died during the attack");

    //  The last phase: the attack goes on with no honest work; memory must
    //  level off
    uint64_t phase_start = hh_now_ms ();
    usleep (LAST_PHASE_MS * 1000);
    uint64_t phase_end = hh_now_ms ();
    HH_CHECK (hh_alive (), "droverd died during the attack");
    long first_half = s_rss_max (phase_start, phase_start + LAST_PHASE_MS / 2);
    long second_half = s_rss_max (phase_start + LAST_PHASE_MS / 2, phase_end);
    uint64_t stats_last = s_honest_stats (client);

    //  The reader that never reads: one connection asking for Stats
    long rss_before_amp = hh_rss_kib ();
    static hostile_t quiet_reader = {.who = HH_PRODUCER, .rng = 7};
    quiet_reader.home = hh.producers;
    pthread_create (&amplifier, NULL, s_amplifier_thread, &quiet_reader);
    usleep (AMPLIFIER_MS * 1000);
    long rss_amp = s_rss_max (hh_now_ms () - AMPLIFIER_MS, hh_now_ms ());
    uint64_t stats_amp = s_honest_stats (client);

    atomic_store (&s_stop, true);
    for (int i = 0; i < HOSTILE_THREADS; i++)
        pthread_join (hostile_threads [i], NULL);
    pthread_join (amplifier, NULL);
    pthread_join (sampler, NULL);
    long rss_max = s_rss_max (0, UINT64_MAX);
    long rss_end = hh_rss_kib ();

    //  The broker is still serving, and the numbers add up
    drover_stats_t *stats = NULL;
    rc = drover_stats (client, &stats, 10000);
    HH_CHECK (rc == 0, "final Stats failed: %s", drover_strerror (rc));
    bool found = false;
    for (size_t i = 0; i < stats->queue_count; i++)
        if (strcmp (stats->queues [i].name, "honest") == 0) {
            HH_CHECK (stats->queues [i].done == HONEST_JOBS, "honest queue: %llu done",
                      (unsigned long long) stats->queues [i].done);
            found = true;
        }
    HH_CHECK (found, "no honest queue in Stats");
    size_t queue_count = stats->queue_count;
    drover_stats_destroy (&stats);
    drover_worker_stop (worker);
    pthread_join (worker_thread, NULL);
    drover_worker_destroy (&worker);
    drover_client_destroy (&client);

    int warns = hh_log_count (" warn ") + hh_log_count ("\"warn\"");
    double cpu = hh_cpu_s ();
    int status = hh_stop ();
    printf ("hostile messages sent %lu (another %lu refused by full queues), "
            "hostile connections %lu\n",
            atomic_load (&s_sent), atomic_load (&s_refused), atomic_load (&s_connections));
    printf ("honest: %d jobs in %llu ms under attack; Stats latency max %llu ms, mean %llu ms, "
            "after the attack phase %llu ms\n", HONEST_JOBS, (unsigned long long) honest_ms,
            (unsigned long long) stats_max,
            (unsigned long long) (stats_count? stats_total / (uint64_t) stats_count: 0),
            (unsigned long long) stats_last);
    printf ("droverd RSS: start %ld KiB, max %ld KiB, last phase %ld -> %ld KiB, end %ld KiB; "
            "CPU %.2f s; %d warning lines logged\n", rss_start, rss_max, first_half, second_half,
            rss_end, cpu, warns);
    printf ("one peer asking for Stats and never reading: RSS %ld -> %ld KiB in %d ms; "
            "honest Stats then took %llu ms; a StatsReply to that producer key: %zu bytes "
            "(%zu queues, %zu peers)\n", rss_before_amp, rss_amp, AMPLIFIER_MS,
            (unsigned long long) stats_amp, s_stats_reply_size, queue_count, s_stats_reply_peers);
    HH_CHECK (rss_max > 0 && rss_max < RSS_LIMIT_KIB, "droverd RSS reached %ld KiB", rss_max);
    HH_CHECK (second_half <= first_half + 16 * 1024 * HH_MEMORY_FACTOR,
              "droverd RSS still growing in the last phase: %ld -> %ld KiB", first_half, second_half);
    HH_CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0,
              "droverd did not exit cleanly on SIGTERM (status %d)", status);
    HH_CHECK (rss_amp - rss_before_amp < AMPLIFIER_KIB,
              "one peer that never reads made droverd hold %ld KiB more in %d ms",
              rss_amp - rss_before_amp, AMPLIFIER_MS);
    printf ("hostile peers: all checks passed in %.1f s\n",
            (double) (hh_now_ms () - test_start) / 1000.0);
    return 0;
}
