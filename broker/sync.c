/*  sync.c - cluster-wide locks, counting semaphores, events and barriers.

    Three kinds of record: a primitive (by kind and name), a session (the
    locks and permits it holds and the requests it has waiting) and a
    waiter (one blocked request). A waiter is on three structures at once:
    its primitive's FIFO, its session's list and the deadline heap, so it
    can leave any of them in O(1) or O(log n) whichever event comes first:
    a grant, a timeout or the end of its session.
*/
#include "sync.h"
#include "util.h"

#include <czmq.h>

typedef struct sync_prim sync_prim_t;
typedef struct sync_sess sync_sess_t;
typedef struct sync_hold sync_hold_t;
typedef struct sync_waiter sync_waiter_t;

typedef enum { KIND_LOCK = 'L', KIND_SEM = 'S', KIND_EVENT = 'E', KIND_BARRIER = 'B' } kind_t;

struct sync_prim {
    kind_t kind;                    //  what it is
    char key [DRV_QUEUE_NAME_MAX + 2];  //  kind letter + name: each kind has its own names
    sync_waiter_t *head;            //  oldest waiter (granted first)
    sync_waiter_t *tail;            //  newest waiter
    size_t waiting;                 //  waiters queued
    sync_hold_t *holder;            //  lock: the hold of its owner, NULL when free
    uint32_t initial;               //  semaphore: permits it was created with
    uint32_t avail;                 //  semaphore: permits left
    bool set;                       //  event: set
    uint32_t parties;               //  barrier: parties of the round in progress
};

//  Locks and permits one session holds on one primitive.
struct sync_hold {
    sync_prim_t *prim;              //  the lock or semaphore
    sync_sess_t *sess;              //  its owner
    uint32_t count;                 //  permits (1 for a lock)
    sync_hold_t *prev;              //  session's hold list
    sync_hold_t *next;              //  session's hold list
};

struct sync_sess {
    uint8_t id [DRV_ID_SIZE];       //  session id
    char key [DRV_ID_SIZE * 2 + 1]; //  its hex, map key
    sync_hold_t *holds;             //  what it holds
    sync_waiter_t *waits;           //  its blocked requests
    bool pinned;                    //  being dropped: not to be freed under the caller
};

struct sync_waiter {
    sync_prim_t *prim;              //  what it waits for
    sync_sess_t *sess;              //  who waits
    uint64_t corr;                  //  request to answer
    uint64_t deadline;              //  monotonic ms of its CODE_TIMEOUT
    size_t heap_at;                 //  index in the deadline heap
    sync_waiter_t *prev;            //  primitive FIFO
    sync_waiter_t *next;            //  primitive FIFO
    sync_waiter_t *sprev;           //  session's list
    sync_waiter_t *snext;           //  session's list
};

struct _sync_t {
    sync_deliver_fn *deliver;       //  sends replies
    void *arg;                      //  its argument
    zhashx_t *prims;                //  kind letter + name -> sync_prim_t
    zhashx_t *sessions;             //  session hex -> sync_sess_t
    sync_waiter_t **heap;           //  waiters, min-heap by deadline
    size_t heap_count;              //  entries in heap
    size_t heap_cap;                //  allocated entries
    uint64_t fence;                 //  last fencing token handed out (all locks)
    uint32_t rounds;                //  barrier rounds released (all barriers)
};

//  Deadline heap ----------------------------------------------------------

static void
s_heap_place (sync_t *self, size_t at, sync_waiter_t *waiter)
{
    self->heap [at] = waiter;
    waiter->heap_at = at;
}

static void
s_heap_up (sync_t *self, size_t at)
{
    sync_waiter_t *waiter = self->heap [at];
    while (at > 0) {
        size_t parent = (at - 1) / 2;
        if (self->heap [parent]->deadline <= waiter->deadline)
            break;
        s_heap_place (self, at, self->heap [parent]);
        at = parent;
    }
    s_heap_place (self, at, waiter);
}

