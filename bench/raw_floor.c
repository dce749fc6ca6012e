/*
 * raw_floor: the raw-libzmq "floor" that Drover's own benchmark is compared
 * against.
 *
 * It is the smallest load-balancing broker that still has the shape of
 * Drover (producer -> broker -> credit-based workers -> broker -> producer,
 * over TCP, optionally with CURVE), with every piece of real bookkeeping
 * (persistence, acks, leases, retries, priorities) left out. Whatever this
 * program reaches on a machine is what the transport alone costs there; the
 * gap between it and Drover is what Drover's own work costs.
 *
 * Wire format (private to this program, all parties in one process, so the
 * header is in host byte order):
 *
 *   producer -> broker     [hdr{JOB,n}] [payload] x n
 *   broker   -> worker     [hdr{JOB,n} + producer id] [payload] x n
 *   worker   -> broker     [hdr{READY,credit}]                     (once)
 *                          [hdr{RESULT,n} + producer id] [result] x n
 *   broker   -> producer   [hdr{RESULT,n} + producer id] [result] x n
 *
 * The producer's routing id rides inside the header frame rather than as a
 * frame of its own. libzmq's per-message costs (pipe entry, ZMTP framing
 * and, with CURVE, one encryption and one decryption per hop) are paid per
 * frame, so a separate id frame would add two frames to every job's round
 * trip for nothing.
 *
 * With CURVE, libzmq seals and opens every frame separately (one secretbox
 * each way per frame per hop), so a batch of B payload frames still costs
 * B boxes per hop: batching frames amortizes wakeups and system calls but
 * not encryption. --pack (not part of the floor) carries a batch's payloads
 * in one frame to show how much of the cost that is.
 *
 * Credit is counted in messages: a worker's --window is how many messages
 * (each carrying --batch jobs) it may hold ahead, and each result message
 * returns one credit. With --batch 1 this is exactly "jobs held ahead". The
 * broker never splits or merges batches, so a message is the unit it routes.
 *
 * Build standalone:
 *   gcc -O2 -Wall -Wextra -o raw_floor bench/raw_floor.c -lzmq -lpthread
 */
#define _GNU_SOURCE
#include <zmq.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { HDR_JOB = 'J', HDR_READY = 'R', HDR_RESULT = 'D' };

/* Eight bytes keeps the header well inside libzmq's "very small message"
 * size, so building one never touches the heap. */
typedef struct {
    uint8_t type;
    uint8_t pad[3];
    uint32_t count;
} hdr_t;

typedef struct {
    uint64_t jobs;
    unsigned workers;
    unsigned window;
    unsigned batch;
    bool curve;
    size_t size;
    bool json;
    uint64_t inflight;     /* producer's bound on outstanding jobs */
    int io_threads;
    bool shared_ctx;
    bool pack;             /* a batch's payloads in one frame, see usage */
    unsigned watchdog_s;
} opts_t;

static opts_t g_opt = {
    .jobs = 1000000, .workers = 2, .window = 100, .batch = 1, .curve = true,
    .size = 64, .json = false, .inflight = 10000, .io_threads = 1,
    .watchdog_s = 120,
};

/* One libzmq context per role, i.e. one I/O thread each, the way separate
 * producer, broker and worker processes would run. A single shared context
 * would funnel every connection's TCP and CURVE work through one I/O
 * thread and measure that thread rather than the broker. */
static void *g_broker_ctx, *g_producer_ctx, **g_worker_ctx;
static char g_front_ep[256], g_back_ep[256];
static char g_server_public[41], g_server_secret[41];

/* Cross-thread signals for main's watchdog and start-up gate. Only the
 * producer writes g_done_jobs, once per result message, so a relaxed store
 * is enough and costs nothing on the hot path. */
static atomic_uint_fast64_t g_done_jobs;
static atomic_uint g_workers_ready;
static atomic_bool g_producer_finished;
static double g_seconds;

/* Errors on any thread are programming or environment failures, not
 * something to recover from in a benchmark; exit without unwinding because
 * the other threads may be blocked inside libzmq. */
