/*  test_security.c - every access rule of the broker, proved against the
    broker actor running in process with CURVE on.

    Keys are made in a temporary directory, their public halves put in an
    allow-list directory, and peers speak the wire protocol through raw
    DEALER sockets with their own CURVE keys (or through the SDK where what
    a program would see matters). The broker's log (stderr) goes to a file
    so that each refusal can be checked to name the key it refused.

    Covered: role refusals on both endpoints and for admin-only commands;
    per-key queue limits (submit, worker Hello, query, cancel, stats, queue
    control, dead letters, prefix wildcards); the submitting key on jobs
    (workers, admins and the key itself see it, other keys do not);
    allow-list changes picked up while running (added key admitted, removed
    key's sessions closed and its new connections refused, changed rights
    applied) and on the actor's RELOAD command; every configurable limit
    and the per-peer rate of costly requests; the refusal of a server
    secret readable by others. With the argument "isolation": that one key
    cannot reach what belongs to another (dead-letter ids, resubmitted ids,
    sessions, a revocation first seen by another peer's handshake, a
    revoked key's state subscription).
*/
#include "broker.h"
#include "codec.h"
#include "util.h"
#include "drover.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int s_stderr = 2;            //  the test's own stderr (the log file takes fd 2)
static char s_dir [64];             //  temporary directory
static char s_log [PATH_MAX];       //  broker log file

#define CHECK(cond) \
    do { if (!(cond)) s_fail (__LINE__, #cond); } while (0)

static void
s_fail (int line, const char *what)
{
    dprintf (s_stderr, "%s:%d: check failed: %s\n--- broker log (last lines):\n",
             __FILE__, line, what);
    char command [PATH_MAX + 128];
    snprintf (command, sizeof command, "tail -n 30 %s >&%d; rm -rf %s", s_log, s_stderr, s_dir);
    if (system (command)) {}
    _exit (1);                      //  no exit handlers: the broker's thread is still running
}

//  Logs -------------------------------------------------------------------

//  True if one line of the log holds both needles (b may be NULL). Waits up
//  to a second for the line to appear.
static bool
s_logged (const char *a, const char *b)
{
    uint64_t end = drv_now_ms () + 1000;
    do {
        FILE *file = fopen (s_log, "r");
        CHECK (file);
        char line [4096];
        bool found = false;
        while (!found && fgets (line, sizeof line, file))
            found = strstr (line, a) && (!b || strstr (line, b));
        fclose (file);
        if (found)
            return true;
        zclock_sleep (50);
    } while (drv_now_ms () < end);
    return false;
}

//  Identities ---------------------------------------------------------------

typedef struct {
    zcert_t *cert;                  //  key pair
    char key [41];                  //  Z85 public key
    char allowed [256];             //  its file in the allow-list directory
    char secret [256];              //  its secret certificate (for the SDK)
} ident_t;

static char s_allow [128];         //  allow-list directory
static char s_server_path [128];   //  broker's public certificate
static zcert_t *s_server;

//  Saves the public certificate of id with the given metadata (role NULL:
//  no role line, i.e. the default) beside the allow list, in a dot file
//  the broker skips; path receives its name.
static void
s_allow_save_aside (ident_t *id, const char *role, const char *queues, char *path, size_t size)
{
    snprintf (path, size, "%s/.next.cert", s_allow);
    zcert_t *cert = zcert_new_from (zcert_public_key (id->cert), zcert_secret_key (id->cert));
    CHECK (cert);
    if (role)
        zcert_set_meta (cert, "role", "%s", role);
    if (queues)
        zcert_set_meta (cert, "queues", "%s", queues);
    CHECK (zcert_save_public (cert, path) == 0);
    zcert_destroy (&cert);
}

//  Gives id these rights in the allow-list: written aside and renamed into
//  place, so that the broker's periodic check never reads half a file.
static void
s_allow_write (ident_t *id, const char *role, const char *queues)
{
    char temp [sizeof s_allow + 16];
    s_allow_save_aside (id, role, queues, temp, sizeof temp);
    CHECK (rename (temp, id->allowed) == 0);
}

//  Rewrites id's allow-list file in place with new rights of the same
//  size, and puts its times back through the same descriptor at once: an
//  edit the periodic check (names, sizes, times, inodes) cannot see.
static void
s_allow_rewrite_unseen (ident_t *id, const char *role, const char *queues)
{
    struct stat before;
    CHECK (stat (id->allowed, &before) == 0);
    char temp [sizeof s_allow + 16];
    s_allow_save_aside (id, role, queues, temp, sizeof temp);
    char data [4096];
    FILE *file = fopen (temp, "rb");
    CHECK (file);
    size_t size = fread (data, 1, sizeof data, file);
    fclose (file);
    unlink (temp);
    CHECK (size == (size_t) before.st_size);
    int fd = open (id->allowed, O_WRONLY);
    CHECK (fd >= 0);
    CHECK (pwrite (fd, data, size, 0) == (ssize_t) size);
    struct timespec times [2] = {before.st_atim, before.st_mtim};
    CHECK (futimens (fd, times) == 0);
    close (fd);
}

static void
s_ident (ident_t *id, const char *name, const char *role, const char *queues, bool allowed)
{
    id->cert = zcert_new ();
    CHECK (id->cert);
    snprintf (id->key, sizeof id->key, "%s", zcert_public_txt (id->cert));
    snprintf (id->allowed, sizeof id->allowed, "%s/%.64s.cert", s_allow, name);
    char path [200];
    snprintf (path, sizeof path, "%s/keys/%.64s", s_dir, name);
    snprintf (id->secret, sizeof id->secret, "%s_secret", path);
    if (role)
        zcert_set_meta (id->cert, "role", "%s", role);
    if (queues)
        zcert_set_meta (id->cert, "queues", "%s", queues);
    CHECK (zcert_save (id->cert, path) == 0);
    if (allowed)
        s_allow_write (id, role, queues);
}

static void
s_revoke (ident_t *id)
{
    CHECK (unlink (id->allowed) == 0);
}

//  Raw peers --------------------------------------------------------------

static drv_codec_t *s_codec;
static drv_frames_t s_frames;
static uint64_t s_corr = 1;
static void *s_ctx;

typedef struct {
    void *socket;                   //  raw DEALER with CURVE
    uint8_t session [16];           //  session id sent in Hello
    bool welcomed;                  //  registered: keep it alive with heartbeats
} peer_t;

#define LIVE_MAX 32
static peer_t *s_live [LIVE_MAX];   //  peers kept alive while the test waits
static uint64_t s_last_beat;

static void
s_beat_all (void)
{
    if (drv_now_ms () - s_last_beat < 100)
        return;
    s_last_beat = drv_now_ms ();
    drv_msg_t beat;
    drv_msg_init (&beat, DRV_CMD_HEARTBEAT, 0);
    for (size_t i = 0; i < LIVE_MAX; i++)
        if (s_live [i] && s_live [i]->welcomed) {
            zmq_msg_t envelope;
            CHECK (drv_codec_encode (s_codec, &beat, &envelope) == 0);
            drv_send (s_live [i]->socket, NULL, &envelope, NULL, 0, false);
        }
    drv_codec_reset (s_codec);
}

static void
s_peer_open (peer_t *peer, const char *endpoint, ident_t *id)
{
    memset (peer, 0, sizeof *peer);
    peer->socket = zmq_socket (s_ctx, ZMQ_DEALER);
    CHECK (peer->socket);
    int linger = 0;
    zmq_setsockopt (peer->socket, ZMQ_LINGER, &linger, sizeof linger);
    CHECK (zmq_setsockopt (peer->socket, ZMQ_CURVE_SERVERKEY, zcert_public_key (s_server), 32) == 0);
    CHECK (zmq_setsockopt (peer->socket, ZMQ_CURVE_PUBLICKEY, zcert_public_key (id->cert), 32) == 0);
    CHECK (zmq_setsockopt (peer->socket, ZMQ_CURVE_SECRETKEY, zcert_secret_key (id->cert), 32) == 0);
    CHECK (zmq_connect (peer->socket, endpoint) == 0);
    drv_random_id (peer->session);
    for (size_t i = 0; i < LIVE_MAX; i++)
        if (!s_live [i]) {
            s_live [i] = peer;
            return;
        }
    CHECK (!"too many live peers");
}

static void
s_peer_close (peer_t *peer)
{
    for (size_t i = 0; i < LIVE_MAX; i++)
        if (s_live [i] == peer)
            s_live [i] = NULL;
    if (peer->socket)
        zmq_close (peer->socket);
    peer->socket = NULL;
}

//  Sends msg with count payload frames given as strings.
static void
s_send (peer_t *peer, drv_msg_t *msg, const char **payloads, size_t count)
{
    zmq_msg_t envelope;
    CHECK (drv_codec_encode (s_codec, msg, &envelope) == 0);
    drv_codec_reset (s_codec);
    zmq_msg_t frames [16];
    CHECK (count <= 16);
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen (payloads [i]);
        zmq_msg_init_size (&frames [i], len);
        memcpy (zmq_msg_data (&frames [i]), payloads [i], len);
    }
    CHECK (drv_send (peer->socket, NULL, &envelope, frames, count, false) == 0);
}

//  Waits up to ms for the next message that is not a heartbeat; returns
//  false on timeout. Payload frames stay in s_frames.
static bool
s_recv_within (peer_t *peer, int ms, drv_msg_t *msg)
{
    uint64_t end = drv_now_ms () + ms;
    while (drv_now_ms () < end) {
        s_beat_all ();
        zmq_pollitem_t item = {peer->socket, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 20) <= 0)
            continue;
        CHECK (drv_frames_recv (peer->socket, &s_frames, 0, 1000) >= 1);
        CHECK (drv_codec_decode (s_codec, zmq_msg_data (&s_frames.msg [0]),
                                 zmq_msg_size (&s_frames.msg [0]), msg) == 0);
        if (msg->cmd != DRV_CMD_HEARTBEAT)
            return true;
    }
    return false;
}

