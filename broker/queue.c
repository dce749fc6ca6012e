/*  queue.c - ready lists per priority and the queue's worker set.  */
#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

queue_t *
queue_new (const char *name)
{
    queue_t *self = calloc (1, sizeof *self);
    if (self) {
        snprintf (self->name, sizeof self->name, "%s", name);
        prom_histogram_init_job (&self->wait_s);
        prom_histogram_init_job (&self->run_s);
    }
    return self;
}

void
queue_destroy (queue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->workers);
    free (*self_p);
    *self_p = NULL;
}

void
job_list_append (job_list_t *list, job_t *job)
{
    job->next = NULL;
    job->prev = list->tail;
    if (list->tail)
        list->tail->next = job;
    else
        list->head = job;
    list->tail = job;
}

void
job_list_unlink (job_list_t *list, job_t *job)
{
    if (job->prev)
        job->prev->next = job->next;
    else
        list->head = job->next;
    if (job->next)
        job->next->prev = job->prev;
    else
        list->tail = job->prev;
    job->prev = job->next = NULL;
}

void
queue_push (queue_t *self, job_t *job)
{
    job_list_append (&self->levels [job->priority], job);
    self->ready++;
}

job_t *
queue_pop (queue_t *self)
{
    if (!self->ready)
        return NULL;
    for (int level = QUEUE_LEVELS - 1; level >= 0; level--) {
        job_t *job = self->levels [level].head;
        if (job) {
            job_list_unlink (&self->levels [level], job);
            self->ready--;
            return job;
        }
    }
    return NULL;
}

void
queue_unlink (queue_t *self, job_t *job)
{
    job_list_unlink (&self->levels [job->priority], job);
    self->ready--;
}

int
queue_add_worker (queue_t *self, peer_t *worker)
{
    for (size_t i = 0; i < self->worker_count; i++)
        if (self->workers [i] == worker)
            return 0;
    if (self->worker_count == self->worker_cap) {
        size_t cap = self->worker_cap? self->worker_cap * 2: 8;
        peer_t **workers = realloc (self->workers, cap * sizeof (peer_t *));
        if (!workers)
            return -1;
        self->workers = workers;
        self->worker_cap = cap;
    }
    self->workers [self->worker_count++] = worker;
    return 0;
}

void
queue_remove_worker (queue_t *self, peer_t *worker)
{
    for (size_t i = 0; i < self->worker_count; i++)
        if (self->workers [i] == worker) {
            memmove (&self->workers [i], &self->workers [i + 1],
                     (self->worker_count - i - 1) * sizeof (peer_t *));
            self->worker_count--;
            if (self->next_worker > i)
                self->next_worker--;
            break;
        }
}
