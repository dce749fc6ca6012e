/*  idmap.h - hash table from 16-byte job ids to pointers (internal).

    Open addressing with linear probing and backward-shift deletion, so
    there are no tombstones and lookups stay short under churn. Job ids are
    random, so their first eight bytes are already a good hash. Not
    thread-safe: one owner thread.
*/
#ifndef DRV_IDMAP_H_INCLUDED
#define DRV_IDMAP_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

typedef struct _drv_idmap_t drv_idmap_t;

drv_idmap_t *drv_idmap_new (void);
//  Frees the table, not the values.
void drv_idmap_destroy (drv_idmap_t **self_p);
//  Value stored for id, or NULL.
void *drv_idmap_get (drv_idmap_t *self, const uint8_t *id);
//  Stores value (not NULL) for id, replacing any earlier one. Returns 0, or
//  -1 when out of memory.
int drv_idmap_put (drv_idmap_t *self, const uint8_t *id, void *value);
//  Removes id; returns its value or NULL.
void *drv_idmap_remove (drv_idmap_t *self, const uint8_t *id);
size_t drv_idmap_size (drv_idmap_t *self);
//  Calls fn for every entry; fn must not change the table.
void drv_idmap_each (drv_idmap_t *self, void (*fn) (const uint8_t *id, void *value, void *arg), void *arg);

#endif