static drv_msg_t
s_recv (peer_t *peer)
{
    drv_msg_t msg;
    CHECK (s_recv_within (peer, 4000, &msg));
    return msg;
}

//  Receives until a message of kind cmd arrives (others are skipped).
static drv_msg_t
s_recv_cmd (peer_t *peer, drv_cmd_t cmd)
{
    drv_msg_t msg;
    do
        msg = s_recv (peer);
    while (msg.cmd != cmd && msg.cmd != DRV_CMD_ERROR);
    return msg;
}

//  Sleeps ms while keeping the raw peers alive.
static void
s_idle (int ms)
{
    uint64_t end = drv_now_ms () + ms;
    while (drv_now_ms () < end) {
        s_beat_all ();
        zclock_sleep (20);
    }
}

//  True if nothing but heartbeats arrives within ms.
static bool
s_quiet (peer_t *peer, int ms)
{
    drv_msg_t msg;
    return !s_recv_within (peer, ms, &msg);
}

//  Hello with up to two queues (a worker); returns the answer.
static drv_msg_t
s_hello (peer_t *peer, drv_peer_kind_t kind, const char *queue1, const char *queue2)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_HELLO, s_corr++);
    msg.hello.kind = kind;
    memcpy (msg.hello.session, peer->session, 16);
    msg.hello.name = kind == DRV_PEER_WORKER? "sec-worker": "sec-client";
    const char *queues [2] = {queue1, queue2};
    msg.hello.queues = queues;
    msg.hello.queue_count = queue2? 2: queue1? 1: 0;
    msg.hello.credit = kind == DRV_PEER_WORKER? 10: 0;
    uint64_t corr = msg.corr;
    s_send (peer, &msg, NULL, 0);
    //  Skip what was on its way before the answer (a re-hello request for
    //  a heartbeat of a session the broker has just dropped, a delivery)
    do
        msg = s_recv (peer);
    while (msg.corr != corr);
    peer->welcomed = msg.cmd == DRV_CMD_WELCOME;
    return msg;
}

//  Opens a peer and registers it; checks that it is welcome.
static void
s_join (peer_t *peer, const char *endpoint, ident_t *id, drv_peer_kind_t kind,
        const char *queue1, const char *queue2)
{
    s_peer_open (peer, endpoint, id);
    drv_msg_t msg = s_hello (peer, kind, queue1, queue2);
    CHECK (msg.cmd == DRV_CMD_WELCOME);
}

//  Submits one job per payload to queue; returns the SubmitAck (or Error).
static drv_msg_t
s_submit (peer_t *client, uint8_t ids [][16], const char **payloads, size_t n, const char *queue)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_SUBMIT, s_corr++);
    drv_jobspec_t specs [16];
    CHECK (n <= 16);
    for (size_t i = 0; i < n; i++) {
        memset (&specs [i], 0, sizeof specs [i]);
        drv_random_id (ids [i]);
        memcpy (specs [i].id, ids [i], 16);
        specs [i].queue = queue;
    }
    msg.specs = specs;
    msg.count = n;
    s_send (client, &msg, payloads, n);
    return s_recv_cmd (client, DRV_CMD_SUBMIT_ACK);
}

//  Submits one job with payload "x"; returns its ack code and the id.
static drv_code_t
s_submit_one (peer_t *client, const char *queue, uint8_t id [16], const char **why)
{
    uint8_t ids [1][16];
    const char *payloads [1] = {"x"};
    drv_msg_t msg = s_submit (client, ids, payloads, 1, queue);
    CHECK (msg.cmd == DRV_CMD_SUBMIT_ACK && msg.count == 1);
    if (id)
        memcpy (id, ids [0], 16);
    if (why)
        *why = msg.acks [0].message;
    return msg.acks [0].code;
}

//  Query or Cancel of one id; returns the QueryReply or Error.
static drv_msg_t
s_query (peer_t *client, const uint8_t *id, bool cancel)
{
    drv_msg_t msg;
    drv_msg_init (&msg, cancel? DRV_CMD_CANCEL: DRV_CMD_QUERY, s_corr++);
    uint8_t ids [1][16];
    memcpy (ids [0], id, 16);
    msg.ids = ids;
    msg.count = 1;
    uint64_t corr = msg.corr;
    s_send (client, &msg, NULL, 0);
    do
        msg = s_recv (client);
    while (msg.corr != corr);
    return msg;
}

static drv_msg_t
s_stats (peer_t *client)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_STATS, s_corr++);
    s_send (client, &msg, NULL, 0);
    return s_recv_cmd (client, DRV_CMD_STATS_REPLY);
}

static bool
s_stats_has_queue (const drv_msg_t *msg, const char *name)
{
    for (size_t i = 0; i < msg->count; i++)
        if (streq (msg->queues [i].name, name))
            return true;
    return false;
}

static bool
s_stats_has_peer (const drv_msg_t *msg, const char *key, drv_peer_kind_t kind)
{
    for (size_t i = 0; i < msg->stats.peer_count; i++)
        if (streq (msg->stats.peers [i].key, key) && msg->stats.peers [i].kind == kind)
            return true;
    return false;
}

static drv_msg_t
s_queue_control (peer_t *client, const char *queue, drv_queue_action_t action)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_QUEUE_CONTROL, s_corr++);
    msg.queue_control.queue = queue;
    msg.queue_control.action = action;
    uint64_t corr = msg.corr;
    s_send (client, &msg, NULL, 0);
    do
        msg = s_recv (client);
    while (msg.corr != corr);
    return msg;
}

static drv_msg_t
s_dead_list (peer_t *client, const char *queue)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_DEAD_LETTER, s_corr++);
    msg.dead.queue = queue;
    msg.dead.action = DRV_DEAD_LIST;
    uint64_t corr = msg.corr;
    s_send (client, &msg, NULL, 0);
    do
        msg = s_recv (client);
    while (msg.corr != corr);
    return msg;
}

//  DeadLetter with explicit ids (one here)
static drv_msg_t
s_dead_ids (peer_t *client, const char *queue, drv_dead_action_t action, const uint8_t *id)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_DEAD_LETTER, s_corr++);
    msg.dead.queue = queue;
    msg.dead.action = action;
    uint8_t ids [1][16];
    memcpy (ids [0], id, 16);
    msg.ids = ids;
    msg.count = 1;
    uint64_t corr = msg.corr;
    s_send (client, &msg, NULL, 0);
    do
        msg = s_recv (client);
    while (msg.corr != corr);
    return msg;
}

