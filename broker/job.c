/*  job.c - job pool, id table and timer heap for the broker.  */
#include "job.h"

#include <stdlib.h>
#include <string.h>

#define SLAB_JOBS 1024

typedef struct slab_t {
    struct slab_t *next;            //  older slab
    job_t jobs [SLAB_JOBS];         //  storage
} slab_t;

struct _job_store_t {
    slab_t *slabs;                  //  all slabs, for destruction
    job_t *free_list;               //  recycled jobs, linked through next
    job_t **table;                  //  open-addressing table, linear probing
    size_t table_size;              //  slots, a power of two
    size_t count;                   //  jobs in the table
};

static size_t
s_hash (const uint8_t *id)
{
    //  Ids are random; their first eight bytes spread well enough
    uint64_t h;
    memcpy (&h, id, sizeof h);
    return (size_t) (h ^ (h >> 29));
}

job_store_t *
job_store_new (void)
{
    job_store_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->table_size = 1024;
    self->table = calloc (self->table_size, sizeof (job_t *));
    if (!self->table) {
        free (self);
        return NULL;
    }
    return self;
}

static void
s_job_release (job_t *job)
{
    zmq_msg_close (&job->payload);
    zmq_msg_close (&job->result);
    free (job->error);
    free (job->watchers);
    free (job->progress_message);
}

void
job_store_destroy (job_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    job_store_t *self = *self_p;
    for (size_t i = 0; i < self->table_size; i++)
        if (self->table [i])
            s_job_release (self->table [i]);
    while (self->slabs) {
        slab_t *next = self->slabs->next;
        free (self->slabs);
        self->slabs = next;
    }
    free (self->table);
    free (self);
    *self_p = NULL;
}

job_t *
job_store_find (job_store_t *self, const uint8_t *id)
{
    size_t mask = self->table_size - 1;
    for (size_t i = s_hash (id) & mask;; i = (i + 1) & mask) {
        job_t *job = self->table [i];
        if (!job)
            return NULL;
        if (memcmp (job->id, id, DRV_ID_SIZE) == 0)
            return job;
    }
}

static void
s_table_put (job_t **table, size_t size, job_t *job)
{
    size_t mask = size - 1;
    size_t i = s_hash (job->id) & mask;
    while (table [i])
        i = (i + 1) & mask;
    table [i] = job;
}

static int
s_table_grow (job_store_t *self)
{
    size_t size = self->table_size * 2;
    job_t **table = calloc (size, sizeof (job_t *));
    if (!table)
        return -1;
    for (size_t i = 0; i < self->table_size; i++)
        if (self->table [i])
            s_table_put (table, size, self->table [i]);
    free (self->table);
    self->table = table;
    self->table_size = size;
    return 0;
}

job_t *
job_store_add (job_store_t *self, const uint8_t *id)
{
    //  Keep the load under 1/2 so probes stay short
    if ((self->count + 1) * 2 > self->table_size && s_table_grow (self))
        return NULL;
    if (!self->free_list) {
        slab_t *slab = malloc (sizeof (slab_t));
        if (!slab)
            return NULL;
        slab->next = self->slabs;
        self->slabs = slab;
        for (int i = SLAB_JOBS - 1; i >= 0; i--) {
            slab->jobs [i].next = self->free_list;
            self->free_list = &slab->jobs [i];
        }
    }
    job_t *job = self->free_list;
    self->free_list = job->next;
    memset (job, 0, sizeof *job);
    memcpy (job->id, id, DRV_ID_SIZE);
    zmq_msg_init (&job->payload);
    zmq_msg_init (&job->result);
    job->heap_index = JOB_NOT_IN_HEAP;
    s_table_put (self->table, self->table_size, job);
    self->count++;
    return job;
}