static void die(const char *what)
{
    fprintf(stderr, "raw_floor: %s: %s\n", what, zmq_strerror(errno));
    fflush(stderr);
    _exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void set_int(void *s, int opt, int v, const char *what)
{
    if (zmq_setsockopt(s, opt, &v, sizeof v) != 0)
        die(what);
}

/* Every socket gets unlimited HWMs. A ROUTER silently drops what it cannot
 * queue, which would turn a slow reader into lost jobs and a hung
 * benchmark; memory is bounded instead by the producer's in-flight window
 * and the workers' credit. LINGER 0 so shutdown never waits on peers. */
static void *make_socket(void *ctx, int type)
{
    void *s = zmq_socket(ctx, type);
    if (!s)
        die("zmq_socket");
    set_int(s, ZMQ_SNDHWM, 0, "ZMQ_SNDHWM");
    set_int(s, ZMQ_RCVHWM, 0, "ZMQ_RCVHWM");
    set_int(s, ZMQ_LINGER, 0, "ZMQ_LINGER");
    return s;
}

/* Clients each carry their own key pair, as Drover's producers and workers
 * would; the floor must pay the same per-connection crypto. */
static void make_client_curve(void *s)
{
    if (!g_opt.curve)
        return;
    char pub[41], sec[41];
    if (zmq_curve_keypair(pub, sec) != 0)
        die("zmq_curve_keypair");
    if (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, g_server_public, 40) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40) != 0)
        die("CURVE client keys");
}

/* No ZAP handler is installed: libzmq then lets any client with the right
 * server key complete the CURVE handshake. Authentication policy is not
 * part of the per-message cost being measured, and every message is still
 * encrypted and authenticated exactly as with a ZAP handler present. */
static void make_server_curve(void *s)
{
    if (!g_opt.curve)
        return;
    set_int(s, ZMQ_CURVE_SERVER, 1, "ZMQ_CURVE_SERVER");
    if (zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, g_server_secret, 40) != 0)
        die("ZMQ_CURVE_SECRETKEY");
}

static void hdr_init(zmq_msg_t *m, uint8_t type, uint32_t count)
{
    hdr_t h = { .type = type, .count = count };
    if (zmq_msg_init_size(m, sizeof h) != 0)
        die("zmq_msg_init_size");
    memcpy(zmq_msg_data(m), &h, sizeof h);
}

/* A header frame is an hdr_t, possibly followed by a producer id. */
static bool hdr_read(zmq_msg_t *m, hdr_t *h)
{
    if (zmq_msg_size(m) < sizeof *h)
        return false;
    memcpy(h, zmq_msg_data(m), sizeof *h);
    return true;
}

/* Returns 0 on success, -1 if the context is shutting down (the normal way
 * every thread but the producer learns the run is over). */
static int msend(zmq_msg_t *m, void *s, int flags)
{
    if (zmq_msg_send(m, s, flags) >= 0)
        return 0;
    if (errno == ETERM)
        return -1;
    die("zmq_msg_send");
    return -1;
}

/* ------------------------------------------------------------------ */
/* Broker                                                              */
/* ------------------------------------------------------------------ */

/* The job FIFO stores received frames in place: zmq_msg_recv writes
 * straight into a ring slot and zmq_msg_send later ships that same slot,
 * so payloads are never copied or re-allocated inside the broker. A second
 * ring records how many frames each queued message has. */
typedef struct {
    zmq_msg_t *f;
    size_t fcap, fhead, flen;     /* frames ring, fcap a power of two */
    uint32_t *n;
    size_t ncap, nhead, nlen;     /* frames-per-message ring */
} fifo_t;

static size_t pow2_at_least(size_t v)
{
    size_t p = 64;
    while (p < v)
        p <<= 1;
    return p;
}

static void fifo_init(fifo_t *q, size_t frames, size_t msgs)
{
    memset(q, 0, sizeof *q);
    q->fcap = pow2_at_least(frames);
    q->ncap = pow2_at_least(msgs);
    q->f = malloc(q->fcap * sizeof *q->f);
    q->n = malloc(q->ncap * sizeof *q->n);
    if (!q->f || !q->n) {
        errno = ENOMEM;
        die("fifo_init");
    }
}

/* Growth should not happen in a normal run (the ring is sized from the
 * producer window up front) but keeps the broker correct if it does. The
 * frames are moved with zmq_msg_move rather than memcpy because zmq_msg_t
 * is opaque. */
static void fifo_grow_frames(fifo_t *q)
{
    size_t ncap = q->fcap * 2;
    zmq_msg_t *nf = malloc(ncap * sizeof *nf);
    if (!nf) {
        errno = ENOMEM;
        die("fifo_grow");
    }
    for (size_t i = 0; i < q->flen; i++) {
        zmq_msg_t *src = &q->f[(q->fhead + i) & (q->fcap - 1)];
        zmq_msg_init(&nf[i]);
        zmq_msg_move(&nf[i], src);
        zmq_msg_close(src);
    }
    free(q->f);
    q->f = nf;
    q->fcap = ncap;
    q->fhead = 0;
}

