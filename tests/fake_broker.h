/*  fake_broker.h - a tiny in-test broker speaking just enough of the
    protocol (plaintext) to exercise the SDK without droverd: Welcome,
    SubmitAck, Deliver, QueryReply, StatsReply, Dispatch, Bye and
    heartbeats, QueueControl and DeadLetter (admin requests; queue "secret"
    is denied, queue "nope" unknown; failed jobs are the dead letters), and
    ProgressReport (counted, latest kept per job), plus switches to inject REHELLO, a restart and silence.

    One ROUTER on tcp://127.0.0.1:* in its own thread and ZeroMQ context.
    Tests read and set fields under fb->lock.
*/
#ifndef FAKE_BROKER_H_INCLUDED
#define FAKE_BROKER_H_INCLUDED

#undef NDEBUG
#include "codec.h"
#include "idmap.h"
#include "util.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int state;                  //  drv_job_state_t
    zmq_msg_t payload;          //  result (client side) or input (worker side)
    char error [128];           //  failure text from a Report
    uint32_t progress;          //  latest progress percent
    char progress_message [512];    //  its text
} fb_job_t;

typedef struct {
    pthread_mutex_t lock;       //  guards everything below but the thread
    pthread_t thread;           //  broker loop
    atomic_bool stop;           //  ends the loop
    char endpoint [64];         //  where it listens
    void *ctx;                  //  its context
    bool shared_ctx;            //  ctx belongs to someone else
    void *router;               //  the socket (broker thread only)
    //  behaviour
    uint32_t heartbeat_ms;      //  announced and sent
    uint32_t max_payload;       //  announced
    uint32_t max_batch;         //  announced
    bool deliver;               //  deliver results right after acking
    int rehello_submits;        //  answer this many Submits with REHELLO
    bool forget;                //  next turn: forget peers and jobs (restart)
    bool silent;                //  ignore everything, send nothing
    bool deny_hello;            //  answer Hello with CODE_DENIED
    //  client-side counters
    int hellos;                 //  Hellos received
    int submit_msgs;            //  Submit messages received
    int jobs;                   //  jobs received in them (incl. resends)
    int max_jobs_per_msg;       //  largest Submit
    int queries;                //  Query messages
    int byes;                   //  Byes received
    bool known;                 //  the peer is registered
    zmq_msg_t peer;             //  its routing id
    drv_idmap_t *store;         //  id -> fb_job_t
    //  worker side
    uint32_t credit;            //  worker's credit
    int reports;                //  Report messages
    int results;                //  results in them
    int dispatched;             //  jobs sent
    uint8_t (*todo) [16];       //  ids queued for dispatch
    size_t todo_count;          //  how many
    uint32_t job_timeout_ms;    //  Job.timeout_ms sent
    uint8_t cancel_id [16];     //  send Cancel for this id when set
    bool cancel_pending;        //  cancel_id is set
    uint64_t last_send;         //  for heartbeats
    uint32_t last_hello_credit; //  credit in the last Hello
    //  admin requests
    int queue_controls;         //  QueueControl messages
    int dead_letters;           //  DeadLetter messages
    //  progress (worker side)
    int progress_msgs;          //  ProgressReport messages
    int progress_entries;       //  entries in them
    int progress_dups;          //  entries repeating an id in the same message
    size_t progress_longest;    //  longest text received
} fb_t;

static void
fb_send (fb_t *fb, drv_codec_t *codec, drv_msg_t *msg, zmq_msg_t *payloads, size_t count)
{
    zmq_msg_t envelope;
    assert (drv_codec_encode (codec, msg, &envelope) == 0);
    assert (drv_send (fb->router, &fb->peer, &envelope, payloads, count, false) == 0);
    fb->last_send = drv_now_ms ();
}

static fb_job_t *
fb_job (fb_t *fb, const uint8_t *id, bool create)
{
    fb_job_t *job = (fb_job_t *) drv_idmap_get (fb->store, id);
    if (!job && create) {
        job = calloc (1, sizeof *job);
        zmq_msg_init (&job->payload);
        drv_idmap_put (fb->store, id, job);
    }
    return job;
}

static void
fb_free_job (const uint8_t *id, void *value, void *arg)
{
    fb_job_t *job = (fb_job_t *) value;
    zmq_msg_close (&job->payload);
    free (job);
}

static void
fb_forget_all (fb_t *fb)
{
    drv_idmap_each (fb->store, fb_free_job, NULL);
    drv_idmap_destroy (&fb->store);
    fb->store = drv_idmap_new ();
    fb->known = false;
}