void
job_store_remove (job_store_t *self, job_t *job)
{
    //  Linear probing deletion: shift later entries of the cluster back so
    //  that no lookup stops early at the hole
    size_t mask = self->table_size - 1;
    size_t i = s_hash (job->id) & mask;
    while (self->table [i] != job)
        i = (i + 1) & mask;
    self->table [i] = NULL;
    for (size_t j = (i + 1) & mask; self->table [j]; j = (j + 1) & mask) {
        job_t *moved = self->table [j];
        size_t home = s_hash (moved->id) & mask;
        //  Move it back if its home slot is not in (i, j]
        bool stays = (i < j)? (home > i && home <= j): (home > i || home <= j);
        if (!stays) {
            self->table [i] = moved;
            self->table [j] = NULL;
            i = j;
        }
    }
    self->count--;
    s_job_release (job);
    job->next = self->free_list;
    self->free_list = job;
}

size_t
job_store_size (job_store_t *self)
{
    return self->count;
}

job_t *
job_store_next (job_store_t *self, size_t *cursor)
{
    while (*cursor < self->table_size) {
        job_t *job = self->table [(*cursor)++];
        if (job)
            return job;
    }
    return NULL;
}

int
job_watch (job_t *job, const uint8_t *session)
{
    if (memcmp (job->owner, session, DRV_ID_SIZE) == 0)
        return 0;
    for (uint32_t i = 0; i < job->watcher_count; i++)
        if (memcmp (job->watchers [i], session, DRV_ID_SIZE) == 0)
            return 0;
    uint8_t (*watchers) [DRV_ID_SIZE] =
        realloc (job->watchers, (job->watcher_count + 1) * DRV_ID_SIZE);
    if (!watchers)
        return -1;
    memcpy (watchers [job->watcher_count], session, DRV_ID_SIZE);
    job->watchers = watchers;
    job->watcher_count++;
    return 0;
}

void
job_set_error (job_t *job, const char *error)
{
    free (job->error);
    job->error = error? strdup (error): NULL;
}

//  Timer heap -------------------------------------------------------------

struct _job_heap_t {
    job_t **items;      //  binary min-heap on due
    size_t count;       //  items in use
    size_t cap;         //  items allocated
};

job_heap_t *
job_heap_new (void)
{
    return calloc (1, sizeof (job_heap_t));
}

void
job_heap_destroy (job_heap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->items);
    free (*self_p);
    *self_p = NULL;
}

static void
s_heap_set (job_heap_t *self, size_t index, job_t *job)
{
    self->items [index] = job;
    job->heap_index = index;
}

static void
s_sift_up (job_heap_t *self, size_t index)
{
    job_t *job = self->items [index];
    while (index > 0) {
        size_t parent = (index - 1) / 2;
        if (self->items [parent]->due <= job->due)
            break;
        s_heap_set (self, index, self->items [parent]);
        index = parent;
    }
    s_heap_set (self, index, job);
}

static void
s_sift_down (job_heap_t *self, size_t index)
{
    job_t *job = self->items [index];
    while (true) {
        size_t child = 2 * index + 1;
        if (child >= self->count)
            break;
        if (child + 1 < self->count && self->items [child + 1]->due < self->items [child]->due)
            child++;
        if (job->due <= self->items [child]->due)
            break;
        s_heap_set (self, index, self->items [child]);
        index = child;
    }
    s_heap_set (self, index, job);
}

int
job_heap_push (job_heap_t *self, job_t *job)
{
    if (job->heap_index != JOB_NOT_IN_HEAP)
        job_heap_remove (self, job);
    if (self->count == self->cap) {
        size_t cap = self->cap? self->cap * 2: 1024;
        job_t **items = realloc (self->items, cap * sizeof (job_t *));
        if (!items)
            return -1;
        self->items = items;
        self->cap = cap;
    }
    self->items [self->count] = job;
    job->heap_index = self->count++;
    s_sift_up (self, job->heap_index);
    return 0;
}

void
job_heap_remove (job_heap_t *self, job_t *job)
{
    size_t index = job->heap_index;
    if (index == JOB_NOT_IN_HEAP)
        return;
    job->heap_index = JOB_NOT_IN_HEAP;
    job_t *last = self->items [--self->count];
    if (index == self->count)
        return;
    self->items [index] = last;
    last->heap_index = index;
    s_sift_up (self, index);
    s_sift_down (self, last->heap_index);
}

job_t *
job_heap_peek (job_heap_t *self)
{
    return self->count? self->items [0]: NULL;
}

size_t
job_heap_size (job_heap_t *self)
{
    return self->count;
}