static void fifo_grow_counts(fifo_t *q)
{
    size_t ncap = q->ncap * 2;
    uint32_t *nn = malloc(ncap * sizeof *nn);
    if (!nn) {
        errno = ENOMEM;
        die("fifo_grow");
    }
    for (size_t i = 0; i < q->nlen; i++)
        nn[i] = q->n[(q->nhead + i) & (q->ncap - 1)];
    free(q->n);
    q->n = nn;
    q->ncap = ncap;
    q->nhead = 0;
}

static zmq_msg_t *fifo_tail_slot(fifo_t *q)
{
    if (q->flen == q->fcap)
        fifo_grow_frames(q);
    zmq_msg_t *m = &q->f[(q->fhead + q->flen) & (q->fcap - 1)];
    zmq_msg_init(m);
    return m;
}

/* Reads one whole message from the frontend into the FIFO, folding the
 * producer's routing id into the header frame (a copy of a dozen bytes
 * into a heap-free small message), so the worker can carry it back.
 * 1 = queued, 0 = nothing waiting, -1 = context terminated. */
static int fifo_recv(fifo_t *q, void *s)
{
    zmq_msg_t pid, hm;
    zmq_msg_init(&pid);
    zmq_msg_init(&hm);
    int rc = -1;
    if (zmq_msg_recv(&pid, s, ZMQ_DONTWAIT) < 0) {
        if (errno == EAGAIN)
            rc = 0;
        else if (errno != ETERM)
            die("zmq_msg_recv frontend");
        goto out;
    }
    /* The rest of a multipart message arrives atomically with its first
     * frame, so only the first read needs to be non-blocking. */
    if (zmq_msg_recv(&hm, s, 0) < 0) {
        if (errno != ETERM)
            die("zmq_msg_recv frontend");
        goto out;
    }
    hdr_t h;
    size_t idlen = zmq_msg_size(&pid);
    if (!hdr_read(&hm, &h) || h.type != HDR_JOB || !zmq_msg_more(&hm) ||
        idlen > 255) {
        fprintf(stderr, "raw_floor: broker: malformed job message\n");
        _exit(1);
    }
    zmq_msg_t *m = fifo_tail_slot(q);
    if (zmq_msg_init_size(m, sizeof h + idlen) != 0)
        die("zmq_msg_init_size");
    memcpy(zmq_msg_data(m), &h, sizeof h);
    memcpy((uint8_t *)zmq_msg_data(m) + sizeof h, zmq_msg_data(&pid), idlen);
    q->flen++;
    uint32_t frames = 1;
    do {
        m = fifo_tail_slot(q);
        if (zmq_msg_recv(m, s, 0) < 0) {
            zmq_msg_close(m);
            /* Frames of a half-read message are already in flen, which
             * is all fifo_free needs to release them. */
            if (errno != ETERM)
                die("zmq_msg_recv frontend");
            goto out;
        }
        q->flen++;
        frames++;
    } while (zmq_msg_more(m));

    if (q->nlen == q->ncap)
        fifo_grow_counts(q);
    q->n[(q->nhead + q->nlen++) & (q->ncap - 1)] = frames;
    rc = 1;
out:
    zmq_msg_close(&pid);
    zmq_msg_close(&hm);
    return rc;
}

static void fifo_free(fifo_t *q)
{
    for (size_t i = 0; i < q->flen; i++)
        zmq_msg_close(&q->f[(q->fhead + i) & (q->fcap - 1)]);
    free(q->f);
    free(q->n);
}

typedef struct {
    uint8_t id[256];
    size_t idlen;
    uint64_t credit;
} wrec_t;

typedef struct {
    void *front, *back;
    fifo_t q;
    wrec_t *w;
    unsigned nw;         /* registered workers */
    unsigned rr;         /* round-robin cursor */
    uint64_t credit;     /* sum of all workers' credit */
} broker_t;

/* Linear search is deliberate: W is a handful, and a hash table would be
 * exactly the kind of bookkeeping the floor is meant to leave out. */
static wrec_t *find_worker(broker_t *b, const void *id, size_t len)
{
    for (unsigned i = 0; i < b->nw; i++)
        if (b->w[i].idlen == len && memcmp(b->w[i].id, id, len) == 0)
            return &b->w[i];
    return NULL;
}

