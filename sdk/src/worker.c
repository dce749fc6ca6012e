/*  worker.c - drover_worker_t: serves queues with handlers.

    drover_worker_run() turns the calling thread into the worker's I/O loop
    and starts `concurrency` handler threads. Jobs from a Dispatch keep their
    payload frame as it came off the wire (drover_job_payload points into
    it) and wait on a ready queue for a handler thread. Finished jobs go to a
    done queue; the handler raises the wake-up signal when that queue goes
    from empty to non-empty, and the I/O thread reports everything finished
    in that turn as one Report, each result buffer handed to ZeroMQ without
    a copy.

    Progress: drover_job_progress() (any handler thread) stores the latest
    percent and text in the job and links the job on a pending list once;
    later calls only overwrite it, so a handler may report as often as it
    likes. The I/O thread takes the whole list each loop turn and sends it
    as one ProgressReport (woken like for results), before that turn's
    Report, so a last "100%" just before the handler returns still arrives
    while the broker counts the job as running.

    Credit: Hello grants capacity (concurrency + prefetch) minus the jobs we
    still hold; each reported result returns one credit, so the broker never
    sends more than we can hold and we never need a Credit message.
*/
#include "common.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Longest progress text sent, in bytes (the broker keeps 256).
#define PROGRESS_TEXT 255

typedef struct {
    char *queue;                    //  queue served
    drover_handler_fn *fn;          //  what runs its jobs
    void *arg;                      //  handler argument
} handler_t;

struct _drover_job_t {
    uint8_t id [DRV_ID_SIZE];       //  job id
    char id_text [DROVER_ID_TEXT + 1];  //  as hex
    char queue [129];               //  queue it came from
    uint32_t attempt;               //  1 for the first
    uint32_t timeout_ms;            //  allowed for this attempt, 0 = none
    char submitter [41];            //  Z85 key that submitted it, "" if unknown
    uint64_t deadline;              //  monotonic ms when it times out, 0 = none
    zmq_msg_t payload;              //  input, as received
    const handler_t *handler;       //  who runs it, NULL if nobody
    void *result;                   //  result buffer (malloc), or NULL
    size_t result_size;             //  its size
    char *error;                    //  failure text (malloc), or NULL
    bool permanent;                 //  do not retry the failure
    bool failed;                    //  the attempt failed
    atomic_bool cancelled;          //  broker cancelled it, or it timed out
    drover_worker_t *worker;        //  the worker running it
    //  Progress, guarded by worker->lock
    bool finished;                  //  the handler is done: no more progress
    bool progress_pending;          //  on the worker's progress list
    uint32_t progress;              //  latest percent
    char progress_message [PROGRESS_TEXT + 1];  //  latest text
    drover_job_t *pnext;            //  progress list
    drover_job_t *prev;             //  held list (I/O thread)
    drover_job_t *next;             //  held list (I/O thread)
    drover_job_t *qnext;            //  ready, done or report queue; free pool
};

struct _drover_worker_t {
    drv_config_t config;            //  our copy of the settings
    handler_t *handlers;            //  queues served
    size_t handler_count;           //  handlers registered
    int concurrency;                //  handler threads
    int prefetch;                   //  jobs ahead, -1 = 2 x concurrency
    drv_signal_t wake;              //  stop requests and finished jobs
    volatile sig_atomic_t stop_requested;   //  set by drover_worker_stop
    uint8_t session [DRV_ID_SIZE];  //  Hello.session for this worker
    bool running;                   //  inside drover_worker_run

    pthread_mutex_t lock;           //  guards the queues and shutdown
    pthread_cond_t ready_cond;      //  a job is ready, or shutdown
    drover_job_t *ready_head;       //  jobs waiting for a handler thread
    drover_job_t *ready_tail;       //  last of them
    drover_job_t *done_head;        //  jobs finished by handlers
    drover_job_t *done_tail;        //  last of them
    drover_job_t *progress_head;    //  jobs with a progress report to send
    bool shutdown;                  //  handler threads must exit
    pthread_t *threads;             //  handler threads
    int thread_count;               //  started