static void
s_heap_down (sync_t *self, size_t at)
{
    sync_waiter_t *waiter = self->heap [at];
    while (true) {
        size_t child = 2 * at + 1;
        if (child >= self->heap_count)
            break;
        if (child + 1 < self->heap_count
        &&  self->heap [child + 1]->deadline < self->heap [child]->deadline)
            child++;
        if (self->heap [child]->deadline >= waiter->deadline)
            break;
        s_heap_place (self, at, self->heap [child]);
        at = child;
    }
    s_heap_place (self, at, waiter);
}

static int
s_heap_push (sync_t *self, sync_waiter_t *waiter)
{
    if (self->heap_count == self->heap_cap) {
        size_t cap = self->heap_cap? self->heap_cap * 2: 64;
        sync_waiter_t **heap = realloc (self->heap, cap * sizeof *heap);
        if (!heap)
            return -1;
        self->heap = heap;
        self->heap_cap = cap;
    }
    s_heap_place (self, self->heap_count++, waiter);
    s_heap_up (self, waiter->heap_at);
    return 0;
}

static void
s_heap_remove (sync_t *self, sync_waiter_t *waiter)
{
    size_t at = waiter->heap_at;
    sync_waiter_t *last = self->heap [--self->heap_count];
    if (last == waiter)
        return;
    s_heap_place (self, at, last);
    //  The moved entry may belong above or below its new place
    s_heap_up (self, at);
    s_heap_down (self, last->heap_at);
}

//  Records ----------------------------------------------------------------

static void
s_reply (sync_t *self, sync_sess_t *sess, uint64_t corr, drv_code_t code, const char *message,
         uint64_t fence, uint32_t value)
{
    self->deliver (self->arg, sess->id, corr, code, message, fence, value);
}

static sync_sess_t *
s_sess_require (sync_t *self, const uint8_t *id)
{
    char key [DRV_ID_SIZE * 2 + 1];
    drv_hex (id, DRV_ID_SIZE, key);
    sync_sess_t *sess = (sync_sess_t *) zhashx_lookup (self->sessions, key);
    if (sess)
        return sess;
    sess = (sync_sess_t *) calloc (1, sizeof *sess);
    if (!sess)
        return NULL;
    memcpy (sess->id, id, DRV_ID_SIZE);
    memcpy (sess->key, key, sizeof key);
    zhashx_insert (self->sessions, sess->key, sess);
    return sess;
}

//  A session record lives only while it holds or waits for something.
static void
s_sess_maybe_free (sync_t *self, sync_sess_t *sess)
{
    if (sess->holds || sess->waits || sess->pinned)
        return;
    zhashx_delete (self->sessions, sess->key);
    free (sess);
}

static bool
s_prim_idle (const sync_prim_t *prim)
{
    if (prim->head || prim->holder || prim->set)
        return false;
    return prim->kind != KIND_SEM || prim->avail == prim->initial;
}

static void
s_prim_maybe_free (sync_t *self, sync_prim_t *prim)
{
    if (!s_prim_idle (prim))
        return;
    zhashx_delete (self->prims, prim->key);
    free (prim);
}

static sync_hold_t *
s_hold_find (sync_sess_t *sess, sync_prim_t *prim)
{
    for (sync_hold_t *hold = sess->holds; hold; hold = hold->next)
        if (hold->prim == prim)
            return hold;
    return NULL;
}

//  Adds one permit (or the lock) to what sess holds on prim; NULL if out of memory.
static sync_hold_t *
s_hold_add (sync_sess_t *sess, sync_prim_t *prim)
{
    sync_hold_t *hold = prim->kind == KIND_SEM? s_hold_find (sess, prim): NULL;
    if (hold) {
        hold->count++;
        return hold;
    }
    hold = (sync_hold_t *) calloc (1, sizeof *hold);
    if (!hold)
        return NULL;
    hold->prim = prim;
    hold->sess = sess;
    hold->count = 1;
    hold->next = sess->holds;
    if (sess->holds)
        sess->holds->prev = hold;
    sess->holds = hold;
    if (prim->kind == KIND_LOCK)
        prim->holder = hold;
    return hold;
}

//  Unlinks and frees a hold (all its permits); the caller fixes the counts.
static void
s_hold_free (sync_hold_t *hold)
{
    sync_sess_t *sess = hold->sess;
    if (hold->prev)
        hold->prev->next = hold->next;
    else
        sess->holds = hold->next;
    if (hold->next)
        hold->next->prev = hold->prev;
    if (hold->prim->holder == hold)
        hold->prim->holder = NULL;
    free (hold);
}