/* Hands queued messages to workers with credit, rotating through the
 * workers so load spreads evenly even when all of them have spare credit. */
static int dispatch(broker_t *b)
{
    while (b->q.nlen > 0 && b->credit > 0) {
        wrec_t *w = NULL;
        for (unsigned k = 0; k < b->nw; k++) {
            wrec_t *c = &b->w[(b->rr + k) % b->nw];
            if (c->credit > 0) {
                w = c;
                b->rr = (unsigned)((c - b->w) + 1) % b->nw;
                break;
            }
        }
        w->credit--;
        b->credit--;

        zmq_msg_t id;
        if (zmq_msg_init_size(&id, w->idlen) != 0)
            die("zmq_msg_init_size");
        memcpy(zmq_msg_data(&id), w->id, w->idlen);
        if (msend(&id, b->back, ZMQ_SNDMORE) < 0)
            return -1;

        fifo_t *q = &b->q;
        uint32_t frames = q->n[q->nhead];
        q->nhead = (q->nhead + 1) & (q->ncap - 1);
        q->nlen--;
        for (uint32_t i = 0; i < frames; i++) {
            zmq_msg_t *m = &q->f[q->fhead];
            q->fhead = (q->fhead + 1) & (q->fcap - 1);
            q->flen--;
            int rc = msend(m, b->back, i + 1 < frames ? ZMQ_SNDMORE : 0);
            zmq_msg_close(m);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

/* Handles one message from the worker side: a credit grant, or a batch of
 * results that goes straight back to its producer frame by frame (each
 * received frame is re-sent as is, never copied) and returns one credit.
 * 1 = handled, 0 = nothing waiting, -1 = context terminated. */
static int backend_one(broker_t *b)
{
    zmq_msg_t wid, hm, m;
    zmq_msg_init(&wid);
    if (zmq_msg_recv(&wid, b->back, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&wid);
        if (errno == EAGAIN)
            return 0;
        if (errno == ETERM)
            return -1;
        die("zmq_msg_recv backend");
    }
    zmq_msg_init(&hm);
    zmq_msg_init(&m);
    int rc = -1;
    if (zmq_msg_recv(&hm, b->back, 0) < 0) {
        if (errno == ETERM)
            goto out;
        die("zmq_msg_recv backend");
    }
    hdr_t h;
    if (!hdr_read(&hm, &h)) {
        fprintf(stderr, "raw_floor: broker: malformed worker header\n");
        _exit(1);
    }
    wrec_t *w = find_worker(b, zmq_msg_data(&wid), zmq_msg_size(&wid));

    if (h.type == HDR_READY) {
        if (!w) {
            if (b->nw == g_opt.workers || zmq_msg_size(&wid) > sizeof w->id) {
                fprintf(stderr, "raw_floor: broker: unexpected worker\n");
                _exit(1);
            }
            w = &b->w[b->nw++];
            w->idlen = zmq_msg_size(&wid);
            memcpy(w->id, zmq_msg_data(&wid), w->idlen);
            w->credit = 0;
            atomic_store(&g_workers_ready, b->nw);
        }
        w->credit += h.count;
        b->credit += h.count;
        rc = 1;
        goto out;
    }
    if (h.type != HDR_RESULT || !w) {
        fprintf(stderr, "raw_floor: broker: unexpected worker message\n");
        _exit(1);
    }
    w->credit++;
    b->credit++;
    /* Refill the worker before relaying its results: with a small window
     * the worker sits idle until its next job arrives, so that send is on
     * the critical path and the producer's copy is not. ROUTER keeps its
     * send and receive sides apart, so sending mid-way through reading a
     * multipart message is fine. */
    if (dispatch(b) < 0)
        goto out;

    /* The frontend ROUTER wants the producer id as a frame of its own; the
     * header itself goes on unchanged (the producer ignores the id). */
    size_t idlen = zmq_msg_size(&hm) - sizeof h;
    if (idlen == 0 || !zmq_msg_more(&hm)) {
        fprintf(stderr, "raw_floor: broker: malformed result message\n");
        _exit(1);
    }
    if (zmq_msg_init_size(&m, idlen) != 0)
        die("zmq_msg_init_size");
    memcpy(zmq_msg_data(&m), (uint8_t *)zmq_msg_data(&hm) + sizeof h, idlen);
    if (msend(&m, b->front, ZMQ_SNDMORE) < 0 ||
        msend(&hm, b->front, ZMQ_SNDMORE) < 0)
        goto out;
    for (;;) {
        if (zmq_msg_recv(&m, b->back, 0) < 0) {
            if (errno == ETERM)
                goto out;
            die("zmq_msg_recv backend");
        }
        int more = zmq_msg_more(&m);
        if (msend(&m, b->front, more ? ZMQ_SNDMORE : 0) < 0)
            goto out;
        if (!more)
            break;
    }
    rc = 1;
out:
    zmq_msg_close(&wid);
    zmq_msg_close(&hm);
    zmq_msg_close(&m);
    return rc;
}

static void *broker_main(void *arg)
{
    broker_t *b = arg;
    pthread_setname_np(pthread_self(), "broker");
    /* Size the FIFO for the worst case the producer window allows so the
     * hot path never reallocates. */
    uint64_t msgs = g_opt.inflight / g_opt.batch + 2;
    fifo_init(&b->q, (size_t)(msgs * (g_opt.batch + 2)), (size_t)msgs);
    b->w = calloc(g_opt.workers, sizeof *b->w);
    if (!b->w) {
        errno = ENOMEM;
        die("calloc");
    }

    /* Drain each socket in bursts and only fall back to zmq_poll when both
     * are empty: under load the broker then runs without a poll system
     * call per message. The burst cap keeps either side from starving the
     * other. */
    enum { BURST = 512 };
    zmq_pollitem_t items[2] = {
        { .socket = b->back, .events = ZMQ_POLLIN },
        { .socket = b->front, .events = ZMQ_POLLIN },
    };
    for (;;) {
        bool busy = false;
        int rc = 0;
        for (int k = 0; k < BURST; k++) {
            rc = backend_one(b);
            if (rc <= 0)
                break;
            busy = true;
        }
        if (rc < 0)
            break;
        for (int k = 0; k < BURST; k++) {
            rc = fifo_recv(&b->q, b->front);
            if (rc <= 0)
                break;
            busy = true;
        }
        if (rc < 0 || dispatch(b) < 0)
            break;
        if (!busy && zmq_poll(items, 2, -1) < 0) {
            if (errno == ETERM)
                break;
            if (errno != EINTR)
                die("zmq_poll");
        }
    }
    fifo_free(&b->q);
    free(b->w);
    zmq_close(b->front);
    zmq_close(b->back);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Worker                                                              */
/* ------------------------------------------------------------------ */

static void *worker_main(void *arg)
{
    pthread_setname_np(pthread_self(), "worker");
    void *s = make_socket(arg, ZMQ_DEALER);
    make_client_curve(s);
    if (zmq_connect(s, g_back_ep) != 0)
        die("worker zmq_connect");

    zmq_msg_t hm, m, r;
    zmq_msg_init(&hm);
    zmq_msg_init(&m);

    /* One up-front grant; after that credit flows back implicitly with
     * each result, so steady state carries no separate credit messages. */
    hdr_init(&r, HDR_READY, g_opt.window);
    if (msend(&r, s, 0) < 0)
        goto out;

    for (;;) {
        if (zmq_msg_recv(&hm, s, 0) < 0) {
            if (errno == ETERM)
                break;
            die("worker zmq_msg_recv");
        }
        hdr_t h;
        if (!hdr_read(&hm, &h) || h.type != HDR_JOB || h.count == 0 ||
            !zmq_msg_more(&hm)) {
            fprintf(stderr, "raw_floor: worker: malformed job message\n");
            _exit(1);
        }
        /* The result header is the job header (producer id included)
         * with its type changed; copying a dozen bytes is cheaper than
         * any bookkeeping that would let the broker remember the id.
         * Results are then sent as each job is read rather than collected
         * first: libzmq only makes a multipart message visible to the
         * peer when its last frame is sent, so this is still one message
         * on the wire, without a buffer of pending results. */
        if (zmq_msg_init_size(&r, zmq_msg_size(&hm)) != 0)
            die("zmq_msg_init_size");
        memcpy(zmq_msg_data(&r), zmq_msg_data(&hm), zmq_msg_size(&hm));
        ((hdr_t *)zmq_msg_data(&r))->type = HDR_RESULT;
        if (msend(&r, s, ZMQ_SNDMORE) < 0)
            break;
        uint32_t frames = g_opt.pack ? 1 : h.count;
        for (uint32_t i = 0; i < frames; i++) {
            if (zmq_msg_recv(&m, s, 0) < 0) {
                if (errno == ETERM)
                    goto out;
                die("worker zmq_msg_recv");
            }
            if ((i + 1 < frames) != (zmq_msg_more(&m) != 0)) {
                fprintf(stderr, "raw_floor: worker: frame count mismatch\n");
                _exit(1);
            }
            /* The "work": a fresh result derived from the job, so the
             * result side pays a real allocation like a real worker. */
            size_t rsize = g_opt.pack ? (size_t)h.count * g_opt.size
                                      : g_opt.size;
            if (zmq_msg_init_size(&r, rsize) != 0)
                die("zmq_msg_init_size");
            size_t n = zmq_msg_size(&m) < rsize ? zmq_msg_size(&m) : rsize;
            memcpy(zmq_msg_data(&r), zmq_msg_data(&m), n);
            if (msend(&r, s, i + 1 < frames ? ZMQ_SNDMORE : 0) < 0)
                goto out;
        }
    }
out:
    zmq_msg_close(&hm);
    zmq_msg_close(&m);
    zmq_close(s);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Producer                                                            */
/* ------------------------------------------------------------------ */

static void fill_job(uint8_t *p, uint64_t seq)
{
    if (g_opt.size >= sizeof seq) {
        memcpy(p, &seq, sizeof seq);
        memset(p + sizeof seq, 0xab, g_opt.size - sizeof seq);
    } else {
        memset(p, 0xab, g_opt.size);
    }
}

static void send_batch(void *s, uint64_t first, uint32_t count)
{
    zmq_msg_t m;
    hdr_init(&m, HDR_JOB, count);
    if (zmq_msg_send(&m, s, ZMQ_SNDMORE) < 0)
        die("producer zmq_msg_send");
    if (g_opt.pack) {
        if (zmq_msg_init_size(&m, (size_t)count * g_opt.size) != 0)
            die("zmq_msg_init_size");
        for (uint32_t i = 0; i < count; i++)
            fill_job((uint8_t *)zmq_msg_data(&m) + (size_t)i * g_opt.size,
                     first + i);
        if (zmq_msg_send(&m, s, 0) < 0)
            die("producer zmq_msg_send");
        return;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (zmq_msg_init_size(&m, g_opt.size) != 0)
            die("zmq_msg_init_size");
        fill_job(zmq_msg_data(&m), first + i);
        if (zmq_msg_send(&m, s, i + 1 < count ? ZMQ_SNDMORE : 0) < 0)
            die("producer zmq_msg_send");
    }
}

static void *producer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "producer");
    void *s = make_socket(arg, ZMQ_DEALER);
    make_client_curve(s);
    if (zmq_connect(s, g_front_ep) != 0)
        die("producer zmq_connect");

    const uint64_t N = g_opt.jobs, B = g_opt.batch, W = g_opt.inflight;
    uint64_t sent = 0, done = 0;
    zmq_msg_t m;
    zmq_msg_init(&m);

    double t0 = now_s();
    while (done < N) {
        /* Top the window up after every result message rather than after
         * a drain, so the pipeline never runs dry while results queue. The
         * "sent == done" clause lets a batch larger than the window go out
         * alone instead of deadlocking. */
        while (sent < N && (sent - done + B <= W || sent == done)) {
            uint64_t c = N - sent < B ? N - sent : B;
            send_batch(s, sent, (uint32_t)c);
            sent += c;
        }
        if (zmq_msg_recv(&m, s, 0) < 0)
            die("producer zmq_msg_recv");
        hdr_t h;
        if (!hdr_read(&m, &h) || h.type != HDR_RESULT) {
            fprintf(stderr, "raw_floor: producer: malformed result\n");
            _exit(1);
        }
        uint32_t got = 0;
        while (zmq_msg_more(&m)) {
            if (zmq_msg_recv(&m, s, 0) < 0)
                die("producer zmq_msg_recv");
            got++;
        }
        if (g_opt.pack && got == 1 &&
            zmq_msg_size(&m) == (size_t)h.count * g_opt.size)
            got = h.count;
        if (got != h.count) {
            fprintf(stderr, "raw_floor: producer: result count mismatch\n");
            _exit(1);
        }
        done += got;
        atomic_store_explicit(&g_done_jobs, done, memory_order_relaxed);
    }
    g_seconds = now_s() - t0;

    zmq_msg_close(&m);
    zmq_close(s);
    atomic_store(&g_producer_finished, true);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Main                                                                */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: raw_floor [options]\n"
        "  --jobs N         jobs to run (default 1000000)\n"
        "  --workers W      worker threads (default 2)\n"
        "  --window K       messages each worker may hold ahead (default 100)\n"
        "  --batch B        jobs per message (default 1)\n"
        "  --size S         payload and result bytes (default 64)\n"
        "  --curve          CURVE on every socket (default)\n"
        "  --no-curve       plain TCP\n"
        "  --inflight J     producer's bound on outstanding jobs (default 10000)\n"
        "  --io-threads T   libzmq I/O threads per context (default 1)\n"
        "  --shared-context one libzmq context for all roles instead of one\n"
        "                   per role (as separate processes would have)\n"
        "  --pack           not the floor: put a batch's payloads in one frame\n"
        "                   instead of one frame per job, to show what\n"
        "                   per-frame costs (CURVE above all) amount to;\n"
        "                   reported under the name raw_floor_packed\n"
        "  --watchdog SECS  abort if no result arrives for SECS (default 120)\n"
        "  --json           print one JSON object line\n");
}

static void bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "raw_floor: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    usage(stderr);
    exit(2);
}

static uint64_t parse_u64(const char *opt, const char *v, uint64_t lo,
                          uint64_t hi)
{
    if (!v)
        bad_usage("%s needs a value", opt);
    char *end;
    errno = 0;
    if (*v == '-' || *v == '\0')
        bad_usage("bad value for %s", opt);
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end != '\0' || x < lo || x > hi)
        bad_usage("bad value for %s", opt);
    return x;
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--jobs"))
            g_opt.jobs = parse_u64(a, v, 1, UINT64_C(1) << 40), i++;
        else if (!strcmp(a, "--workers"))
            g_opt.workers = (unsigned)parse_u64(a, v, 1, 256), i++;
        else if (!strcmp(a, "--window"))
            g_opt.window = (unsigned)parse_u64(a, v, 1, 1000000), i++;
        else if (!strcmp(a, "--batch"))
            g_opt.batch = (unsigned)parse_u64(a, v, 1, 100000), i++;
        else if (!strcmp(a, "--size"))
            g_opt.size = (size_t)parse_u64(a, v, 0, 1 << 24), i++;
        else if (!strcmp(a, "--inflight"))
            g_opt.inflight = parse_u64(a, v, 1, 100000000), i++;
        else if (!strcmp(a, "--io-threads"))
            g_opt.io_threads = (int)parse_u64(a, v, 1, 64), i++;
        else if (!strcmp(a, "--watchdog"))
            g_opt.watchdog_s = (unsigned)parse_u64(a, v, 1, 86400), i++;
        else if (!strcmp(a, "--pack"))
            g_opt.pack = true;
        else if (!strcmp(a, "--shared-context"))
            g_opt.shared_ctx = true;
        else if (!strcmp(a, "--curve"))
            g_opt.curve = true;
        else if (!strcmp(a, "--no-curve"))
            g_opt.curve = false;
        else if (!strcmp(a, "--json"))
            g_opt.json = true;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else
            bad_usage("unknown option %s", a);
    }
}