static drv_msg_t
s_state_set (peer_t *client, const char *key, const char *value)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_STATE_REQUEST, s_corr++);
    msg.state.op = DRV_STATE_SET;
    msg.state.ns = "sec";
    msg.state.key = (const uint8_t *) key;
    msg.state.key_size = strlen (key);
    msg.count = 1;
    const char *payloads [1] = {value};
    uint64_t corr = msg.corr;
    s_send (client, &msg, payloads, 1);
    do
        msg = s_recv (client);
    while (msg.corr != corr);
    return msg;
}

static void
s_report_done (peer_t *worker, const uint8_t *id, const char *result)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_REPORT, 0);
    drv_result_t report = {{0}, DRV_JOB_DONE, "", 0, false};
    memcpy (report.id, id, 16);
    msg.results = &report;
    msg.count = 1;
    const char *payloads [1] = {result};
    s_send (worker, &msg, payloads, 1);
}

//  Broker -----------------------------------------------------------------

static char *s_producers, *s_workers;

static void
s_config (broker_config_t *config)
{
    broker_config_defaults (config);
    config->producers = "tcp://127.0.0.1:*";
    config->workers = "tcp://127.0.0.1:*";
    config->cert = s_server_path;
    config->allow = s_allow;
    static char data [PATH_MAX];
    snprintf (data, sizeof data, "%s/data", s_dir);
    config->data_dir = data;
    config->in_memory = true;
    config->metrics = NULL;
    //  Raw peers beat only while the test waits on them; a long heartbeat
    //  keeps them alive across the SDK calls in between
    config->heartbeat_ms = 3000;
}

//  Starts a broker actor. The previous one's ZAP endpoint is released by
//  libzmq in the background after it stops, so a restart may need a retry.
static zactor_t *
s_broker_try (const broker_config_t *config)
{
    zactor_t *broker = broker_start (config);
    for (int i = 0; !broker && i < 20; i++) {
        zclock_sleep (100);
        broker = broker_start (config);
    }
    return broker;
}

static zactor_t *
s_broker (const broker_config_t *config)
{
    zactor_t *broker = s_broker_try (config);
    CHECK (broker);
    zstr_free (&s_producers);
    zstr_free (&s_workers);
    CHECK (broker_endpoints (broker, &s_producers, &s_workers) == 0);
    return broker;
}

//  The SDK -------------------------------------------------------------------

static drover_client_t *
s_sdk_client (ident_t *id, int *rc)
{
    drover_connect_t cfg = {0};
    cfg.endpoint = s_producers;
    cfg.server_key = s_server_path;
    cfg.cert = id->secret;
    cfg.timeout_ms = 3000;
    drover_client_t *client = NULL;
    *rc = drover_client_connect (&cfg, &client);
    return client;
}

typedef struct {
    drover_worker_t *worker;        //  SDK worker
    pthread_t thread;               //  runs it
    int rc;                         //  what drover_worker_run returned
    pthread_mutex_t lock;           //  guards the fields below
    char submitter [64];            //  submitter of the last job handled
    int handled;                    //  jobs handled
} sdk_worker_t;

static int
s_sdk_handler (drover_job_t *job, void *arg)
{
    sdk_worker_t *self = (sdk_worker_t *) arg;
    pthread_mutex_lock (&self->lock);
    snprintf (self->submitter, sizeof self->submitter, "%s", drover_job_submitter (job));
    self->handled++;
    pthread_mutex_unlock (&self->lock);
    return drover_job_set_result (job, "ok", 2);
}

static void *
s_sdk_worker_run (void *arg)
{
    sdk_worker_t *self = (sdk_worker_t *) arg;
    self->rc = drover_worker_run (self->worker);
    return NULL;
}

static void
s_sdk_worker_start (sdk_worker_t *self, ident_t *id, const char *queue)
{
    memset (self, 0, sizeof *self);
    pthread_mutex_init (&self->lock, NULL);
    drover_connect_t cfg = {0};
    cfg.endpoint = s_workers;
    cfg.server_key = s_server_path;
    cfg.cert = id->secret;
    cfg.timeout_ms = 3000;
    self->worker = drover_worker_new (&cfg);
    CHECK (self->worker);
    CHECK (drover_worker_handle (self->worker, queue, s_sdk_handler, self) == 0);
    CHECK (pthread_create (&self->thread, NULL, s_sdk_worker_run, self) == 0);
}

static int
s_sdk_handled (sdk_worker_t *self)
{
    pthread_mutex_lock (&self->lock);
    int handled = self->handled;
    pthread_mutex_unlock (&self->lock);
    return handled;
}

static void
s_sdk_worker_stop (sdk_worker_t *self)
{
    drover_worker_stop (self->worker);
    pthread_join (self->thread, NULL);
    drover_worker_destroy (&self->worker);
    pthread_mutex_destroy (&self->lock);
}

//  The test's keys
static ident_t s_producer, s_producer2, s_worker, s_admin;
static ident_t s_limited, s_limited_worker, s_limited_admin;

//  Roles ----------------------------------------------------------------------

static void
test_roles (void)
{
    //  A worker key on the client endpoint
    peer_t peer;
    s_peer_open (&peer, s_producers, &s_worker);
    drv_msg_t msg = s_hello (&peer, DRV_PEER_CLIENT, NULL, NULL);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    CHECK (strstr (msg.error.message, "worker key may not connect"));
    CHECK (s_logged (s_worker.key, "may not connect as a client"));
    s_peer_close (&peer);

    //  A producer key on the worker endpoint
    s_peer_open (&peer, s_workers, &s_producer);
    msg = s_hello (&peer, DRV_PEER_WORKER, "jobs", NULL);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    CHECK (s_logged (s_producer.key, "may not connect as a worker"));
    s_peer_close (&peer);

    //  A producer key asking for admin commands
    peer_t producer;
    s_join (&producer, s_producers, &s_producer, DRV_PEER_CLIENT, NULL, NULL);
    msg = s_queue_control (&producer, "jobs", DRV_QUEUE_PAUSE);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    CHECK (strstr (msg.error.message, "admin"));
    CHECK (s_logged (s_producer.key, "pausing or resuming a queue"));
    msg = s_dead_list (&producer, "jobs");
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    CHECK (strstr (msg.error.message, "admin"));
    CHECK (s_logged (s_producer.key, "dead-letter handling"));
    //  ... while what producers may do still works
    CHECK (s_submit_one (&producer, "jobs", NULL, NULL) == DRV_CODE_OK);
    msg = s_state_set (&producer, "k", "v");
    CHECK (msg.cmd == DRV_CMD_STATE_REPLY && msg.state_reply.code == DRV_CODE_OK);

    //  An admin key: both endpoints and the admin commands
    peer_t admin, admin_worker;
    s_join (&admin, s_producers, &s_admin, DRV_PEER_CLIENT, NULL, NULL);
    s_join (&admin_worker, s_workers, &s_admin, DRV_PEER_WORKER, "other.q", NULL);
    msg = s_queue_control (&admin, "jobs", DRV_QUEUE_PAUSE);
    CHECK (msg.cmd == DRV_CMD_STATS_REPLY && msg.count == 1 && msg.queues [0].paused);
    msg = s_queue_control (&admin, "jobs", DRV_QUEUE_RESUME);
    CHECK (msg.cmd == DRV_CMD_STATS_REPLY && !msg.queues [0].paused);
    msg = s_dead_list (&admin, "jobs");
    CHECK (msg.cmd == DRV_CMD_QUERY_REPLY);
    //  Only admins see the clients in Stats; everyone sees workers
    msg = s_stats (&admin);
    CHECK (s_stats_has_peer (&msg, s_producer.key, DRV_PEER_CLIENT));
    CHECK (s_stats_has_peer (&msg, s_admin.key, DRV_PEER_WORKER));
    msg = s_stats (&producer);
    CHECK (!s_stats_has_peer (&msg, s_admin.key, DRV_PEER_CLIENT));
    CHECK (s_stats_has_peer (&msg, s_admin.key, DRV_PEER_WORKER));

    //  A worker key's Hello on its endpoint is welcome
    peer_t worker;
    s_join (&worker, s_workers, &s_worker, DRV_PEER_WORKER, "jobs", NULL);
    s_peer_close (&worker);
    s_peer_close (&admin_worker);
    s_peer_close (&admin);
    s_peer_close (&producer);
    printf ("roles: refusals with DENIED and a log line naming the key\n");
}