    //  I/O thread only
    void *ctx;                      //  our own ZeroMQ context
    drv_keys_t keys;                //  CURVE keys, if any
    drv_link_t link;                //  connection to the broker, and its liveness
    drv_codec_t *rx;                //  decodes what arrives
    drv_codec_t *tx;                //  encodes what leaves
    drv_frames_t frames;            //  last message received
    drover_job_t *held;             //  dispatched and not yet reported
    size_t held_count;              //  jobs on that list
    size_t unfinished;              //  held jobs not yet finished
    drover_job_t *report_head;      //  finished, waiting to be reported
    drover_job_t *report_tail;      //  last of them
    drover_job_t *pool;             //  free job objects for reuse
    zmq_msg_t *payloads;            //  scratch frames for a Report
    size_t payload_cap;             //  frames allocated
    size_t capacity;                //  concurrency + prefetch
    bool draining;                  //  stop requested
    bool bye_sent;                  //  Bye is out on this session
    bool bye_received;              //  broker answered Bye: no more jobs
    int connect_result;             //  first connection: -1 pending, else outcome
    int revoked;                    //  DROVER_EDENIED once the broker revoked our key
    uint64_t corr;                  //  last correlation number used
    uint64_t hello_corr;            //  corr of the outstanding Hello
    uint64_t bye_corr;              //  corr of our Bye
    uint32_t max_batch;             //  from Welcome
    uint64_t next_deadline;         //  earliest job deadline, 0 = none
    uint64_t bye_deadline;          //  give up waiting for the Bye reply
};

static const char *s_component = "worker";

//  Setup ------------------------------------------------------------------

drover_worker_t *
drover_worker_new (const drover_connect_t *cfg)
{
    drover_worker_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    int rc = drv_config_copy (&self->config, cfg);
    if (rc) {
        fprintf (stderr, "drover_worker_new: %s (an endpoint is required, and for CURVE "
                 "both server_key and cert)\n", drover_strerror (rc));
        free (self);
        return NULL;
    }
    if (drv_signal_init (&self->wake)) {
        drv_config_free (&self->config);
        free (self);
        return NULL;
    }
    self->concurrency = 1;
    self->prefetch = -1;
    drv_random_id (self->session);
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->ready_cond, NULL);
    return self;
}

void
drover_worker_destroy (drover_worker_t **worker_p)
{
    if (!worker_p || !*worker_p)
        return;
    drover_worker_t *self = *worker_p;
    for (size_t i = 0; i < self->handler_count; i++)
        free (self->handlers [i].queue);
    free (self->handlers);
    drv_signal_destroy (&self->wake);
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->ready_cond);
    drv_config_free (&self->config);
    free (self);
    *worker_p = NULL;
}

int
drover_worker_handle (drover_worker_t *worker, const char *queue,
                      drover_handler_fn *fn, void *arg)
{
    if (!worker || !fn || !drv_queue_name_valid (queue) || worker->running)
        return DROVER_EINVAL;
    for (size_t i = 0; i < worker->handler_count; i++)
        if (strcmp (worker->handlers [i].queue, queue) == 0)
            return DROVER_EINVAL;
    handler_t *handlers = realloc (worker->handlers, (worker->handler_count + 1) * sizeof (handler_t));
    if (!handlers)
        return DROVER_ENOMEM;
    worker->handlers = handlers;
    char *copy = strdup (queue);
    if (!copy)
        return DROVER_ENOMEM;
    handlers [worker->handler_count++] = (handler_t) {copy, fn, arg};
    return 0;
}

int
drover_worker_set_concurrency (drover_worker_t *worker, int threads)
{
    if (!worker || threads < 1 || threads > 4096 || worker->running)
        return DROVER_EINVAL;
    worker->concurrency = threads;
    return 0;
}

int
drover_worker_set_prefetch (drover_worker_t *worker, int jobs)
{
    if (!worker || jobs < 0 || jobs > 1000000 || worker->running)
        return DROVER_EINVAL;
    worker->prefetch = jobs;
    return 0;
}

void
drover_worker_stop (drover_worker_t *worker)
{
    //  Async-signal-safe: a flag and a write()
    if (!worker)
        return;
    worker->stop_requested = 1;
    drv_signal_post (&worker->wake);
}

//  Inside a handler -------------------------------------------------------

const void *
drover_job_payload (drover_job_t *job, size_t *size_p)
{
    if (size_p)
        *size_p = job? zmq_msg_size (&job->payload): 0;
    return job? zmq_msg_data (&job->payload): NULL;
}

const char *
drover_job_id (drover_job_t *job)
{
    return job? job->id_text: NULL;
}

const char *
drover_job_queue (drover_job_t *job)
{
    return job? job->queue: NULL;
}

uint32_t
drover_job_attempt (drover_job_t *job)
{
    return job? job->attempt: 0;
}

uint32_t
drover_job_timeout_ms (drover_job_t *job)
{
    return job? job->timeout_ms: 0;
}

const char *
drover_job_submitter (drover_job_t *job)
{
    return job? job->submitter: "";
}

int
drover_job_take_result (drover_job_t *job, void *data, size_t size)
{
    if (!job || (size && !data))
        return DROVER_EINVAL;
    free (job->result);
    job->result = data;
    job->result_size = size;
    return 0;
}