static void
fb_error (fb_t *fb, drv_codec_t *codec, uint64_t corr, drv_code_t code, const char *text)
{
    drv_msg_t msg;
    drv_msg_init (&msg, DRV_CMD_ERROR, corr);
    msg.error.code = code;
    msg.error.message = text;
    fb_send (fb, codec, &msg, NULL, 0);
}

typedef struct {
    uint8_t (*ids) [16];        //  collected ids
    size_t count;               //  how many
} fb_collect_t;

static void
fb_collect_dead (const uint8_t *id, void *value, void *arg)
{
    fb_collect_t *collect = (fb_collect_t *) arg;
    if (((fb_job_t *) value)->state == DRV_JOB_FAILED)
        memcpy (collect->ids [collect->count++], id, 16);
}

//  DeadLetter: failed jobs are the dead letters of every queue; like the
//  broker, at most max_batch (LIST: limit, default 100) per request.
static void
fb_dead_letter (fb_t *fb, drv_codec_t *codec, drv_msg_t *in)
{
    fb->dead_letters++;
    if (strcmp (in->dead.queue, "secret") == 0) {
        fb_error (fb, codec, in->corr, DRV_CODE_DENIED, "dead-letter handling needs an admin key");
        return;
    }
    if (strcmp (in->dead.queue, "nope") == 0) {
        fb_error (fb, codec, in->corr, DRV_CODE_UNKNOWN_QUEUE, "invalid queue name");
        return;
    }
    size_t limit = fb->max_batch;
    size_t asked = in->dead.limit? in->dead.limit: 100;
    if (in->dead.action == DRV_DEAD_LIST && asked < limit)
        limit = asked;
    fb_collect_t collect = {calloc (drv_idmap_size (fb->store) + in->count + 1, 16), 0};
    if (in->count) {
        memcpy (collect.ids, in->ids, in->count * 16);
        collect.count = in->count;
    }
    else {
        drv_idmap_each (fb->store, fb_collect_dead, &collect);
        if (collect.count > limit)
            collect.count = limit;
    }
    size_t n = collect.count;
    drv_jobinfo_t *infos = calloc (n? n: 1, sizeof *infos);
    zmq_msg_t *payloads = calloc (n? n: 1, sizeof (zmq_msg_t));
    for (size_t i = 0; i < n; i++) {
        memcpy (infos [i].id, collect.ids [i], 16);
        infos [i].queue = "q";
        infos [i].error = "";
        infos [i].progress_message = "";
        zmq_msg_init (&payloads [i]);
        fb_job_t *job = fb_job (fb, collect.ids [i], false);
        if (!job)
            continue;
        infos [i].state = job->state;
        infos [i].attempts = 3;
        infos [i].error = "boom";
        infos [i].finished_ms = 1700000000000ull;
        if (job->state != DRV_JOB_FAILED)
            continue;
        if (in->dead.action == DRV_DEAD_RETRY)
            job->state = infos [i].state = DRV_JOB_QUEUED;
        else
        if (in->dead.action == DRV_DEAD_PURGE) {
            infos [i].state = DRV_JOB_UNKNOWN;
            fb_free_job (collect.ids [i], drv_idmap_remove (fb->store, collect.ids [i]), NULL);
        }
    }
    drv_msg_t out;
    drv_msg_init (&out, DRV_CMD_QUERY_REPLY, in->corr);
    out.infos = infos;
    out.count = n;
    fb_send (fb, codec, &out, payloads, n);
    free (infos);
    free (payloads);
    free (collect.ids);
}