//  Queue limits ---------------------------------------------------------------

static void
test_queue_limits (void)
{
    //  s_limited: producer on "billing" and "rep.*"
    peer_t limited, producer, admin;
    s_join (&limited, s_producers, &s_limited, DRV_PEER_CLIENT, NULL, NULL);
    s_join (&producer, s_producers, &s_producer, DRV_PEER_CLIENT, NULL, NULL);
    s_join (&admin, s_producers, &s_admin, DRV_PEER_CLIENT, NULL, NULL);

    //  Submit: named queue, prefix, and refusals (the prefix is "rep.")
    uint8_t mine [16], theirs [16];
    const char *why = NULL;
    CHECK (s_submit_one (&limited, "billing", mine, NULL) == DRV_CODE_OK);
    CHECK (s_submit_one (&limited, "rep.daily", NULL, NULL) == DRV_CODE_OK);
    CHECK (s_submit_one (&limited, "rep.", NULL, NULL) == DRV_CODE_OK);
    CHECK (s_submit_one (&limited, "other", NULL, &why) == DRV_CODE_DENIED);
    CHECK (strstr (why, "queue"));
    CHECK (s_logged (s_limited.key, "to queue other refused"));
    CHECK (s_submit_one (&limited, "rep", NULL, NULL) == DRV_CODE_DENIED);
    CHECK (s_submit_one (&limited, "billing2", NULL, NULL) == DRV_CODE_DENIED);
    //  One message, mixed: each job judged alone
    uint8_t ids [2][16];
    const char *payloads [2] = {"a", "b"};
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_SUBMIT, s_corr++);
    drv_jobspec_t specs [2];
    memset (specs, 0, sizeof specs);
    drv_random_id (ids [0]);
    drv_random_id (ids [1]);
    memcpy (specs [0].id, ids [0], 16);
    memcpy (specs [1].id, ids [1], 16);
    specs [0].queue = "billing";
    specs [1].queue = "secret";
    msg.specs = specs;
    msg.count = 2;
    s_send (&limited, &msg, payloads, 2);
    msg = s_recv_cmd (&limited, DRV_CMD_SUBMIT_ACK);
    CHECK (msg.count == 2 && msg.acks [0].code == DRV_CODE_OK && msg.acks [1].code == DRV_CODE_DENIED);

    //  Query and cancel of a job in another queue: refused, job untouched
    CHECK (s_submit_one (&producer, "other", theirs, NULL) == DRV_CODE_OK);
    msg = s_query (&limited, theirs, false);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    CHECK (strstr (msg.error.message, "other"));
    CHECK (s_logged (s_limited.key, "query by"));
    msg = s_query (&limited, theirs, true);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    CHECK (s_logged (s_limited.key, "cancel by"));
    msg = s_query (&producer, theirs, false);
    CHECK (msg.cmd == DRV_CMD_QUERY_REPLY && msg.infos [0].state == DRV_JOB_QUEUED);
    //  Its own jobs: fine
    msg = s_query (&limited, mine, false);
    CHECK (msg.cmd == DRV_CMD_QUERY_REPLY && msg.infos [0].state == DRV_JOB_QUEUED);
    msg = s_query (&limited, mine, true);
    CHECK (msg.cmd == DRV_CMD_QUERY_REPLY && msg.infos [0].state == DRV_JOB_CANCELLED);

    //  Workers: s_limited_worker may serve "billing" only
    peer_t wide, billing, other_worker;
    s_peer_open (&wide, s_workers, &s_limited_worker);
    msg = s_hello (&wide, DRV_PEER_WORKER, "billing", "other");
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    CHECK (strstr (msg.error.message, "other"));
    CHECK (s_logged (s_limited_worker.key, "may not serve queue other"));
    s_peer_close (&wide);
    s_join (&billing, s_workers, &s_limited_worker, DRV_PEER_WORKER, "billing", NULL);
    s_join (&other_worker, s_workers, &s_worker, DRV_PEER_WORKER, "other", NULL);
    //  The billing worker gets billing jobs
    drv_msg_t dispatch = s_recv_cmd (&billing, DRV_CMD_DISPATCH);
    CHECK (dispatch.cmd == DRV_CMD_DISPATCH && streq (dispatch.jobs [0].queue, "billing"));

    //  Stats of a limited key: its queues and the workers serving them only
    msg = s_stats (&limited);
    CHECK (msg.cmd == DRV_CMD_STATS_REPLY);
    CHECK (s_stats_has_queue (&msg, "billing") && s_stats_has_queue (&msg, "rep.daily"));
    CHECK (!s_stats_has_queue (&msg, "other") && !s_stats_has_queue (&msg, "jobs"));
    CHECK (s_stats_has_peer (&msg, s_limited_worker.key, DRV_PEER_WORKER));
    CHECK (!s_stats_has_peer (&msg, s_worker.key, DRV_PEER_WORKER));
    CHECK (!s_stats_has_peer (&msg, s_producer.key, DRV_PEER_CLIENT));
    msg = s_stats (&producer);
    CHECK (s_stats_has_queue (&msg, "other") && s_stats_has_queue (&msg, "billing"));
    CHECK (s_stats_has_peer (&msg, s_worker.key, DRV_PEER_WORKER));

    //  An admin key limited to "adm.*": its queues only
    peer_t ladmin;
    s_join (&ladmin, s_producers, &s_limited_admin, DRV_PEER_CLIENT, NULL, NULL);
    msg = s_queue_control (&ladmin, "adm.one", DRV_QUEUE_PAUSE);
    CHECK (msg.cmd == DRV_CMD_STATS_REPLY && msg.queues [0].paused);
    msg = s_queue_control (&ladmin, "other", DRV_QUEUE_PAUSE);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    CHECK (s_logged (s_limited_admin.key, "queue control of other"));
    msg = s_dead_list (&ladmin, "adm.one");
    CHECK (msg.cmd == DRV_CMD_QUERY_REPLY);
    msg = s_dead_list (&ladmin, "other");
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    CHECK (s_logged (s_limited_admin.key, "dead-letter handling of other"));
    msg = s_query (&ladmin, theirs, false);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    msg = s_stats (&ladmin);
    CHECK (s_stats_has_queue (&msg, "adm.one") && !s_stats_has_queue (&msg, "other"));
    //  An admin limited to some queues sees only the clients... of nobody's
    //  queues: clients serve no queue, so none are listed
    CHECK (!s_stats_has_peer (&msg, s_producer.key, DRV_PEER_CLIENT));
    //  The unlimited admin still pauses anything
    msg = s_queue_control (&admin, "other", DRV_QUEUE_PAUSE);
    CHECK (msg.cmd == DRV_CMD_STATS_REPLY && msg.queues [0].paused);
    msg = s_queue_control (&admin, "other", DRV_QUEUE_RESUME);
    CHECK (msg.cmd == DRV_CMD_STATS_REPLY && !msg.queues [0].paused);

    //  Submitter: the worker sees who submitted; admins and the key itself
    //  too when they ask; another producer key does not
    dispatch = s_recv_cmd (&other_worker, DRV_CMD_DISPATCH);
    CHECK (dispatch.cmd == DRV_CMD_DISPATCH);
    bool seen = false;
    for (size_t i = 0; i < dispatch.count; i++)
        if (memcmp (dispatch.jobs [i].id, theirs, 16) == 0) {
            CHECK (streq (dispatch.jobs [i].submitter, s_producer.key));
            seen = true;
        }
    CHECK (seen);
    peer_t producer2;
    s_join (&producer2, s_producers, &s_producer2, DRV_PEER_CLIENT, NULL, NULL);
    msg = s_query (&admin, theirs, false);
    CHECK (msg.cmd == DRV_CMD_QUERY_REPLY && streq (msg.infos [0].submitter, s_producer.key));
    msg = s_query (&producer, theirs, false);
    CHECK (msg.cmd == DRV_CMD_QUERY_REPLY && streq (msg.infos [0].submitter, s_producer.key));
    msg = s_query (&producer2, theirs, false);
    CHECK (msg.cmd == DRV_CMD_QUERY_REPLY && msg.infos [0].state == DRV_JOB_RUNNING);
    CHECK (streq (msg.infos [0].submitter, ""));
    s_report_done (&other_worker, theirs, "done");

    s_peer_close (&producer2);
    s_peer_close (&ladmin);
    s_peer_close (&billing);
    s_peer_close (&other_worker);
    s_peer_close (&admin);
    s_peer_close (&producer);
    s_peer_close (&limited);
    printf ("queue limits: submit, worker hello, query, cancel, stats, queue control, "
            "dead letters, prefixes; submitter shown to worker, admin and owner only\n");
}

