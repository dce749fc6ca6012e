/*  test_broker_store.c - job store, timer heap and queue ordering.  */
#include "job.h"
#include "queue.h"
#include "util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond) \
    do { if (!(cond)) { fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); exit (1); } } while (0)

static void
s_make_id (uint8_t *id, uint32_t n)
{
    //  Deliberately poor ids (mostly zero) so probing and clusters get exercised
    memset (id, 0, DRV_ID_SIZE);
    memcpy (id, &n, sizeof n);
    id [15] = 1;
}

static void
test_store (void)
{
    job_store_t *store = job_store_new ();
    CHECK (store);
    enum { N = 50000 };
    uint8_t id [DRV_ID_SIZE];
    for (uint32_t i = 0; i < N; i++) {
        s_make_id (id, i * 4096);    //  same low bits: long clusters
        job_t *job = job_store_add (store, id);
        CHECK (job);
        CHECK (job->heap_index == JOB_NOT_IN_HEAP);
    }
    CHECK (job_store_size (store) == N);
    //  Remove every third, then check all lookups
    for (uint32_t i = 0; i < N; i += 3) {
        s_make_id (id, i * 4096);
        job_t *job = job_store_find (store, id);
        CHECK (job);
        job_store_remove (store, job);
    }
    for (uint32_t i = 0; i < N; i++) {
        s_make_id (id, i * 4096);
        job_t *job = job_store_find (store, id);
        CHECK ((i % 3 == 0)? job == NULL: job != NULL);
        if (job)
            CHECK (memcmp (job->id, id, DRV_ID_SIZE) == 0);
    }
    CHECK (job_store_size (store) == N - (N + 2) / 3);
    //  Recycled jobs come back zeroed
    s_make_id (id, 7);
    job_t *job = job_store_add (store, id);
    CHECK (job && job->error == NULL && job->watcher_count == 0 && job->pinned == 0);
    //  Watchers skip the owner and duplicates
    uint8_t session [DRV_ID_SIZE];
    memset (session, 9, sizeof session);
    memcpy (job->owner, session, DRV_ID_SIZE);
    CHECK (job_watch (job, session) == 0 && job->watcher_count == 0);
    session [0] = 1;
    CHECK (job_watch (job, session) == 0 && job_watch (job, session) == 0);
    CHECK (job->watcher_count == 1);
    job_set_error (job, "boom");
    CHECK (strcmp (job->error, "boom") == 0);
    job_store_destroy (&store);
    CHECK (store == NULL);
}

static void
test_heap (void)
{
    job_store_t *store = job_store_new ();
    job_heap_t *heap = job_heap_new ();
    enum { N = 5000 };
    job_t *jobs [N];
    uint8_t id [DRV_ID_SIZE];
    srand (42);
    for (uint32_t i = 0; i < N; i++) {
        drv_random_id (id);
        jobs [i] = job_store_add (store, id);
        jobs [i]->due = (uint64_t) (rand () % 100000);
        CHECK (job_heap_push (heap, jobs [i]) == 0);
    }
    //  Remove a third from the middle, re-push some with new times
    for (uint32_t i = 0; i < N; i += 3)
        job_heap_remove (heap, jobs [i]);
    for (uint32_t i = 1; i < N; i += 7) {
        if (i % 3 == 0)
            continue;   //  removed above; pushing it again would change the count
        jobs [i]->due = (uint64_t) (rand () % 100000);
        CHECK (job_heap_push (heap, jobs [i]) == 0);
    }
    size_t expect = N - (N + 2) / 3;
    CHECK (job_heap_size (heap) == expect);
    uint64_t last = 0;
    size_t popped = 0;
    job_t *job;
    while ((job = job_heap_peek (heap))) {
        CHECK (job->due >= last);
        last = job->due;
        job_heap_remove (heap, job);
        CHECK (job->heap_index == JOB_NOT_IN_HEAP);
        popped++;
    }
    CHECK (popped == expect);
    job_heap_destroy (&heap);
    job_store_destroy (&store);
}

static void
test_queue (void)
{
    CHECK (drv_queue_name_valid ("a"));
    CHECK (drv_queue_name_valid ("emails.high-prio_2:x"));
    CHECK (!drv_queue_name_valid (""));
    CHECK (!drv_queue_name_valid ("has space"));
    CHECK (!drv_queue_name_valid ("slash/no"));
    char longname [200];
    memset (longname, 'a', sizeof longname);
    longname [128] = 0;
    CHECK (drv_queue_name_valid (longname));
    longname [128] = 'a';
    longname [129] = 0;
    CHECK (!drv_queue_name_valid (longname));

    job_store_t *store = job_store_new ();
    queue_t *queue = queue_new ("q");
    uint8_t id [DRV_ID_SIZE];
    //  Priorities 0..9 interleaved; pop must give highest first, FIFO within
    for (uint32_t i = 0; i < 100; i++) {
        s_make_id (id, i + 1);
        job_t *job = job_store_add (store, id);
        job->priority = (int32_t) (i % 10);
        job->created_wall = i;
        queue_push (queue, job);
    }
    CHECK (queue->ready == 100);
    //  Unlink one from the middle of a level
    s_make_id (id, 15 + 1);
    queue_unlink (queue, job_store_find (store, id));
    CHECK (queue->ready == 99);
    int last_priority = 9;
    uint64_t last_created = 0;
    bool first = true;
    job_t *job;
    int count = 0;
    while ((job = queue_pop (queue))) {
        CHECK (job->priority <= last_priority);
        if (job->priority == last_priority && !first)
            CHECK (job->created_wall > last_created);
        CHECK (job->created_wall != 15);
        first = job->priority != last_priority? false: first;
        last_priority = job->priority;
        last_created = job->created_wall;
        count++;
    }
    CHECK (count == 99);
    CHECK (queue->ready == 0);
    //  Worker set: add twice is one entry; removal keeps round robin sane
    peer_t *a = (peer_t *) 0x10, *b = (peer_t *) 0x20, *c = (peer_t *) 0x30;
    CHECK (queue_add_worker (queue, a) == 0 && queue_add_worker (queue, a) == 0);
    CHECK (queue_add_worker (queue, b) == 0 && queue_add_worker (queue, c) == 0);
    CHECK (queue->worker_count == 3);
    queue->next_worker = 2;
    queue_remove_worker (queue, a);
    CHECK (queue->worker_count == 2 && queue->workers [0] == b && queue->next_worker == 1);
    queue_destroy (&queue);
    job_store_destroy (&store);
}

int
main (void)
{
    test_store ();
    test_heap ();
    test_queue ();
    printf ("broker store: all checks passed\n");
    return 0;
}