static void bind_router(void *s, char *ep, size_t eplen)
{
    make_server_curve(s);
    /* Unroutable sends should fail loudly, not vanish. */
    set_int(s, ZMQ_ROUTER_MANDATORY, 1, "ZMQ_ROUTER_MANDATORY");
    if (zmq_bind(s, "tcp://127.0.0.1:*") != 0)
        die("zmq_bind");
    if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &eplen) != 0)
        die("ZMQ_LAST_ENDPOINT");
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Main only supervises: the threads block inside libzmq, so a stuck run
 * can only be detected from outside them, by watching result progress. */
static void watch(bool (*finished)(void), const char *stage)
{
    uint64_t last = atomic_load(&g_done_jobs);
    double since = now_s();
    while (!finished()) {
        sleep_ms(10);
        uint64_t d = atomic_load_explicit(&g_done_jobs, memory_order_relaxed);
        if (d != last) {
            last = d;
            since = now_s();
        } else if (now_s() - since > g_opt.watchdog_s) {
            fprintf(stderr,
                    "raw_floor: watchdog: no progress for %u s while %s "
                    "(%" PRIu64 "/%" PRIu64 " jobs done, %u/%u workers "
                    "ready); aborting\n",
                    g_opt.watchdog_s, stage, d, g_opt.jobs,
                    atomic_load(&g_workers_ready), g_opt.workers);
            fflush(stderr);
            _exit(1);
        }
    }
}

