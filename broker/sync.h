/*  sync.h - cluster-wide locks, counting semaphores, events and barriers.

    The broker keeps named primitives in memory only (a restart drops them:
    sessions re-hello and re-acquire). A lock or a semaphore permit belongs
    to the client session that took it; sync_session_drop gives back all a
    session holds and forgets its waits, then grants the next waiters.

    Waiters queue FIFO per primitive. Every waiter has a deadline, kept in
    one binary heap, so expiry costs O(log n) per waiter and the broker
    only has to wake at sync_next_deadline. Replies, immediate or later,
    all go out through the deliver callback given to sync_new; it returns
    false when the session is gone, and a grant then passes to the next
    waiter.

    A primitive that is idle (no holder, no waiters, event cleared,
    semaphore back at its initial count, barrier without a round) is freed
    at once, so names used once do not pile up.
*/
#ifndef BROKER_SYNC_H_INCLUDED
#define BROKER_SYNC_H_INCLUDED

#include "codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Primitives per broker, and waiters per primitive, before CODE_LIMIT
#define SYNC_MAX_PRIMS 100000
#define SYNC_MAX_WAITERS 100000

typedef struct _sync_t sync_t;

//  Sends a SyncReply to session for request corr. Returns false if the
//  session is no longer connected (nothing was sent).
typedef bool (sync_deliver_fn) (void *arg, const uint8_t *session, uint64_t corr,
                                drv_code_t code, const char *message,
                                uint64_t fence, uint32_t value);

//  One SyncRequest, as decoded.
typedef struct {
    drv_sync_op_t op;           //  operation
    const char *name;           //  primitive name
    uint32_t timeout_ms;        //  longest wait, 0 = try once
    uint32_t count;             //  semaphore initial permits / barrier parties
} sync_request_t;

//  Creates the registry; first_fence seeds the fencing counter (the broker
//  passes wall-clock microseconds so fences keep growing across restarts).
sync_t *sync_new (sync_deliver_fn *deliver, void *arg, uint64_t first_fence);
//  Frees everything without answering anyone.
void sync_destroy (sync_t **self_p);

//  Handles one request from session (DRV_ID_SIZE bytes); answers through
//  deliver now, or later when granted or at its deadline.
void sync_request (sync_t *self, const uint8_t *session, uint64_t corr,
                   const sync_request_t *request, uint64_t now);

//  The session ended: releases its locks and permits, forgets its waits.
void sync_session_drop (sync_t *self, const uint8_t *session);

//  Answers CODE_TIMEOUT to every waiter whose deadline is at or before now.
void sync_expire (sync_t *self, uint64_t now);

//  Monotonic ms of the earliest waiter deadline, UINT64_MAX if none.
uint64_t sync_next_deadline (sync_t *self);

//  Primitives currently held in memory (for tests and stats).
size_t sync_size (sync_t *self);

#endif