static void
fb_handle (fb_t *fb, drv_codec_t *codec, drv_frames_t *frames)
{
    drv_msg_t in;
    zmq_msg_copy (&fb->peer, &frames->msg [0]);
    if (drv_codec_decode (codec, zmq_msg_data (&frames->msg [1]), zmq_msg_size (&frames->msg [1]), &in))
        return;
    if (in.cmd == DRV_CMD_HELLO) {
        fb->hellos++;
        if (fb->deny_hello) {
            fb_error (fb, codec, in.corr, DRV_CODE_DENIED, "role may not");
            return;
        }
        fb->known = true;
        fb->credit = in.hello.credit;
        fb->last_hello_credit = in.hello.credit;
        drv_msg_t out;
        drv_msg_init (&out, DRV_CMD_WELCOME, in.corr);
        memset (out.welcome.broker_id, 7, 16);
        out.welcome.version = 1;
        out.welcome.heartbeat_ms = fb->heartbeat_ms;
        out.welcome.max_payload = fb->max_payload;
        out.welcome.max_batch = fb->max_batch;
        out.welcome.role = "admin";
        fb_send (fb, codec, &out, NULL, 0);
        return;
    }
    if (!fb->known) {
        fb_error (fb, codec, in.corr, DRV_CODE_REHELLO, "hello first");
        return;
    }
    switch (in.cmd) {
        case DRV_CMD_SUBMIT: {
            fb->submit_msgs++;
            if (fb->rehello_submits > 0) {
                fb->rehello_submits--;
                fb->known = false;
                fb_error (fb, codec, in.corr, DRV_CODE_REHELLO, "who are you");
                return;
            }
            fb->jobs += (int) in.count;
            if ((int) in.count > fb->max_jobs_per_msg)
                fb->max_jobs_per_msg = (int) in.count;
            size_t n = in.count;
            drv_joback_t *acks = calloc (n? n: 1, sizeof *acks);
            drv_result_t *results = calloc (n? n: 1, sizeof *results);
            zmq_msg_t *payloads = calloc (n? n: 1, sizeof (zmq_msg_t));
            size_t delivered = 0;
            for (size_t i = 0; i < n; i++) {
                memcpy (acks [i].id, in.specs [i].id, 16);
                acks [i].message = "";
                if (strcmp (in.specs [i].queue, "refuse") == 0) {
                    acks [i].code = DRV_CODE_UNKNOWN_QUEUE;
                    acks [i].message = "no such queue here";
                    continue;
                }
                fb_job_t *job = fb_job (fb, in.specs [i].id, true);
                //  The result is the input, as if an echo worker ran it
                zmq_msg_close (&job->payload);
                zmq_msg_init (&job->payload);
                zmq_msg_copy (&job->payload, &frames->msg [2 + i]);
                job->state = strcmp (in.specs [i].queue, "fail") == 0? DRV_JOB_FAILED: DRV_JOB_DONE;
                if (fb->deliver) {
                    memcpy (results [delivered].id, in.specs [i].id, 16);
                    results [delivered].state = job->state;
                    results [delivered].error = job->state == DRV_JOB_FAILED? "boom": "";
                    results [delivered].attempts = 1;
                    zmq_msg_init (&payloads [delivered]);
                    if (job->state == DRV_JOB_DONE)
                        zmq_msg_copy (&payloads [delivered], &job->payload);
                    delivered++;
                }
                else
                    job->state = DRV_JOB_QUEUED;
            }
            drv_msg_t out;
            drv_msg_init (&out, DRV_CMD_SUBMIT_ACK, in.corr);
            out.acks = acks;
            out.count = n;
            fb_send (fb, codec, &out, NULL, 0);
            if (delivered) {
                drv_msg_init (&out, DRV_CMD_DELIVER, 0);
                out.results = results;
                out.count = delivered;
                fb_send (fb, codec, &out, payloads, delivered);
            }
            free (acks);
            free (results);
            free (payloads);
            break;
        }
        case DRV_CMD_QUERY:
        case DRV_CMD_CANCEL: {
            fb->queries++;
            size_t n = in.count;
            drv_jobinfo_t *infos = calloc (n? n: 1, sizeof *infos);
            zmq_msg_t *payloads = calloc (n? n: 1, sizeof (zmq_msg_t));
            for (size_t i = 0; i < n; i++) {
                memcpy (infos [i].id, in.ids [i], 16);
                infos [i].queue = "q";
                infos [i].error = "";
                infos [i].progress_message = "";
                zmq_msg_init (&payloads [i]);
                fb_job_t *job = fb_job (fb, in.ids [i], false);
                if (!job)
                    continue;
                infos [i].progress = job->progress;
                infos [i].progress_message = job->progress_message;
                if (in.cmd == DRV_CMD_CANCEL && job->state < DRV_JOB_DONE)
                    job->state = DRV_JOB_CANCELLED;
                infos [i].state = job->state;
                infos [i].attempts = 1;
                infos [i].payload_size = (uint32_t) zmq_msg_size (&job->payload);
                if (in.cmd == DRV_CMD_QUERY && in.query.want_result && job->state == DRV_JOB_DONE)
                    zmq_msg_copy (&payloads [i], &job->payload);
            }
            drv_msg_t out;
            drv_msg_init (&out, DRV_CMD_QUERY_REPLY, in.corr);
            out.infos = infos;
            out.count = n;
            fb_send (fb, codec, &out, payloads, n);
            free (infos);
            free (payloads);
            break;
        }
        case DRV_CMD_STATS: {
            drv_queue_stats_t queue = {.name = "q", .queued = 3, .done = 5, .workers = 1,
                                       .paused = true, .dead = 2, .submit_rate = 1.5,
                                       .done_rate = 0.25};
            drv_msg_t out;
            drv_msg_init (&out, DRV_CMD_STATS_REPLY, in.corr);
            out.queues = &queue;
            out.count = 1;
            out.stats.workers = 1;
            out.stats.clients = 2;
            out.stats.uptime_ms = 1234;
            fb_send (fb, codec, &out, NULL, 0);
            break;
        }
        case DRV_CMD_QUEUE_CONTROL: {
            fb->queue_controls++;
            if (strcmp (in.queue_control.queue, "secret") == 0) {
                fb_error (fb, codec, in.corr, DRV_CODE_DENIED, "pausing a queue needs an admin key");
                break;
            }
            if (strcmp (in.queue_control.queue, "nope") == 0) {
                fb_error (fb, codec, in.corr, DRV_CODE_UNKNOWN_QUEUE, "invalid queue name");
                break;
            }
            drv_queue_stats_t queue = {.name = in.queue_control.queue, .queued = 1,
                                       .paused = in.queue_control.action == DRV_QUEUE_PAUSE};
            drv_msg_t out;
            drv_msg_init (&out, DRV_CMD_STATS_REPLY, in.corr);
            out.queues = &queue;
            out.count = 1;
            fb_send (fb, codec, &out, NULL, 0);
            break;
        }
        case DRV_CMD_DEAD_LETTER:
            fb_dead_letter (fb, codec, &in);
            break;
        case DRV_CMD_PROGRESS:
            fb->progress_msgs++;
            for (size_t i = 0; i < in.count; i++) {
                fb->progress_entries++;
                for (size_t j = 0; j < i; j++)
                    if (memcmp (in.progress [j].id, in.progress [i].id, 16) == 0)
                        fb->progress_dups++;
                size_t length = strlen (in.progress [i].message);
                if (length > fb->progress_longest)
                    fb->progress_longest = length;
                fb_job_t *job = fb_job (fb, in.progress [i].id, true);
                job->progress = in.progress [i].percent;
                snprintf (job->progress_message, sizeof job->progress_message, "%s",
                          in.progress [i].message);
            }
            break;
        case DRV_CMD_REPORT:
            fb->reports++;
            for (size_t i = 0; i < in.count; i++) {
                fb->results++;
                fb->credit++;
                fb_job_t *job = fb_job (fb, in.results [i].id, true);
                job->state = in.results [i].state;
                snprintf (job->error, sizeof job->error, "%s", in.results [i].error);
                zmq_msg_close (&job->payload);
                zmq_msg_init (&job->payload);
                zmq_msg_copy (&job->payload, &frames->msg [2 + i]);
            }
            break;
        case DRV_CMD_BYE: {
            fb->byes++;
            fb->credit = 0;
            drv_msg_t out;
            drv_msg_init (&out, DRV_CMD_BYE, in.corr);
            fb_send (fb, codec, &out, NULL, 0);
            break;
        }
        default:
            break;
    }
}