//  Unlinks a waiter from its primitive, session and the heap, and frees
//  it. Frees neither the primitive nor the session: callers do, once done.
static void
s_waiter_free (sync_t *self, sync_waiter_t *waiter)
{
    sync_prim_t *prim = waiter->prim;
    if (waiter->prev)
        waiter->prev->next = waiter->next;
    else
        prim->head = waiter->next;
    if (waiter->next)
        waiter->next->prev = waiter->prev;
    else
        prim->tail = waiter->prev;
    prim->waiting--;
    sync_sess_t *sess = waiter->sess;
    if (waiter->sprev)
        waiter->sprev->snext = waiter->snext;
    else
        sess->waits = waiter->snext;
    if (waiter->snext)
        waiter->snext->sprev = waiter->sprev;
    s_heap_remove (self, waiter);
    free (waiter);
}

//  Queues a blocked request; answers it with LIMIT if it cannot.
static void
s_wait (sync_t *self, sync_prim_t *prim, sync_sess_t *sess, uint64_t corr,
        uint32_t timeout_ms, uint64_t now)
{
    sync_waiter_t *waiter = NULL;
    if (prim->waiting >= SYNC_MAX_WAITERS) {
        s_reply (self, sess, corr, DRV_CODE_LIMIT, "too many waiters on this primitive", 0, 0);
        return;
    }
    waiter = (sync_waiter_t *) calloc (1, sizeof *waiter);
    if (!waiter || (waiter->deadline = now + timeout_ms, s_heap_push (self, waiter))) {
        free (waiter);
        s_reply (self, sess, corr, DRV_CODE_LIMIT, "broker out of memory", 0, 0);
        return;
    }
    waiter->prim = prim;
    waiter->sess = sess;
    waiter->corr = corr;
    waiter->prev = prim->tail;
    if (prim->tail)
        prim->tail->next = waiter;
    else
        prim->head = waiter;
    prim->tail = waiter;
    prim->waiting++;
    waiter->snext = sess->waits;
    if (sess->waits)
        sess->waits->sprev = waiter;
    sess->waits = waiter;
}

//  Grants ---------------------------------------------------------------

//  Hands a free lock to the oldest waiter whose session is still there.
static void
s_lock_grant (sync_t *self, sync_prim_t *prim)
{
    while (!prim->holder && prim->head) {
        sync_waiter_t *waiter = prim->head;
        sync_sess_t *sess = waiter->sess;
        uint64_t corr = waiter->corr;
        s_waiter_free (self, waiter);
        sync_hold_t *hold = s_hold_add (sess, prim);
        if (!hold)
            s_reply (self, sess, corr, DRV_CODE_LIMIT, "broker out of memory", 0, 0);
        else
        if (!self->deliver (self->arg, sess->id, corr, DRV_CODE_OK, "", ++self->fence, 0))
            s_hold_free (hold);     //  gone: the next waiter gets it
        s_sess_maybe_free (self, sess);
    }
}

//  Hands free permits to the oldest waiters, one each.
static void
s_sem_grant (sync_t *self, sync_prim_t *prim)
{
    while (prim->avail > 0 && prim->head) {
        sync_waiter_t *waiter = prim->head;
        sync_sess_t *sess = waiter->sess;
        uint64_t corr = waiter->corr;
        s_waiter_free (self, waiter);
        sync_hold_t *hold = s_hold_add (sess, prim);
        if (!hold)
            s_reply (self, sess, corr, DRV_CODE_LIMIT, "broker out of memory", 0, prim->avail);
        else {
            prim->avail--;
            if (!self->deliver (self->arg, sess->id, corr, DRV_CODE_OK, "", 0, prim->avail)) {
                prim->avail++;
                if (--hold->count == 0)
                    s_hold_free (hold);
            }
        }
        s_sess_maybe_free (self, sess);
    }
}