//  The SDK sees the submitter too
static void
test_sdk_submitter (void)
{
    sdk_worker_t worker;
    s_sdk_worker_start (&worker, &s_worker, "sdk.sub");
    int rc;
    drover_client_t *client = s_sdk_client (&s_producer2, &rc);
    CHECK (rc == 0);
    drover_future_t *future = NULL;
    CHECK (drover_submit (client, "sdk.sub", "hi", 2, NULL, &future) == 0);
    CHECK (drover_future_wait (future, 5000) == 0);
    drover_future_destroy (&future);
    pthread_mutex_lock (&worker.lock);
    CHECK (streq (worker.submitter, s_producer2.key));
    pthread_mutex_unlock (&worker.lock);
    drover_client_destroy (&client);
    s_sdk_worker_stop (&worker);
    printf ("submitter: drover_job_submitter gives the submitting key\n");
}

//  Allow-list changes -----------------------------------------------------

static void
test_reload (zactor_t *broker)
{
    //  A key added while the broker runs is admitted without a restart
    ident_t late;
    s_ident (&late, "late", "producer", NULL, false);
    int rc;
    drover_client_t *client = s_sdk_client (&late, &rc);
    CHECK (rc == DROVER_EUNAUTH && !client);
    s_allow_write (&late, "producer", NULL);
    uint64_t start = drv_now_ms ();
    uint64_t end = start + 5000;
    do
        client = s_sdk_client (&late, &rc);
    while (rc != 0 && drv_now_ms () < end);
    CHECK (rc == 0);
    printf ("reload: an added key connects %d ms after its certificate appeared\n",
            (int) (drv_now_ms () - start));

    //  Removing it closes its live sessions: a raw client hears DENIED,
    //  an SDK client's new work is not served, a raw worker and an SDK
    //  worker get no more jobs
    ident_t gone, gone_worker;
    s_ident (&gone, "gone", "producer", NULL, true);
    s_ident (&gone_worker, "gone_worker", "worker", NULL, true);
    s_idle (1200);                  //  picked up by the periodic check
    peer_t raw, raw_worker, admin;
    s_join (&raw, s_producers, &gone, DRV_PEER_CLIENT, NULL, NULL);
    s_join (&raw_worker, s_workers, &gone_worker, DRV_PEER_WORKER, "gone.raw", NULL);
    s_join (&admin, s_producers, &s_admin, DRV_PEER_CLIENT, NULL, NULL);
    sdk_worker_t sdk_worker;
    s_sdk_worker_start (&sdk_worker, &gone_worker, "gone.sdk");
    drover_client_t *gone_client = s_sdk_client (&gone, &rc);
    CHECK (rc == 0);
    //  Both workers serve before the removal
    drover_future_t *future = NULL;
    CHECK (drover_submit (gone_client, "gone.sdk", "1", 1, NULL, &future) == 0);
    CHECK (drover_future_wait (future, 5000) == 0);
    drover_future_destroy (&future);
    CHECK (s_sdk_handled (&sdk_worker) == 1);
    uint8_t id [16];
    CHECK (s_submit_one (&admin, "gone.raw", id, NULL) == DRV_CODE_OK);
    drv_msg_t msg = s_recv_cmd (&raw_worker, DRV_CMD_DISPATCH);
    CHECK (msg.cmd == DRV_CMD_DISPATCH);
    s_report_done (&raw_worker, id, "r");

    start = drv_now_ms ();
    s_revoke (&gone);
    s_revoke (&gone_worker);
    //  The check runs every second; a loaded machine may take longer
    CHECK (s_recv_within (&raw, 10000, &msg));
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    CHECK (strstr (msg.error.message, "removed"));
    printf ("reload: a removed key's session closed %d ms after its certificate went\n",
            (int) (drv_now_ms () - start));
    raw.welcomed = false;
    CHECK (s_recv_within (&raw_worker, 10000, &msg));
    if (msg.cmd != DRV_CMD_ERROR || msg.error.code != DRV_CODE_DENIED)
        fprintf (stderr, "raw worker got %s %s instead\n", drv_cmd_name (msg.cmd),
                 msg.cmd == DRV_CMD_ERROR? drv_code_name (msg.error.code): "");
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    raw_worker.welcomed = false;
    CHECK (s_logged ("closing session of client", gone.key));
    CHECK (s_logged ("closing session of worker", gone_worker.key));
    //  The old connection's Hello is refused, and nothing else is served
    msg = s_hello (&raw, DRV_PEER_CLIENT, NULL, NULL);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    CHECK (s_logged ("not in the allow-list", gone.key));
    msg = s_stats (&raw);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_REHELLO);
    msg = s_hello (&raw_worker, DRV_PEER_WORKER, "gone.raw", NULL);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    //  New connections with the key fail the handshake
    drover_client_t *again = s_sdk_client (&gone, &rc);
    CHECK (rc == DROVER_EUNAUTH && !again);
    //  The SDK client was told: a new submit is refused at once as denied
    //  (or, if the notice is still on its way, fails as denied)
    future = NULL;
    rc = drover_submit (gone_client, "gone.sdk", "2", 1, NULL, &future);
    if (rc == 0)
        rc = drover_future_wait (future, 2000);
    CHECK (rc == DROVER_EDENIED);
    printf ("reload: the removed key's SDK client gets '%s' for a new submit\n",
            drover_strerror (rc));
    drover_future_destroy (&future);
    drover_client_destroy (&gone_client);
    //  Jobs for the removed workers stay queued
    uint8_t raw_job [16], sdk_job [16];
    CHECK (s_submit_one (&admin, "gone.raw", raw_job, NULL) == DRV_CODE_OK);
    CHECK (s_submit_one (&admin, "gone.sdk", sdk_job, NULL) == DRV_CODE_OK);
    CHECK (s_quiet (&raw_worker, 1500));
    msg = s_query (&admin, raw_job, false);
    CHECK (msg.infos [0].state == DRV_JOB_QUEUED);
    msg = s_query (&admin, sdk_job, false);
    CHECK (msg.infos [0].state == DRV_JOB_QUEUED);
    CHECK (s_sdk_handled (&sdk_worker) == 1);
    msg = s_stats (&admin);
    CHECK (!s_stats_has_peer (&msg, gone_worker.key, DRV_PEER_WORKER));
    CHECK (!s_stats_has_peer (&msg, gone.key, DRV_PEER_CLIENT));
    s_sdk_worker_stop (&sdk_worker);
    s_peer_close (&raw);
    s_peer_close (&raw_worker);

    //  Changing a key's role: its session is asked to re-hello and gets
    //  the new rights (a producer turned worker may no longer be a client)
    ident_t turn;
    s_ident (&turn, "turn", "producer", NULL, true);
    s_idle (1200);
    peer_t turning;
    s_join (&turning, s_producers, &turn, DRV_PEER_CLIENT, NULL, NULL);
    s_allow_write (&turn, "worker", NULL);
    msg = s_recv (&turning);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_REHELLO);
    CHECK (s_logged ("role or queues changed", turn.key));
    msg = s_hello (&turning, DRV_PEER_CLIENT, NULL, NULL);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    s_peer_close (&turning);
    s_join (&turning, s_workers, &turn, DRV_PEER_WORKER, "turned", NULL);
    //  ... and a worker turned admin may now pause queues
    s_allow_write (&turn, "admin", NULL);
    msg = s_recv (&turning);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_REHELLO);
    s_peer_close (&turning);
    s_join (&turning, s_producers, &turn, DRV_PEER_CLIENT, NULL, NULL);
    msg = s_queue_control (&turning, "turned", DRV_QUEUE_PAUSE);
    CHECK (msg.cmd == DRV_CMD_STATS_REPLY);
    s_peer_close (&turning);

    //  RELOAD on the actor: an edit that keeps the file's size and times
    //  escapes the periodic check; the command applies it at once
    ident_t quiet;
    s_ident (&quiet, "quiet", "producer", "qa", true);
    s_idle (1200);
    peer_t quiet_peer;
    s_join (&quiet_peer, s_producers, &quiet, DRV_PEER_CLIENT, NULL, NULL);
    CHECK (s_submit_one (&quiet_peer, "qa", NULL, NULL) == DRV_CODE_OK);
    CHECK (s_submit_one (&quiet_peer, "qb", NULL, NULL) == DRV_CODE_DENIED);
    s_allow_rewrite_unseen (&quiet, "producer", "qb");
    CHECK (s_quiet (&quiet_peer, 1500));
    CHECK (s_submit_one (&quiet_peer, "qb", NULL, NULL) == DRV_CODE_DENIED);
    start = drv_now_ms ();
    broker_reload (broker);
    msg = s_recv (&quiet_peer);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_REHELLO);
    CHECK (drv_now_ms () - start < 2000);
    CHECK (s_logged ("reloading the allow-list", NULL));
    msg = s_hello (&quiet_peer, DRV_PEER_CLIENT, NULL, NULL);
    CHECK (msg.cmd == DRV_CMD_WELCOME);
    CHECK (s_submit_one (&quiet_peer, "qb", NULL, NULL) == DRV_CODE_OK);
    CHECK (s_submit_one (&quiet_peer, "qa", NULL, NULL) == DRV_CODE_DENIED);
    s_peer_close (&quiet_peer);

    //  The broker keeps serving the others throughout
    future = NULL;
    CHECK (drover_submit (client, "late.q", "x", 1, NULL, &future) == 0);
    CHECK (drover_future_accepted (future, 3000) == 0);
    drover_future_destroy (&future);
    drover_client_destroy (&client);
    s_peer_close (&admin);
    zcert_destroy (&late.cert);
    zcert_destroy (&gone.cert);
    zcert_destroy (&gone_worker.cert);
    zcert_destroy (&turn.cert);
    zcert_destroy (&quiet.cert);
    printf ("reload: role change, queue change, RELOAD command applied\n");
}