int
drover_job_set_result (drover_job_t *job, const void *data, size_t size)
{
    if (!job || (size && !data))
        return DROVER_EINVAL;
    void *copy = NULL;
    if (size) {
        copy = malloc (size);
        if (!copy)
            return DROVER_ENOMEM;
        memcpy (copy, data, size);
    }
    return drover_job_take_result (job, copy, size);
}

int
drover_job_set_error (drover_job_t *job, const char *message, bool permanent)
{
    if (!job)
        return DROVER_EINVAL;
    char *copy = strdup (message && *message? message: "handler failed");
    if (!copy)
        return DROVER_ENOMEM;
    free (job->error);
    job->error = copy;
    job->permanent = permanent;
    return 0;
}

int
drover_job_progress (drover_job_t *job, unsigned percent, const char *message)
{
    if (!job || !job->worker || percent > 100)
        return DROVER_EINVAL;
    drover_worker_t *self = job->worker;
    //  Cut long text at a character boundary: protobuf strings are UTF-8
    size_t length = message? strlen (message): 0;
    if (length > PROGRESS_TEXT) {
        length = PROGRESS_TEXT;
        while (length && ((unsigned char) message [length] & 0xC0) == 0x80)
            length--;
    }
    pthread_mutex_lock (&self->lock);
    if (job->finished) {
        pthread_mutex_unlock (&self->lock);
        return DROVER_EINVAL;       //  only while the handler runs
    }
    bool was_empty = !self->progress_head;
    if (!job->progress_pending) {
        job->progress_pending = true;
        job->pnext = self->progress_head;
        self->progress_head = job;
    }
    job->progress = percent;
    if (length)
        memcpy (job->progress_message, message, length);
    job->progress_message [length] = 0;
    pthread_mutex_unlock (&self->lock);
    //  One wake-up per burst, as for results
    if (was_empty)
        drv_signal_post (&self->wake);
    return 0;
}

bool
drover_job_cancelled (drover_job_t *job)
{
    return job? atomic_load_explicit (&job->cancelled, memory_order_relaxed): false;
}

//  Handler threads --------------------------------------------------------

static void
s_job_finish (drover_worker_t *self, drover_job_t *job)
{
    pthread_mutex_lock (&self->lock);
    job->finished = true;
    bool was_empty = !self->done_head;
    job->qnext = NULL;
    if (self->done_tail)
        self->done_tail->qnext = job;
    else
        self->done_head = job;
    self->done_tail = job;
    pthread_mutex_unlock (&self->lock);
    //  One wake-up per burst: the I/O thread takes the whole queue
    if (was_empty)
        drv_signal_post (&self->wake);
}

static void
s_job_run (drover_job_t *job)
{
    if (atomic_load (&job->cancelled)) {
        //  Cancelled or timed out before it started: do not bother
        job->failed = true;
        drover_job_set_error (job, "cancelled before it ran", false);
        return;
    }
    int rc = job->handler->fn (job, job->handler->arg);
    if (rc != 0) {
        job->failed = true;
        if (!job->error)
            drover_job_set_error (job, "handler failed", false);
    }
}