//  Answers every waiter OK with value (event set, barrier complete).
static void
s_release_all (sync_t *self, sync_prim_t *prim, uint32_t value)
{
    while (prim->head) {
        sync_waiter_t *waiter = prim->head;
        sync_sess_t *sess = waiter->sess;
        uint64_t corr = waiter->corr;
        s_waiter_free (self, waiter);
        s_reply (self, sess, corr, DRV_CODE_OK, "", 0, value);
        s_sess_maybe_free (self, sess);
    }
}

//  Requests ---------------------------------------------------------------

static sync_prim_t *
s_prim_find (sync_t *self, kind_t kind, const char *name)
{
    char key [DRV_QUEUE_NAME_MAX + 2];
    snprintf (key, sizeof key, "%c%s", (char) kind, name);
    return (sync_prim_t *) zhashx_lookup (self->prims, key);
}

//  Creates a primitive; NULL (with *why set) at the limit or out of memory.
static sync_prim_t *
s_prim_new (sync_t *self, kind_t kind, const char *name, const char **why)
{
    if (zhashx_size (self->prims) >= SYNC_MAX_PRIMS) {
        *why = "too many sync primitives in this broker";
        return NULL;
    }
    sync_prim_t *prim = (sync_prim_t *) calloc (1, sizeof *prim);
    if (!prim) {
        *why = "broker out of memory";
        return NULL;
    }
    prim->kind = kind;
    snprintf (prim->key, sizeof prim->key, "%c%s", (char) kind, name);
    zhashx_insert (self->prims, prim->key, prim);
    return prim;
}

static kind_t
s_kind_of (drv_sync_op_t op)
{
    switch (op) {
        case DRV_SYNC_LOCK:
        case DRV_SYNC_UNLOCK:
            return KIND_LOCK;
        case DRV_SYNC_SEM_ACQUIRE:
        case DRV_SYNC_SEM_RELEASE:
            return KIND_SEM;
        case DRV_SYNC_EVENT_SET:
        case DRV_SYNC_EVENT_CLEAR:
        case DRV_SYNC_EVENT_WAIT:
            return KIND_EVENT;
        default:
            return KIND_BARRIER;
    }
}