//  Isolation between keys --------------------------------------------------
//  (run as a test of its own: "test_security isolation")

//  A check that reports and lets the next one run
#define KEEP(cond) \
    do { if (!(cond)) { \
        dprintf (s_stderr, "%s:%d: rule not kept: %s\n", __FILE__, __LINE__, #cond); \
        ok = false; goto done; } } while (0)

//  A dead-letter request on its own queue naming a job of another queue
//  must tell a queue-limited admin nothing about that job
static bool
test_dead_letter_ids (void)
{
    bool ok = true;
    peer_t producer, ladmin;
    s_join (&producer, s_producers, &s_producer, DRV_PEER_CLIENT, NULL, NULL);
    s_join (&ladmin, s_producers, &s_limited_admin, DRV_PEER_CLIENT, NULL, NULL);
    uint8_t theirs [16];
    CHECK (s_submit_one (&producer, "hidden", theirs, NULL) == DRV_CODE_OK);
    drv_msg_t msg = s_query (&ladmin, theirs, false);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    msg = s_dead_ids (&ladmin, "adm.one", DRV_DEAD_LIST, theirs);
    KEEP (msg.cmd == DRV_CMD_ERROR
         || (msg.count == 1 && msg.infos [0].state == DRV_JOB_UNKNOWN
             && streq (msg.infos [0].queue, "")));
    printf ("dead letters: ids of other queues' jobs reveal nothing to a limited admin\n");
done:
    s_peer_close (&ladmin);
    s_peer_close (&producer);
    return ok;
}

//  A removal first seen by the handshake of some other connection must
//  still close the removed key's sessions
static bool
test_revoke_race (void)
{
    bool ok = true;
    ident_t racer;
    s_ident (&racer, "racer", "producer", NULL, true);
    peer_t peer;
    s_join (&peer, s_producers, &racer, DRV_PEER_CLIENT, NULL, NULL);
    s_revoke (&racer);
    int rc;
    drover_client_t *other = s_sdk_client (&s_producer2, &rc);
    CHECK (rc == 0);
    drv_msg_t msg;
    bool told = s_recv_within (&peer, 4000, &msg);
    KEEP (told && msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_DENIED);
    printf ("reload: a removal noticed during another peer's handshake closes the session too\n");
done:
    drover_client_destroy (&other);
    s_peer_close (&peer);
    zcert_destroy (&racer.cert);
    return ok;
}

//  Resubmitting the id of another queue's job must not hand a
//  queue-limited key that job's result
static bool
test_resubmit_foreign_id (void)
{
    bool ok = true;
    peer_t producer, limited, worker;
    s_join (&producer, s_producers, &s_producer, DRV_PEER_CLIENT, NULL, NULL);
    s_join (&limited, s_producers, &s_limited, DRV_PEER_CLIENT, NULL, NULL);
    s_join (&worker, s_workers, &s_worker, DRV_PEER_WORKER, "hidden2", NULL);
    uint8_t theirs [16];
    CHECK (s_submit_one (&producer, "hidden2", theirs, NULL) == DRV_CODE_OK);
    drv_msg_t msg = s_recv_cmd (&worker, DRV_CMD_DISPATCH);
    CHECK (msg.cmd == DRV_CMD_DISPATCH);
    s_report_done (&worker, theirs, "their secret");
    msg = s_recv_cmd (&producer, DRV_CMD_DELIVER);
    CHECK (msg.cmd == DRV_CMD_DELIVER);
    //  The same id, claimed for a queue the limited key may use
    drv_msg_init (&msg, DRV_CMD_SUBMIT, s_corr++);
    drv_jobspec_t spec;
    memset (&spec, 0, sizeof spec);
    memcpy (spec.id, theirs, 16);
    spec.queue = "billing";
    msg.specs = &spec;
    msg.count = 1;
    const char *payloads [1] = {"x"};
    s_send (&limited, &msg, payloads, 1);
    bool leaked = false;
    uint64_t end = drv_now_ms () + 1000;
    while (drv_now_ms () < end && s_recv_within (&limited, 200, &msg))
        if (msg.cmd == DRV_CMD_DELIVER)
            for (size_t i = 0; i < msg.count; i++)
                if (memcmp (msg.results [i].id, theirs, 16) == 0)
                    leaked = true;
    KEEP (!leaked);
    printf ("submit: another queue's job id gives a limited key nothing\n");
done:
    s_peer_close (&worker);
    s_peer_close (&limited);
    s_peer_close (&producer);
    return ok;
}

//  A Hello carrying another key's session id must not take over that
//  session (and with it the results of the jobs it submitted)
static bool
test_session_takeover (void)
{
    bool ok = true;
    peer_t owner, thief, worker;
    s_join (&owner, s_producers, &s_producer, DRV_PEER_CLIENT, NULL, NULL);
    uint8_t id [16];
    CHECK (s_submit_one (&owner, "steal.q", id, NULL) == DRV_CODE_OK);
    s_peer_open (&thief, s_producers, &s_producer2);
    memcpy (thief.session, owner.session, 16);
    drv_msg_t msg = s_hello (&thief, DRV_PEER_CLIENT, NULL, NULL);
    bool refused = msg.cmd == DRV_CMD_ERROR;
    s_join (&worker, s_workers, &s_worker, DRV_PEER_WORKER, "steal.q", NULL);
    msg = s_recv_cmd (&worker, DRV_CMD_DISPATCH);
    CHECK (msg.cmd == DRV_CMD_DISPATCH);
    s_report_done (&worker, id, "owner's result");
    bool stolen = false;
    uint64_t end = drv_now_ms () + 1000;
    while (!refused && drv_now_ms () < end && s_recv_within (&thief, 200, &msg))
        if (msg.cmd == DRV_CMD_DELIVER)
            for (size_t i = 0; i < msg.count; i++)
                if (memcmp (msg.results [i].id, id, 16) == 0)
                    stolen = true;
    KEEP (!stolen);
    printf ("sessions: another key cannot take over a session\n");
done:
    s_peer_close (&worker);
    s_peer_close (&thief);
    s_peer_close (&owner);
    return ok;
}

//  A removed key's subscription to the state stream must end too
static bool
test_revoke_subscriber (zactor_t *broker)
{
    bool ok = true;
    ident_t spy;
    s_ident (&spy, "spy", "producer", NULL, true);
    char *state_ep = NULL;
    CHECK (broker_state_endpoint (broker, &state_ep) == 0);
    void *sub = zmq_socket (s_ctx, ZMQ_SUB);
    CHECK (sub);
    int linger = 0;
    zmq_setsockopt (sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (sub, ZMQ_CURVE_SERVERKEY, zcert_public_key (s_server), 32);
    zmq_setsockopt (sub, ZMQ_CURVE_PUBLICKEY, zcert_public_key (spy.cert), 32);
    zmq_setsockopt (sub, ZMQ_CURVE_SECRETKEY, zcert_secret_key (spy.cert), 32);
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, "", 0);
    int timeout = 200;
    zmq_setsockopt (sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    CHECK (zmq_connect (sub, state_ep) == 0);
    peer_t admin;
    s_join (&admin, s_producers, &s_admin, DRV_PEER_CLIENT, NULL, NULL);
    //  Subscribed: updates arrive (retry while the subscription settles)
    bool heard = false;
    for (int i = 0; i < 20 && !heard; i++) {
        s_state_set (&admin, "spied", "1");
        char topic [64];
        heard = zmq_recv (sub, topic, sizeof topic, 0) > 0;
    }
    CHECK (heard);
    //  Within a few seconds of the removal, updates stop reaching it
    s_revoke (&spy);
    uint64_t end = drv_now_ms () + 6000;
    int silent = 0;
    while (silent < 3 && drv_now_ms () < end) {
        s_state_set (&admin, "spied", "2");
        char drain [64];
        heard = false;
        while (zmq_recv (sub, drain, sizeof drain, 0) >= 0)
            heard = true;           //  each wait is the 200 ms receive timeout
        silent = heard? 0: silent + 1;
    }
    KEEP (silent == 3);
    printf ("reload: a removed key's state subscription ends\n");
done:
    s_peer_close (&admin);
    zmq_close (sub);
    zstr_free (&state_ep);
    zcert_destroy (&spy.cert);
    return ok;
}

//  Limits -----------------------------------------------------------------

static void
test_limits (void)
{
    broker_config_t config;
    s_config (&config);
    config.max_payload = 100;
    config.max_batch = 5;
    config.max_key = 16;
    config.max_value = 64;
    config.max_queue_name = 10;
    config.max_queues = 3;
    config.max_inflight = 4;
    config.max_clients = 3;
    config.max_workers = 1;
    zactor_t *broker = s_broker (&config);

    //  The honest pair: a producer and a worker on "hq"
    peer_t honest, worker, greedy;
    s_join (&honest, s_producers, &s_producer2, DRV_PEER_CLIENT, NULL, NULL);
    s_join (&worker, s_workers, &s_worker, DRV_PEER_WORKER, "hq", NULL);
    s_join (&greedy, s_producers, &s_producer, DRV_PEER_CLIENT, NULL, NULL);
    drv_msg_t msg;

    //  Payload over max_payload
    char big [102];
    memset (big, 'p', 101);
    big [101] = 0;
    uint8_t ids [6][16];
    const char *payloads [6] = {big, "a", "b", "c", "d", "e"};
    msg = s_submit (&greedy, ids, payloads, 1, "lim");
    CHECK (msg.acks [0].code == DRV_CODE_TOO_LARGE);
    //  More jobs in a message than max_batch
    payloads [0] = "z";
    msg = s_submit (&greedy, ids, payloads, 6, "lim");
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_TOO_LARGE);
    CHECK (strstr (msg.error.message, "max_batch (5)"));
    //  Queue name over max_queue_name, on submit and on a worker's Hello
    const char *why = NULL;
    CHECK (s_submit_one (&greedy, "abcdefghijk", NULL, &why) == DRV_CODE_UNKNOWN_QUEUE);
    CHECK (strstr (why, "1-10"));
    CHECK (s_submit_one (&greedy, "abcdefghij", NULL, NULL) == DRV_CODE_OK);
    //  State key and value sizes
    msg = s_state_set (&greedy, "0123456789abcdefX", "v");
    CHECK (msg.cmd == DRV_CMD_STATE_REPLY && msg.state_reply.code == DRV_CODE_TOO_LARGE);
    CHECK (strstr (msg.state_reply.message, "max_key"));
    msg = s_state_set (&greedy, "0123456789abcdef", "v");
    CHECK (msg.state_reply.code == DRV_CODE_OK);
    char value [66];
    memset (value, 'v', 65);
    value [65] = 0;
    msg = s_state_set (&greedy, "k", value);
    CHECK (msg.state_reply.code == DRV_CODE_TOO_LARGE && strstr (msg.state_reply.message, "max_value"));

    //  Unfinished jobs per key: greedy has one (abcdefghij); three more fit
    uint8_t held [3][16];
    for (int i = 0; i < 3; i++)
        CHECK (s_submit_one (&greedy, "lim", held [i], NULL) == DRV_CODE_OK);
    CHECK (s_submit_one (&greedy, "lim", NULL, &why) == DRV_CODE_LIMIT);
    CHECK (strstr (why, "max_inflight"));
    CHECK (s_logged ("max_inflight", s_producer.key));
    //  ... the other key is not affected, and is served
    uint8_t job [16];
    CHECK (s_submit_one (&honest, "hq", job, NULL) == DRV_CODE_OK);
    msg = s_recv_cmd (&worker, DRV_CMD_DISPATCH);
    CHECK (msg.cmd == DRV_CMD_DISPATCH);
    s_report_done (&worker, job, "served");
    msg = s_recv_cmd (&honest, DRV_CMD_DELIVER);
    CHECK (msg.cmd == DRV_CMD_DELIVER && msg.results [0].state == DRV_JOB_DONE);
    //  ... and once one of greedy's jobs ends, greedy may submit again
    msg = s_query (&greedy, held [0], true);
    CHECK (msg.cmd == DRV_CMD_QUERY_REPLY && msg.infos [0].state == DRV_JOB_CANCELLED);
    CHECK (s_submit_one (&greedy, "lim", NULL, NULL) == DRV_CODE_OK);

    //  Queues: hq, abcdefghij, lim exist; a fourth is refused
    CHECK (s_submit_one (&honest, "fourth", NULL, &why) == DRV_CODE_LIMIT);
    CHECK (strstr (why, "max_queues"));
    CHECK (s_submit_one (&honest, "hq", NULL, NULL) == DRV_CODE_OK);

    //  Connections: three clients at most; a re-hello does not count
    peer_t fourth;
    s_peer_open (&fourth, s_producers, &s_admin);
    msg = s_hello (&fourth, DRV_PEER_CLIENT, NULL, NULL);
    CHECK (msg.cmd == DRV_CMD_WELCOME);
    peer_t fifth;
    s_peer_open (&fifth, s_producers, &s_producer);
    msg = s_hello (&fifth, DRV_PEER_CLIENT, NULL, NULL);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_LIMIT);
    CHECK (strstr (msg.error.message, "maximum of 3 clients"));
    msg = s_hello (&greedy, DRV_PEER_CLIENT, NULL, NULL);
    CHECK (msg.cmd == DRV_CMD_WELCOME);
    //  One worker at most
    peer_t second;
    s_peer_open (&second, s_workers, &s_admin);
    msg = s_hello (&second, DRV_PEER_WORKER, "hq", NULL);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_LIMIT);
    CHECK (strstr (msg.error.message, "maximum of 1 worker"));
    //  A worker Hello with a queue name over the limit
    msg = s_hello (&second, DRV_PEER_WORKER, "abcdefghijk", NULL);
    CHECK (msg.cmd == DRV_CMD_ERROR && msg.error.code == DRV_CODE_UNKNOWN_QUEUE);
    CHECK (strstr (msg.error.message, "1-10"));

    //  Costly requests (Stats, listings) are rationed per peer: a burst far
    //  past the allowance gets LIMIT, and other peers are not slowed
    drv_msg_init (&msg, DRV_CMD_STATS, 0);
    int burst = 400, answered = 0, limited = 0;
    for (int i = 0; i < burst; i++) {
        msg.corr = s_corr++;
        s_send (&greedy, &msg, NULL, 0);
    }
    while (answered + limited < burst) {
        drv_msg_t reply = s_recv (&greedy);
        if (reply.cmd == DRV_CMD_STATS_REPLY)
            answered++;
        else
        if (reply.cmd == DRV_CMD_ERROR) {
            CHECK (reply.error.code == DRV_CODE_LIMIT && strstr (reply.error.message, "slow down"));
            limited++;
        }
    }
    CHECK (limited > 0 && answered >= 100);
    printf ("limits: %d of %d Stats in a burst answered, %d refused with LIMIT\n",
            answered, burst, limited);
    msg = s_stats (&honest);
    CHECK (msg.cmd == DRV_CMD_STATS_REPLY);

    //  After all that, the honest client is still served
    CHECK (s_submit_one (&honest, "hq", job, NULL) == DRV_CODE_OK);
    msg = s_recv_cmd (&worker, DRV_CMD_DISPATCH);
    CHECK (msg.cmd == DRV_CMD_DISPATCH);
    bool found = false;
    for (size_t i = 0; i < msg.count; i++)
        if (memcmp (msg.jobs [i].id, job, 16) == 0)
            found = true;
    if (!found) {
        msg = s_recv_cmd (&worker, DRV_CMD_DISPATCH);
        CHECK (memcmp (msg.jobs [0].id, job, 16) == 0);
    }
    s_report_done (&worker, job, "still");
    do
        msg = s_recv_cmd (&honest, DRV_CMD_DELIVER);
    while (memcmp (msg.results [0].id, job, 16) != 0);
    CHECK (msg.results [0].state == DRV_JOB_DONE);

    s_peer_close (&second);
    s_peer_close (&fifth);
    s_peer_close (&fourth);
    s_peer_close (&greedy);
    s_peer_close (&worker);
    s_peer_close (&honest);
    zactor_destroy (&broker);
    printf ("limits: payload, batch, queue name, key, value, in-flight per key, queues, "
            "clients, workers refused; honest client served\n");
}