static void *
s_handler_thread (void *arg)
{
    drover_worker_t *self = (drover_worker_t *) arg;
    pthread_mutex_lock (&self->lock);
    while (true) {
        while (!self->ready_head && !self->shutdown)
            pthread_cond_wait (&self->ready_cond, &self->lock);
        if (!self->ready_head)
            break;          //  shutdown and nothing left
        drover_job_t *job = self->ready_head;
        self->ready_head = job->qnext;
        if (!self->ready_head)
            self->ready_tail = NULL;
        pthread_mutex_unlock (&self->lock);
        s_job_run (job);
        s_job_finish (self, job);
        pthread_mutex_lock (&self->lock);
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

static int
s_threads_start (drover_worker_t *self)
{
    self->threads = calloc ((size_t) self->concurrency, sizeof (pthread_t));
    if (!self->threads)
        return -1;
    //  Handler threads must not take the signals the application handles
    sigset_t all, old;
    sigfillset (&all);
    pthread_sigmask (SIG_SETMASK, &all, &old);
    for (int i = 0; i < self->concurrency; i++) {
        if (pthread_create (&self->threads [i], NULL, s_handler_thread, self))
            break;
        self->thread_count++;
    }
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    return self->thread_count? 0: -1;
}

static void
s_threads_stop (drover_worker_t *self)
{
    pthread_mutex_lock (&self->lock);
    self->shutdown = true;
    pthread_cond_broadcast (&self->ready_cond);
    pthread_mutex_unlock (&self->lock);
    for (int i = 0; i < self->thread_count; i++)
        pthread_join (self->threads [i], NULL);
    free (self->threads);
    self->threads = NULL;
    self->thread_count = 0;
}

//  Jobs (I/O thread) ---------------------------------------------------------

static drover_job_t *
s_job_get (drover_worker_t *self)
{
    drover_job_t *job = self->pool;
    if (job)
        self->pool = job->qnext;
    else {
        job = calloc (1, sizeof *job);
        if (!job)
            return NULL;
        zmq_msg_init (&job->payload);
    }
    job->qnext = job->next = job->prev = NULL;
    job->result = NULL;
    job->result_size = 0;
    job->error = NULL;
    job->permanent = job->failed = false;
    job->deadline = 0;
    atomic_store (&job->cancelled, false);
    job->worker = self;
    job->finished = false;
    job->progress_pending = false;
    job->pnext = NULL;
    return job;
}

//  Back to the pool once reported.
static void
s_job_put (drover_worker_t *self, drover_job_t *job)
{
    //  Progress not sent (it normally leaves before the result) must not
    //  outlive the job. Only this thread changes the flag once the handler
    //  is done with the job.
    if (job->progress_pending) {
        pthread_mutex_lock (&self->lock);
        drover_job_t **link = &self->progress_head;
        while (*link && *link != job)
            link = &(*link)->pnext;
        if (*link)
            *link = job->pnext;
        job->pnext = NULL;
        job->progress_pending = false;
        pthread_mutex_unlock (&self->lock);
    }
    if (job->prev)
        job->prev->next = job->next;
    else
        self->held = job->next;
    if (job->next)
        job->next->prev = job->prev;
    self->held_count--;
    zmq_msg_close (&job->payload);
    zmq_msg_init (&job->payload);
    free (job->result);
    free (job->error);
    job->result = NULL;
    job->error = NULL;
    job->qnext = self->pool;
    self->pool = job;
}

static const handler_t *
s_handler_find (drover_worker_t *self, const char *queue)
{
    for (size_t i = 0; i < self->handler_count; i++)
        if (strcmp (self->handlers [i].queue, queue) == 0)
            return &self->handlers [i];
    return NULL;
}

static void
s_report_append (drover_worker_t *self, drover_job_t *job)
{
    job->qnext = NULL;
    if (self->report_tail)
        self->report_tail->qnext = job;
    else
        self->report_head = job;
    self->report_tail = job;
}

static void
s_on_dispatch (drover_worker_t *self, drv_msg_t *msg, uint64_t now)
{
    drover_job_t *first = NULL, *last = NULL;
    for (size_t i = 0; i < msg->count; i++) {
        drv_job_t *in = &msg->jobs [i];
        drover_job_t *job = s_job_get (self);
        if (!job) {
            //  Without memory we cannot even report it; the broker's
            //  timeout will requeue it
            drv_log (DRV_LOG_ERROR, s_component, "out of memory: dropped a job");
            continue;
        }
        memcpy (job->id, in->id, DRV_ID_SIZE);
        drover_id_format (job->id, job->id_text);
        snprintf (job->queue, sizeof job->queue, "%s", in->queue);
        job->attempt = in->attempt;
        job->timeout_ms = in->timeout_ms;
        snprintf (job->submitter, sizeof job->submitter, "%s", in->submitter);
        zmq_msg_move (&job->payload, &self->frames.msg [i + 1]);
        job->next = self->held;
        if (self->held)
            self->held->prev = job;
        self->held = job;
        self->held_count++;
        self->unfinished++;
        if (job->timeout_ms) {
            job->deadline = now + job->timeout_ms;
            if (!self->next_deadline || job->deadline < self->next_deadline)
                self->next_deadline = job->deadline;
        }
        job->handler = s_handler_find (self, job->queue);
        if (!job->handler) {
            job->failed = true;
            job->permanent = true;
            char text [200];
            snprintf (text, sizeof text, "this worker has no handler for queue %s", job->queue);
            job->error = strdup (text);
            self->unfinished--;
            s_report_append (self, job);
            continue;
        }
        if (last)
            last->qnext = job;
        else
            first = job;
        last = job;
    }
    if (first) {
        pthread_mutex_lock (&self->lock);
        if (self->ready_tail)
            self->ready_tail->qnext = first;
        else
            self->ready_head = first;
        self->ready_tail = last;
        pthread_cond_broadcast (&self->ready_cond);
        pthread_mutex_unlock (&self->lock);
    }
}

static void
s_on_cancel (drover_worker_t *self, drv_msg_t *msg)
{
    for (size_t i = 0; i < msg->count; i++)
        for (drover_job_t *job = self->held; job; job = job->next)
            if (memcmp (job->id, msg->ids [i], DRV_ID_SIZE) == 0)
                atomic_store (&job->cancelled, true);
}

//  Marks jobs past their deadline as cancelled; finds the next deadline.
static void
s_check_deadlines (drover_worker_t *self, uint64_t now)
{
    if (!self->next_deadline || now < self->next_deadline)
        return;
    self->next_deadline = 0;
    for (drover_job_t *job = self->held; job; job = job->next) {
        if (!job->deadline || atomic_load (&job->cancelled))
            continue;
        if (job->deadline <= now)
            atomic_store (&job->cancelled, true);
        else
        if (!self->next_deadline || job->deadline < self->next_deadline)
            self->next_deadline = job->deadline;
    }
}

//  Sending ---------------------------------------------------------------

static int
s_send (drover_worker_t *self, drv_msg_t *msg, zmq_msg_t *payloads, size_t count)
{
    return drv_link_send (&self->link, self->tx, msg, payloads, count, s_component);
}

static void
s_send_simple (drover_worker_t *self, drv_cmd_t cmd, uint64_t corr)
{
    drv_link_send_simple (&self->link, self->tx, cmd, corr, s_component);
}

static void
s_send_hello (drover_worker_t *self)
{
    drv_msg_t msg;
    drv_codec_reset (self->tx);
    self->hello_corr = ++self->corr;
    drv_msg_init (&msg, DRV_CMD_HELLO, self->hello_corr);
    msg.hello.kind = DRV_PEER_WORKER;
    memcpy (msg.hello.session, self->session, DRV_ID_SIZE);
    msg.hello.name = self->config.name;
    const char **queues = drv_codec_alloc (self->tx, self->handler_count * sizeof (char *));
    if (!queues)
        return;
    for (size_t i = 0; i < self->handler_count; i++)
        queues [i] = self->handlers [i].queue;
    msg.hello.queues = queues;
    msg.hello.queue_count = self->handler_count;
    //  Jobs still held (running, or finished but unreported) keep their
    //  credit until reported; a draining worker asks for nothing
    size_t credit = self->capacity > self->held_count? self->capacity - self->held_count: 0;
    msg.hello.credit = self->draining? 0: (uint32_t) credit;
    msg.hello.version_min = DRV_PROTOCOL_VERSION;
    msg.hello.version_max = DRV_PROTOCOL_VERSION;
    self->link.welcomed = false;
    self->bye_sent = false;
    self->link.blocked = false;
    drv_link_send (&self->link, self->tx, &msg, NULL, 0, s_component);
}

static void
s_free_result (void *data, void *hint)
{
    free (data);
}

//  Sends the latest progress of every job that reported some since the
//  last turn: one ProgressReport (max_batch entries each, if more).
static void
s_flush_progress (drover_worker_t *self)
{
    if (self->link.blocked)
        return;
    pthread_mutex_lock (&self->lock);
    size_t n = 0;
    for (drover_job_t *job = self->progress_head; job; job = job->pnext)
        n++;
    pthread_mutex_unlock (&self->lock);
    if (!n)
        return;
    int events = 0;
    size_t events_size = sizeof events;
    zmq_getsockopt (self->link.conn.socket, ZMQ_EVENTS, &events, &events_size);
    if (!(events & ZMQ_POLLOUT)) {
        //  Leave it pending (and coalescing) until the socket can take it
        self->link.blocked = true;
        return;
    }
    drv_codec_reset (self->tx);
    pthread_mutex_lock (&self->lock);
    //  Handlers may have added jobs meanwhile: count again under the lock
    n = 0;
    for (drover_job_t *job = self->progress_head; job; job = job->pnext)
        n++;
    if (!n) {
        pthread_mutex_unlock (&self->lock);
        return;
    }
    drv_progress_t *entries = drv_codec_alloc (self->tx, n * sizeof (drv_progress_t));
    char *texts = drv_codec_alloc (self->tx, n * (PROGRESS_TEXT + 1));
    if (!entries || !texts) {
        pthread_mutex_unlock (&self->lock);
        return;
    }
    //  Oldest report first (the list is newest first)
    size_t i = n;
    while (self->progress_head) {
        drover_job_t *job = self->progress_head;
        self->progress_head = job->pnext;
        job->pnext = NULL;
        job->progress_pending = false;
        i--;
        memcpy (entries [i].id, job->id, DRV_ID_SIZE);
        entries [i].percent = job->progress;
        char *text = texts + i * (PROGRESS_TEXT + 1);
        memcpy (text, job->progress_message, PROGRESS_TEXT + 1);
        entries [i].message = text;
    }
    pthread_mutex_unlock (&self->lock);
    for (size_t start = 0; start < n; start += self->max_batch) {
        drv_msg_t msg;
        drv_msg_init (&msg, DRV_CMD_PROGRESS, ++self->corr);
        msg.progress = entries + start;
        msg.count = n - start < self->max_batch? n - start: self->max_batch;
        if (s_send (self, &msg, NULL, 0)) {
            //  Progress is ephemeral: the next report replaces what is lost
            self->link.blocked = true;
            return;
        }
    }
}

//  Reports every finished job, max_batch per message.
static void
s_flush_reports (drover_worker_t *self)
{
    while (self->report_head && !self->link.blocked) {
        //  Building frames over result buffers is only worth it when the
        //  message can leave now; else wait for POLLOUT
        int events = 0;
        size_t events_size = sizeof events;
        zmq_getsockopt (self->link.conn.socket, ZMQ_EVENTS, &events, &events_size);
        if (!(events & ZMQ_POLLOUT)) {
            self->link.blocked = true;
            return;
        }
        size_t n = 0;
        for (drover_job_t *job = self->report_head; job && n < self->max_batch; job = job->qnext)
            n++;
        if (drv_grow ((void **) &self->payloads, &self->payload_cap, n, sizeof (zmq_msg_t)))
            return;
        drv_codec_reset (self->tx);
        drv_msg_t msg;
        drv_msg_init (&msg, DRV_CMD_REPORT, ++self->corr);
        msg.results = (drv_result_t *) drv_codec_alloc (self->tx, n * sizeof (drv_result_t));
        if (!msg.results)
            return;
        msg.count = n;
        drover_job_t *job = self->report_head;
        for (size_t i = 0; i < n; i++, job = job->qnext) {
            drv_result_t *out = &msg.results [i];
            memset (out, 0, sizeof *out);
            memcpy (out->id, job->id, DRV_ID_SIZE);
            out->attempts = job->attempt;
            if (job->failed) {
                out->state = DRV_JOB_FAILED;
                out->error = job->error? job->error: "handler failed";
                out->no_retry = job->permanent;
                zmq_msg_init (&self->payloads [i]);
            }
            else {
                out->state = DRV_JOB_DONE;
                out->error = "";
                //  The result buffer goes to ZeroMQ as is, freed when sent
                if (job->result_size)
                    zmq_msg_init_data (&self->payloads [i], job->result, job->result_size,
                                       s_free_result, NULL);
                else
                    zmq_msg_init (&self->payloads [i]);
            }
        }
        if (s_send (self, &msg, self->payloads, n)) {
            //  Closing the frames frees the result buffers: the checks
            //  above make this rare, and the broker still gets a failure
            job = self->report_head;
            for (size_t i = 0; i < n; i++, job = job->qnext) {
                zmq_msg_close (&self->payloads [i]);
                if (!job->failed) {
                    job->result = NULL;
                    job->result_size = 0;
                    job->failed = true;
                    job->error = strdup ("result lost: could not send it");
                }
            }
            self->link.blocked = true;
            return;
        }
        for (size_t i = 0; i < n; i++) {
            job = self->report_head;
            self->report_head = job->qnext;
            if (!job->failed)
                job->result = NULL;     //  ZeroMQ owns it now
            s_job_put (self, job);
        }
        if (!self->report_head)
            self->report_tail = NULL;
    }
}

//  Incoming ---------------------------------------------------------------

static void
s_on_welcome (drover_worker_t *self, drv_msg_t *msg)
{
    if (msg->corr != self->hello_corr || self->link.welcomed)
        return;
    if (msg->welcome.version != DRV_PROTOCOL_VERSION) {
        drv_log (DRV_LOG_ERROR, s_component, "broker chose protocol version %u", msg->welcome.version);
        if (!self->link.ever_welcomed)
            self->connect_result = DROVER_EPROTO;
        return;
    }
    bool first = drv_link_welcome (&self->link, msg);
    self->max_batch = msg->welcome.max_batch? msg->welcome.max_batch: DRV_DEFAULT_MAX_BATCH;
    if (first) {
        self->connect_result = 0;
        drv_log (DRV_LOG_INFO, s_component, "serving %zu queue(s) from %s with %d thread(s), credit %zu",
                 self->handler_count, self->config.endpoint, self->concurrency, self->capacity);
    }
    else
        drv_log (DRV_LOG_INFO, s_component, "registered again with the broker");
}

static void
s_on_error (drover_worker_t *self, drv_msg_t *msg)
{
    if (msg->error.code == DRV_CODE_REHELLO) {
        //  After a drained Bye the broker forgets us on purpose; only held
        //  jobs (a broker restart mid-drain) are worth registering again for
        if (self->draining && self->bye_received && self->held_count == 0)
            return;
        if (self->link.welcomed) {
            drv_log (DRV_LOG_INFO, s_component, "broker asks us to hello again");
            s_send_hello (self);
        }
        return;
    }
    if (msg->corr && msg->corr == self->hello_corr && !self->link.welcomed) {
        drv_log (DRV_LOG_ERROR, s_component, "broker refused hello: %s %s",
                 drv_code_name (msg->error.code), msg->error.message);
        if (!self->link.ever_welcomed)
            self->connect_result = drv_code_to_err (msg->error.code);
        else
        if (msg->error.code == DRV_CODE_DENIED)
            self->revoked = DROVER_EDENIED;     //  our key no longer admitted
        return;
    }
    if (msg->error.code == DRV_CODE_DENIED && !msg->corr) {
        //  The broker closed our session: our key was removed from its
        //  allow-list. Serving is over; the caller hears why
        drv_log (DRV_LOG_ERROR, s_component, "broker revoked our key: %s", msg->error.message);
        self->revoked = DROVER_EDENIED;
        self->link.welcomed = false;
        return;
    }
    drv_log (DRV_LOG_WARN, s_component, "broker error %s: %s",
             drv_code_name (msg->error.code), msg->error.message);
}

static void
s_handle (drover_worker_t *self, uint64_t now)
{
    drv_frames_t *frames = &self->frames;
    drv_msg_t msg;
    if (drv_decode_message (self->rx, frames, &msg, s_component))
        return;
    switch (msg.cmd) {
        case DRV_CMD_WELCOME:   s_on_welcome (self, &msg); break;
        case DRV_CMD_ERROR:     s_on_error (self, &msg); break;
        case DRV_CMD_DISPATCH:  s_on_dispatch (self, &msg, now); break;
        case DRV_CMD_CANCEL:    s_on_cancel (self, &msg); break;
        case DRV_CMD_HEARTBEAT: break;
        case DRV_CMD_BYE:
            if (msg.corr == self->bye_corr)
                self->bye_received = true;
            break;
        default:
            drv_log (DRV_LOG_WARN, s_component, "unexpected %s from broker", drv_cmd_name (msg.cmd));
            break;
    }
}

//  Takes what handler threads finished.
static void
s_take_done (drover_worker_t *self)
{
    drv_signal_drain (&self->wake);
    pthread_mutex_lock (&self->lock);
    drover_job_t *done = self->done_head;
    self->done_head = self->done_tail = NULL;
    pthread_mutex_unlock (&self->lock);
    while (done) {
        drover_job_t *next = done->qnext;
        self->unfinished--;
        s_report_append (self, done);
        done = next;
    }
}

static void
s_reconnect (drover_worker_t *self, const char *why)
{
    if (drv_link_reopen (&self->link, self->ctx, &self->config, &self->keys, s_component, why) == 0)
        s_send_hello (self);
}

//  Milliseconds until the next timer: the link's, a job's deadline, or the
//  end of the wait for the Bye reply.
static long
s_next_timeout (drover_worker_t *self, uint64_t now)
{
    uint64_t also = self->next_deadline;
    if (self->bye_sent && !self->bye_received && (!also || self->bye_deadline < also))
        also = self->bye_deadline;
    return drv_link_timeout (&self->link, now, also);
}

//  Connects and serves; returns as drover_worker_run does.
static int
s_serve (drover_worker_t *self)
{
    char why [256] = "";
    self->connect_result = -1;
    self->max_batch = DRV_DEFAULT_MAX_BATCH;
    int err = drv_link_open (&self->link, self->ctx, &self->config, &self->keys, why, sizeof why);
    if (err) {
        drv_log (DRV_LOG_ERROR, s_component, "%s", why);
        return err;
    }
    s_send_hello (self);

    while (true) {
        uint64_t now = drv_now_ms ();
        zmq_pollitem_t items [3] = {
            {self->link.conn.socket, 0, ZMQ_POLLIN | (self->link.blocked? ZMQ_POLLOUT: 0), 0},
            {NULL, self->wake.rfd, ZMQ_POLLIN, 0},
            {self->link.conn.monitor, 0, ZMQ_POLLIN, 0}
        };
        int rc = zmq_poll (items, self->link.conn.monitor? 3: 2, s_next_timeout (self, now));
        if (rc == -1 && errno != EINTR)
            return DROVER_EINTERNAL;
        now = drv_now_ms ();
        bool hello_again = false;
        err = drv_link_check (&self->link, why, sizeof why, &hello_again);
        if (err) {
            drv_log (DRV_LOG_ERROR, s_component, "cannot connect to %s: %s", self->config.endpoint, why);
            return err;
        }
        if (hello_again)
            s_send_hello (self);    //  the broker died or restarted before welcoming us
        if (items [0].revents & ZMQ_POLLOUT)
            self->link.blocked = false;
        s_take_done (self);
        while (self->link.conn.socket && drv_frames_recv (self->link.conn.socket, &self->frames,
                                                     ZMQ_DONTWAIT, DRV_MAX_FRAMES) != -1) {
            self->link.last_recv = now;
            s_handle (self, now);
        }
        if (self->revoked)
            return self->revoked;
        if (!self->link.ever_welcomed) {
            if (self->connect_result > 0)
                return self->connect_result;
            if (now >= self->link.connect_deadline) {
                drv_log (DRV_LOG_ERROR, s_component, "no answer from %s within %d ms",
                         self->config.endpoint, self->config.timeout_ms);
                return DROVER_EUNREACHABLE;
            }
            if (self->stop_requested)
                return 0;
            continue;
        }
        if (!self->thread_count && s_threads_start (self)) {
            drv_log (DRV_LOG_ERROR, s_component, "cannot start handler threads");
            return DROVER_ENOMEM;
        }
        s_check_deadlines (self, now);
        if (self->link.welcomed) {
            s_flush_progress (self);
            s_flush_reports (self);
        }

        if (self->stop_requested && !self->draining) {
            drv_log (DRV_LOG_INFO, s_component, "draining: finishing %zu held job(s)", self->held_count);
            self->draining = true;
        }
        if (self->draining) {
            if (self->link.welcomed && !self->bye_sent) {
                self->bye_sent = true;
                self->bye_received = false;
                self->bye_corr = ++self->corr;
                self->bye_deadline = now + 3 * (uint64_t) self->link.heartbeat_ms;
                s_send_simple (self, DRV_CMD_BYE, self->bye_corr);
            }
            bool quiet = !self->link.welcomed || self->bye_received || now >= self->bye_deadline;
            //  Reports we cannot send (no session) are dropped: the broker
            //  requeues those jobs when it declares us dead
            bool settled = self->link.welcomed? self->held_count == 0: self->unfinished == 0;
            if (quiet && settled)
                return 0;
        }
        if (drv_link_beat_due (&self->link, now))
            s_send_simple (self, DRV_CMD_HEARTBEAT, 0);
        const char *silent = drv_link_silent (&self->link, now);
        if (silent)
            s_reconnect (self, silent);
    }
}

int
drover_worker_run (drover_worker_t *worker)
{
    if (!worker || !worker->handler_count || worker->running)
        return DROVER_EINVAL;
    drover_worker_t *self = worker;
    char why [256];
    int rc = drv_keys_load (&self->keys, &self->config, why, sizeof why);
    if (rc) {
        drv_log (DRV_LOG_ERROR, s_component, "%s", why);
        return rc;
    }
    int prefetch = self->prefetch >= 0? self->prefetch: 2 * self->concurrency;
    self->capacity = (size_t) self->concurrency + (size_t) prefetch;
    self->ctx = zmq_ctx_new ();
    self->rx = drv_codec_new ();
    self->tx = drv_codec_new ();
    drv_frames_init (&self->frames);
    self->running = true;
    self->shutdown = false;
    self->link.welcomed = self->link.ever_welcomed = self->draining = false;
    self->bye_sent = self->bye_received = false;
    self->revoked = 0;
    self->next_deadline = 0;
    if (!self->ctx || !self->rx || !self->tx)
        rc = DROVER_ENOMEM;
    else
        rc = s_serve (self);

    //  Handler threads finish what they hold; their results go nowhere now
    s_threads_stop (self);
    s_take_done (self);
    while (self->report_head) {
        drover_job_t *job = self->report_head;
        self->report_head = job->qnext;
        s_job_put (self, job);
    }
    self->report_tail = NULL;
    while (self->held) {
        //  Only after a failed start or an internal error
        s_job_put (self, self->held);
    }
    while (self->pool) {
        drover_job_t *job = self->pool;
        self->pool = job->qnext;
        zmq_msg_close (&job->payload);
        free (job);
    }
    self->ready_head = self->ready_tail = NULL;
    self->progress_head = NULL;     //  every job finished, so it is empty
    drv_conn_close (&self->link.conn, self->link.welcomed? DRV_LINGER_MS: 0);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    self->ctx = NULL;
    drv_frames_destroy (&self->frames);
    drv_codec_destroy (&self->rx);
    drv_codec_destroy (&self->tx);
    free (self->payloads);
    self->payloads = NULL;
    self->payload_cap = 0;
    self->held_count = self->unfinished = 0;
    self->running = false;
    self->stop_requested = 0;
    return rc;
}