void
sync_request (sync_t *self, const uint8_t *session, uint64_t corr,
              const sync_request_t *request, uint64_t now)
{
    drv_sync_op_t op = request->op;
    if (op < DRV_SYNC_LOCK || op > DRV_SYNC_BARRIER_WAIT) {
        self->deliver (self->arg, session, corr, DRV_CODE_BAD_REQUEST,
                       "unknown sync operation", 0, 0);
        return;
    }
    if (!request->name || !drv_queue_name_valid (request->name)) {
        self->deliver (self->arg, session, corr, DRV_CODE_BAD_REQUEST,
                       "invalid name (1-128 of A-Z a-z 0-9 . _ - :)", 0, 0);
        return;
    }
    if ((op == DRV_SYNC_BARRIER_WAIT) && request->count == 0) {
        self->deliver (self->arg, session, corr, DRV_CODE_BAD_REQUEST,
                       "a barrier needs count (parties) > 0", 0, 0);
        return;
    }
    sync_sess_t *sess = s_sess_require (self, session);
    if (!sess) {
        self->deliver (self->arg, session, corr, DRV_CODE_LIMIT, "broker out of memory", 0, 0);
        return;
    }
    //  Whatever this request releases (a barrier round it completes, say)
    //  may end the session's own waits: keep its record until the end
    bool was_pinned = sess->pinned;
    sess->pinned = true;
    kind_t kind = s_kind_of (op);
    sync_prim_t *prim = s_prim_find (self, kind, request->name);
    //  Only requests that may leave something behind create a primitive
    bool creates = op == DRV_SYNC_LOCK || op == DRV_SYNC_SEM_ACQUIRE || op == DRV_SYNC_EVENT_SET
                || ((op == DRV_SYNC_EVENT_WAIT || op == DRV_SYNC_BARRIER_WAIT)
                    && request->timeout_ms > 0);
    if (!prim && op == DRV_SYNC_SEM_ACQUIRE && request->count == 0) {
        s_reply (self, sess, corr, DRV_CODE_BAD_REQUEST,
                 "a new semaphore needs count (initial permits) > 0", 0, 0);
        sess->pinned = was_pinned;
        s_sess_maybe_free (self, sess);
        return;
    }
    if (!prim && creates) {
        const char *why = "";
        prim = s_prim_new (self, kind, request->name, &why);
        if (!prim) {
            s_reply (self, sess, corr, DRV_CODE_LIMIT, why, 0, 0);
            sess->pinned = was_pinned;
            s_sess_maybe_free (self, sess);
            return;
        }
        if (kind == KIND_SEM)
            prim->initial = prim->avail = request->count;
    }
    switch (op) {
        case DRV_SYNC_LOCK:
            if (prim->holder && prim->holder->sess == sess)
                s_reply (self, sess, corr, DRV_CODE_BAD_STATE,
                         "this session holds the lock already", 0, 0);
            else
            if (!prim->holder && !prim->head) {
                if (s_hold_add (sess, prim))
                    s_reply (self, sess, corr, DRV_CODE_OK, "", ++self->fence, 0);
                else
                    s_reply (self, sess, corr, DRV_CODE_LIMIT, "broker out of memory", 0, 0);
            }
            else
            if (request->timeout_ms == 0)
                s_reply (self, sess, corr, DRV_CODE_TIMEOUT, "lock is held", 0, 0);
            else
                s_wait (self, prim, sess, corr, request->timeout_ms, now);
            break;
        case DRV_SYNC_UNLOCK:
            if (!prim || !prim->holder || prim->holder->sess != sess)
                s_reply (self, sess, corr, DRV_CODE_BAD_STATE,
                         "this session does not hold the lock", 0, 0);
            else {
                s_hold_free (prim->holder);
                s_reply (self, sess, corr, DRV_CODE_OK, "", 0, 0);
                s_lock_grant (self, prim);
            }
            break;
        case DRV_SYNC_SEM_ACQUIRE:
            if (prim->avail > 0 && !prim->head) {
                if (s_hold_add (sess, prim)) {
                    prim->avail--;
                    s_reply (self, sess, corr, DRV_CODE_OK, "", 0, prim->avail);
                }
                else
                    s_reply (self, sess, corr, DRV_CODE_LIMIT, "broker out of memory", 0,
                             prim->avail);
            }
            else
            if (request->timeout_ms == 0)
                s_reply (self, sess, corr, DRV_CODE_TIMEOUT, "no permit free", 0, prim->avail);
            else
                s_wait (self, prim, sess, corr, request->timeout_ms, now);
            break;
        case DRV_SYNC_SEM_RELEASE: {
            sync_hold_t *hold = prim? s_hold_find (sess, prim): NULL;
            if (!hold) {
                s_reply (self, sess, corr, DRV_CODE_BAD_STATE,
                         "this session holds no permit of the semaphore", 0,
                         prim? prim->avail: 0);
                break;
            }
            if (--hold->count == 0)
                s_hold_free (hold);
            prim->avail++;
            s_reply (self, sess, corr, DRV_CODE_OK, "", 0, prim->avail);
            s_sem_grant (self, prim);
            break;
        }
        case DRV_SYNC_EVENT_SET:
            prim->set = true;
            s_reply (self, sess, corr, DRV_CODE_OK, "", 0, 0);
            s_release_all (self, prim, 0);
            break;
        case DRV_SYNC_EVENT_CLEAR:
            if (prim)
                prim->set = false;
            s_reply (self, sess, corr, DRV_CODE_OK, "", 0, 0);
            break;
        case DRV_SYNC_EVENT_WAIT:
            if (prim && prim->set)
                s_reply (self, sess, corr, DRV_CODE_OK, "", 0, 0);
            else
            if (request->timeout_ms == 0)
                s_reply (self, sess, corr, DRV_CODE_TIMEOUT, "event is not set", 0, 0);
            else
                s_wait (self, prim, sess, corr, request->timeout_ms, now);
            break;
        case DRV_SYNC_BARRIER_WAIT:
            if (prim && prim->head && prim->parties != request->count)
                s_reply (self, sess, corr, DRV_CODE_BAD_STATE,
                         "a round with another number of parties is in progress", 0, 0);
            else
            if ((prim? prim->waiting: 0) + 1 >= request->count) {
                //  This arrival completes the round: everyone goes at once
                uint32_t generation = ++self->rounds;
                if (prim)
                    s_release_all (self, prim, generation);
                s_reply (self, sess, corr, DRV_CODE_OK, "", 0, generation);
            }
            else
            if (request->timeout_ms == 0)
                s_reply (self, sess, corr, DRV_CODE_TIMEOUT, "not all parties are waiting", 0, 0);
            else {
                prim->parties = request->count;
                s_wait (self, prim, sess, corr, request->timeout_ms, now);
            }
            break;
        default:
            break;
    }
    if (prim)
        s_prim_maybe_free (self, prim);
    sess->pinned = was_pinned;
    s_sess_maybe_free (self, sess);
}