//  Server secret permissions ------------------------------------------------

static void
test_open_key (void)
{
    char open_path [PATH_MAX], open_secret [PATH_MAX + 8];
    snprintf (open_path, sizeof open_path, "%s/open.cert", s_dir);
    snprintf (open_secret, sizeof open_secret, "%s_secret", open_path);
    zcert_t *cert = zcert_new ();
    CHECK (zcert_save (cert, open_path) == 0);
    zcert_destroy (&cert);
    CHECK (chmod (open_secret, 0640) == 0);
    broker_config_t config;
    s_config (&config);
    config.cert = open_path;
    zactor_t *broker = broker_start (&config);
    CHECK (broker == NULL);
    CHECK (s_logged ("chmod 600", open_secret));
    CHECK (s_logged ("--allow-open-key", "0640"));
    //  Accepted on request, with a warning
    config.open_key_ok = true;
    broker = s_broker_try (&config);
    CHECK (broker);
    CHECK (s_logged ("accepted because of --allow-open-key", open_secret));
    zactor_destroy (&broker);
    //  Mode 0600 needs nothing
    CHECK (chmod (open_secret, 0600) == 0);
    config.open_key_ok = false;
    broker = s_broker_try (&config);
    CHECK (broker);
    zactor_destroy (&broker);
    //  A secret the broker creates itself is 0600
    char data [PATH_MAX], made [PATH_MAX + 32];
    snprintf (data, sizeof data, "%s/fresh", s_dir);
    config.cert = NULL;
    config.data_dir = data;
    mode_t old = umask (0);
    broker = s_broker_try (&config);
    umask (old);
    CHECK (broker);
    zactor_destroy (&broker);
    snprintf (made, sizeof made, "%s/server.cert_secret", data);
    struct stat st;
    CHECK (stat (made, &st) == 0 && (st.st_mode & 0777) == 0600);
    printf ("server secret: refused when group/other may read it, unless allowed\n");
}