//  Worker side: sends queued jobs while there is credit, one Dispatch.
static void
fb_dispatch (fb_t *fb, drv_codec_t *codec)
{
    if (fb->cancel_pending && fb->known) {
        fb->cancel_pending = false;
        drv_msg_t out;
        drv_msg_init (&out, DRV_CMD_CANCEL, 0);
        out.ids = &fb->cancel_id;
        out.count = 1;
        fb_send (fb, codec, &out, NULL, 0);
    }
    size_t n = fb->todo_count < fb->credit? fb->todo_count: fb->credit;
    if (!n || !fb->known)
        return;
    drv_job_t *jobs = calloc (n, sizeof *jobs);
    zmq_msg_t *payloads = calloc (n, sizeof (zmq_msg_t));
    for (size_t i = 0; i < n; i++) {
        memcpy (jobs [i].id, fb->todo [i], 16);
        jobs [i].queue = "q";
        jobs [i].attempt = 1;
        jobs [i].timeout_ms = fb->job_timeout_ms;
        //  Payload: the id's hex text, so handlers can echo it
        char text [33];
        drv_hex (fb->todo [i], 16, text);
        zmq_msg_init_size (&payloads [i], 32);
        memcpy (zmq_msg_data (&payloads [i]), text, 32);
    }
    drv_msg_t out;
    drv_msg_init (&out, DRV_CMD_DISPATCH, 0);
    out.jobs = jobs;
    out.count = n;
    fb_send (fb, codec, &out, payloads, n);
    memmove (fb->todo, fb->todo + n, (fb->todo_count - n) * 16);
    fb->todo_count -= n;
    fb->credit -= (uint32_t) n;
    fb->dispatched += (int) n;
    free (jobs);
    free (payloads);
}