//  Session end and deadlines -------------------------------------------------

void
sync_session_drop (sync_t *self, const uint8_t *session)
{
    char key [DRV_ID_SIZE * 2 + 1];
    drv_hex (session, DRV_ID_SIZE, key);
    sync_sess_t *sess = (sync_sess_t *) zhashx_lookup (self->sessions, key);
    if (!sess)
        return;
    //  Waits first, so nothing released below is granted back to this session
    sess->pinned = true;
    while (sess->waits) {
        sync_prim_t *prim = sess->waits->prim;
        s_waiter_free (self, sess->waits);
        s_prim_maybe_free (self, prim);
    }
    while (sess->holds) {
        sync_hold_t *hold = sess->holds;
        sync_prim_t *prim = hold->prim;
        if (prim->kind == KIND_SEM)
            prim->avail += hold->count;
        s_hold_free (hold);
        if (prim->kind == KIND_SEM)
            s_sem_grant (self, prim);
        else
            s_lock_grant (self, prim);
        s_prim_maybe_free (self, prim);
    }
    sess->pinned = false;
    s_sess_maybe_free (self, sess);
}

void
sync_expire (sync_t *self, uint64_t now)
{
    while (self->heap_count && self->heap [0]->deadline <= now) {
        sync_waiter_t *waiter = self->heap [0];
        sync_prim_t *prim = waiter->prim;
        sync_sess_t *sess = waiter->sess;
        uint64_t corr = waiter->corr;
        //  A barrier waiter that gives up leaves the round
        s_waiter_free (self, waiter);
        s_reply (self, sess, corr, DRV_CODE_TIMEOUT, "timed out waiting", 0,
                 prim->kind == KIND_SEM? prim->avail: 0);
        s_prim_maybe_free (self, prim);
        s_sess_maybe_free (self, sess);
    }
}

uint64_t
sync_next_deadline (sync_t *self)
{
    return self->heap_count? self->heap [0]->deadline: UINT64_MAX;
}

size_t
sync_size (sync_t *self)
{
    return zhashx_size (self->prims);
}

//  Construction ---------------------------------------------------------------

sync_t *
sync_new (sync_deliver_fn *deliver, void *arg, uint64_t first_fence)
{
    sync_t *self = (sync_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->deliver = deliver;
    self->arg = arg;
    self->fence = first_fence;
    self->prims = zhashx_new ();
    self->sessions = zhashx_new ();
    if (!self->prims || !self->sessions) {
        sync_destroy (&self);
        return NULL;
    }
    return self;
}

void
sync_destroy (sync_t **self_p)
{
    sync_t *self = *self_p;
    if (!self)
        return;
    //  Waiters and holds hang off the sessions; primitives are plain records
    if (self->sessions) {
        for (sync_sess_t *sess = zhashx_first (self->sessions); sess;
             sess = zhashx_next (self->sessions)) {
            while (sess->waits) {
                sync_waiter_t *next = sess->waits->snext;
                free (sess->waits);
                sess->waits = next;
            }
            while (sess->holds) {
                sync_hold_t *next = sess->holds->next;
                free (sess->holds);
                sess->holds = next;
            }
            free (sess);
        }
        zhashx_destroy (&self->sessions);
    }
    if (self->prims) {
        for (sync_prim_t *prim = zhashx_first (self->prims); prim; prim = zhashx_next (self->prims))
            free (prim);
        zhashx_destroy (&self->prims);
    }
    free (self->heap);
    free (self);
    *self_p = NULL;
}