//  With "isolation": only the checks that one key cannot reach into what
//  belongs to another (sessions, results, revoked subscriptions).
int
main (int argc, char *argv [])
{
    zsys_init ();
    zsys_set_logstream (NULL);
    snprintf (s_dir, sizeof s_dir, "/tmp/drover-security-XXXXXX");
    CHECK (mkdtemp (s_dir));
    snprintf (s_log, sizeof s_log, "%s/broker.log", s_dir);
    //  The broker's log goes to a file the checks read
    s_stderr = dup (2);
    int log = open (s_log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    CHECK (s_stderr >= 0 && log >= 0 && dup2 (log, 2) == 2);
    close (log);
    drv_log_setup (DRV_LOG_INFO, false);

    char keys [PATH_MAX];
    snprintf (keys, sizeof keys, "%s/keys", s_dir);
    snprintf (s_allow, sizeof s_allow, "%s/allow", s_dir);
    CHECK (mkdir (keys, 0700) == 0 && mkdir (s_allow, 0700) == 0);
    snprintf (s_server_path, sizeof s_server_path, "%s/server.cert", s_dir);
    s_server = zcert_new ();
    CHECK (zcert_save (s_server, s_server_path) == 0);
    char server_secret [PATH_MAX + 8];
    snprintf (server_secret, sizeof server_secret, "%s_secret", s_server_path);
    CHECK (chmod (server_secret, 0600) == 0);

    s_ident (&s_producer, "producer", NULL, NULL, true);       //  no role: producer
    s_ident (&s_producer2, "producer2", "producer", NULL, true);
    s_ident (&s_worker, "worker", "worker", NULL, true);
    s_ident (&s_admin, "admin", "admin", NULL, true);
    s_ident (&s_limited, "limited", "producer", "billing, rep.*", true);
    s_ident (&s_limited_worker, "limited_worker", "worker", "billing", true);
    s_ident (&s_limited_admin, "limited_admin", "admin", "adm.*", true);

    s_ctx = zmq_ctx_new ();
    s_codec = drv_codec_new ();
    drv_frames_init (&s_frames);
    broker_config_t config;
    s_config (&config);
    zactor_t *broker = s_broker (&config);

    if (argc > 1 && streq (argv [1], "isolation")) {
        bool kept = test_dead_letter_ids ();
        kept &= test_resubmit_foreign_id ();
        kept &= test_session_takeover ();
        kept &= test_revoke_race ();
        kept &= test_revoke_subscriber (broker);
        zactor_destroy (&broker);
        if (!kept)
            s_fail (__LINE__, "some rules are not kept (above)");
    }
    else {
        test_roles ();
        test_queue_limits ();
        test_sdk_submitter ();
        test_reload (broker);
        zactor_destroy (&broker);
        test_limits ();
        test_open_key ();
    }

    zstr_free (&s_producers);
    zstr_free (&s_workers);
    drv_frames_destroy (&s_frames);
    drv_codec_destroy (&s_codec);
    zmq_ctx_term (s_ctx);
    zcert_destroy (&s_server);
    ident_t *all [] = {&s_producer, &s_producer2, &s_worker, &s_admin, &s_limited,
                       &s_limited_worker, &s_limited_admin};
    for (size_t i = 0; i < sizeof all / sizeof all [0]; i++)
        zcert_destroy (&all [i]->cert);
    char command [128];
    snprintf (command, sizeof command, "rm -rf %s", s_dir);
    CHECK (system (command) == 0);
    printf ("test_security: all checks passed\n");
    return 0;
}
