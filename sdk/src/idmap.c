/*  idmap.c - 16-byte id -> pointer hash table (internal).  */
#include "idmap.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t id [16];        //  key
    void *value;            //  NULL marks an empty slot
} slot_t;

struct _drv_idmap_t {
    slot_t *slots;          //  capacity entries
    size_t capacity;        //  power of two
    size_t size;            //  entries in use
};

#define IDMAP_MIN 64

static size_t
s_hash (const uint8_t *id)
{
    uint64_t h;
    memcpy (&h, id, sizeof h);
    //  Ids are random but a caller may use patterned ones; mix anyway
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (size_t) h;
}

drv_idmap_t *
drv_idmap_new (void)
{
    drv_idmap_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->slots = calloc (IDMAP_MIN, sizeof (slot_t));
    if (!self->slots) {
        free (self);
        return NULL;
    }
    self->capacity = IDMAP_MIN;
    return self;
}

void
drv_idmap_destroy (drv_idmap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->slots);
    free (*self_p);
    *self_p = NULL;
}

static slot_t *
s_find (drv_idmap_t *self, const uint8_t *id)
{
    size_t mask = self->capacity - 1;
    for (size_t i = s_hash (id) & mask; ; i = (i + 1) & mask) {
        slot_t *slot = &self->slots [i];
        if (!slot->value || memcmp (slot->id, id, 16) == 0)
            return slot;
    }
}

static int
s_grow (drv_idmap_t *self)
{
    size_t old_capacity = self->capacity;
    slot_t *old = self->slots;
    slot_t *fresh = calloc (old_capacity * 2, sizeof (slot_t));
    if (!fresh)
        return -1;
    self->slots = fresh;
    self->capacity = old_capacity * 2;
    for (size_t i = 0; i < old_capacity; i++)
        if (old [i].value)
            *s_find (self, old [i].id) = old [i];
    free (old);
    return 0;
}

void *
drv_idmap_get (drv_idmap_t *self, const uint8_t *id)
{
    return s_find (self, id)->value;
}

int
drv_idmap_put (drv_idmap_t *self, const uint8_t *id, void *value)
{
    //  Keep the load under 3/4 so probes stay short
    if ((self->size + 1) * 4 > self->capacity * 3 && s_grow (self))
        return -1;
    slot_t *slot = s_find (self, id);
    if (!slot->value) {
        memcpy (slot->id, id, 16);
        self->size++;
    }
    slot->value = value;
    return 0;
}

void *
drv_idmap_remove (drv_idmap_t *self, const uint8_t *id)
{
    slot_t *slot = s_find (self, id);
    void *value = slot->value;
    if (!value)
        return NULL;
    self->size--;
    //  Backward-shift: pull later members of the probe run into the hole
    size_t mask = self->capacity - 1;
    size_t hole = (size_t) (slot - self->slots);
    size_t i = hole;
    while (true) {
        i = (i + 1) & mask;
        slot_t *next = &self->slots [i];
        if (!next->value)
            break;
        size_t home = s_hash (next->id) & mask;
        //  next may move into the hole only if its home is not in (hole, i]
        bool movable = hole <= i? (home <= hole || home > i): (home <= hole && home > i);
        if (movable) {
            self->slots [hole] = *next;
            hole = i;
        }
    }
    self->slots [hole].value = NULL;
    return value;
}

size_t
drv_idmap_size (drv_idmap_t *self)
{
    return self->size;
}

void
drv_idmap_each (drv_idmap_t *self, void (*fn) (const uint8_t *id, void *value, void *arg), void *arg)
{
    for (size_t i = 0; i < self->capacity; i++)
        if (self->slots [i].value)
            fn (self->slots [i].id, self->slots [i].value, arg);
}