static bool workers_ready(void)
{
    return atomic_load(&g_workers_ready) == g_opt.workers;
}

static bool producer_finished(void)
{
    return atomic_load(&g_producer_finished);
}

static void *new_ctx(void)
{
    void *ctx = zmq_ctx_new();
    if (!ctx)
        die("zmq_ctx_new");
    if (zmq_ctx_set(ctx, ZMQ_IO_THREADS, g_opt.io_threads) != 0)
        die("ZMQ_IO_THREADS");
    return ctx;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);

    if (g_opt.curve && !zmq_has("curve")) {
        fprintf(stderr, "raw_floor: this libzmq has no CURVE support\n");
        return 1;
    }

    if (g_opt.curve && zmq_curve_keypair(g_server_public, g_server_secret))
        die("zmq_curve_keypair");
    g_broker_ctx = new_ctx();
    g_producer_ctx = g_opt.shared_ctx ? g_broker_ctx : new_ctx();
    g_worker_ctx = calloc(g_opt.workers, sizeof *g_worker_ctx);
    pthread_t bt, pt, *wt = calloc(g_opt.workers, sizeof *wt);
    if (!g_worker_ctx || !wt) {
        errno = ENOMEM;
        die("calloc");
    }
    for (unsigned i = 0; i < g_opt.workers; i++)
        g_worker_ctx[i] = g_opt.shared_ctx ? g_broker_ctx : new_ctx();

    /* The broker's sockets are bound here so the endpoints are known
     * before any client thread starts; pthread_create is a full barrier,
     * which is all libzmq asks for when a socket changes threads. */
    static broker_t broker;
    broker.front = make_socket(g_broker_ctx, ZMQ_ROUTER);
    broker.back = make_socket(g_broker_ctx, ZMQ_ROUTER);
    bind_router(broker.front, g_front_ep, sizeof g_front_ep);
    bind_router(broker.back, g_back_ep, sizeof g_back_ep);

    if (pthread_create(&bt, NULL, broker_main, &broker) != 0)
        die("pthread_create");
    for (unsigned i = 0; i < g_opt.workers; i++)
        if (pthread_create(&wt[i], NULL, worker_main, g_worker_ctx[i]) != 0)
            die("pthread_create");

    /* Timing must not include worker connection and CURVE handshakes, so
     * the producer only starts once every worker has granted credit. */
    watch(workers_ready, "waiting for workers");
    if (pthread_create(&pt, NULL, producer_main, g_producer_ctx) != 0)
        die("pthread_create");
    watch(producer_finished, "running");
    pthread_join(pt, NULL);

    /* Shutting a context down wakes its blocked thread with ETERM, which
     * is how the broker and workers learn the run is over. */
    zmq_ctx_shutdown(g_broker_ctx);
    for (unsigned i = 0; i < g_opt.workers; i++)
        if (g_worker_ctx[i] != g_broker_ctx)
            zmq_ctx_shutdown(g_worker_ctx[i]);
    pthread_join(bt, NULL);
    for (unsigned i = 0; i < g_opt.workers; i++) {
        pthread_join(wt[i], NULL);
        if (g_worker_ctx[i] != g_broker_ctx)
            zmq_ctx_term(g_worker_ctx[i]);
    }
    if (g_producer_ctx != g_broker_ctx)
        zmq_ctx_term(g_producer_ctx);
    zmq_ctx_term(g_broker_ctx);
    free(wt);
    free(g_worker_ctx);

    double rate = g_seconds > 0 ? (double)g_opt.jobs / g_seconds : 0.0;
    /* A packed run is a different wire, so it must never be mistaken for
     * the floor by whatever collects these lines. */
    const char *name = g_opt.pack ? "raw_floor_packed" : "raw_floor";
    if (g_opt.json)
        printf("{\"name\":\"%s\",\"jobs\":%" PRIu64 ",\"workers\":%u,"
               "\"window\":%u,\"batch\":%u,\"curve\":%s,\"size\":%zu,"
               "\"seconds\":%.6f,\"jobs_per_s\":%.1f}\n",
               name, g_opt.jobs, g_opt.workers, g_opt.window, g_opt.batch,
               g_opt.curve ? "true" : "false", g_opt.size, g_seconds, rate);
    else
        printf("%s: %" PRIu64 " jobs, %u workers, window %u, batch %u, "
               "%s, %zu-byte payloads: %.3f s, %.0f jobs/s\n",
               name, g_opt.jobs, g_opt.workers, g_opt.window, g_opt.batch,
               g_opt.curve ? "CURVE" : "no CURVE", g_opt.size, g_seconds,
               rate);
    return 0;
}