static void *
fb_thread (void *arg)
{
    fb_t *fb = (fb_t *) arg;
    drv_codec_t *codec = drv_codec_new ();
    drv_frames_t frames;
    drv_frames_init (&frames);
    while (!atomic_load (&fb->stop)) {
        zmq_pollitem_t item = {fb->router, 0, ZMQ_POLLIN, 0};
        zmq_poll (&item, 1, 5);
        pthread_mutex_lock (&fb->lock);
        if (fb->forget) {
            fb->forget = false;
            fb_forget_all (fb);
        }
        while (drv_frames_recv (fb->router, &frames, ZMQ_DONTWAIT, 100000) > 0) {
            if (fb->silent || frames.count < 2)
                continue;
            fb_handle (fb, codec, &frames);
        }
        if (!fb->silent) {
            fb_dispatch (fb, codec);
            if (fb->known && drv_now_ms () - fb->last_send >= fb->heartbeat_ms) {
                drv_msg_t out;
                drv_msg_init (&out, DRV_CMD_HEARTBEAT, 0);
                fb_send (fb, codec, &out, NULL, 0);
            }
        }
        pthread_mutex_unlock (&fb->lock);
    }
    drv_frames_destroy (&frames);
    drv_codec_destroy (&codec);
    return NULL;
}

//  Starts a fake broker. With ctx (e.g. CZMQ's, where a zauth actor runs)
//  and server_secret (Z85), it is a CURVE server in that context.
static fb_t *
fb_start_in (void *ctx, const char *server_secret)
{
    fb_t *fb = calloc (1, sizeof *fb);
    pthread_mutex_init (&fb->lock, NULL);
    fb->heartbeat_ms = 100;
    fb->max_payload = 1 << 20;
    fb->max_batch = 1000;
    fb->deliver = true;
    fb->store = drv_idmap_new ();
    fb->todo = calloc (100000, 16);
    zmq_msg_init (&fb->peer);
    fb->shared_ctx = ctx != NULL;
    fb->ctx = ctx? ctx: zmq_ctx_new ();
    fb->router = zmq_socket (fb->ctx, ZMQ_ROUTER);
    if (server_secret) {
        int on = 1;
        zmq_setsockopt (fb->router, ZMQ_CURVE_SERVER, &on, sizeof on);
        zmq_setsockopt (fb->router, ZMQ_CURVE_SECRETKEY, server_secret, 40);
        zmq_setsockopt (fb->router, ZMQ_ZAP_DOMAIN, "global", 6);
    }
    int linger = 0;
    zmq_setsockopt (fb->router, ZMQ_LINGER, &linger, sizeof linger);
    int hwm = 0;
    zmq_setsockopt (fb->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (fb->router, ZMQ_RCVHWM, &hwm, sizeof hwm);
    assert (zmq_bind (fb->router, "tcp://127.0.0.1:*") == 0);
    size_t size = sizeof fb->endpoint;
    zmq_getsockopt (fb->router, ZMQ_LAST_ENDPOINT, fb->endpoint, &size);
    pthread_create (&fb->thread, NULL, fb_thread, fb);
    return fb;
}

static fb_t *
fb_start (void)
{
    return fb_start_in (NULL, NULL);
}

static void
fb_stop (fb_t **fb_p)
{
    fb_t *fb = *fb_p;
    atomic_store (&fb->stop, true);
    pthread_join (fb->thread, NULL);
    zmq_close (fb->router);
    if (!fb->shared_ctx)
        zmq_ctx_term (fb->ctx);
    drv_idmap_each (fb->store, fb_free_job, NULL);
    drv_idmap_destroy (&fb->store);
    zmq_msg_close (&fb->peer);
    free (fb->todo);
    pthread_mutex_destroy (&fb->lock);
    free (fb);
    *fb_p = NULL;
}

//  Reads an int field under the lock.
#define FB_GET(fb, field) \
    ({ pthread_mutex_lock (&(fb)->lock); __typeof__ ((fb)->field) v_ = (fb)->field; \
       pthread_mutex_unlock (&(fb)->lock); v_; })
#define FB_SET(fb, field, value) \
    do { pthread_mutex_lock (&(fb)->lock); (fb)->field = (value); \
         pthread_mutex_unlock (&(fb)->lock); } while (0)

//  Waits up to ms for cond to become true (polled).
#define WAIT_FOR(cond, ms) \
    do { uint64_t until_ = drv_now_ms () + (ms); \
         while (!(cond) && drv_now_ms () < until_) usleep (2000); } while (0)

#endif
