/*  state.h - shared-state namespaces: named maps of keys to versioned values.

    A namespace holds its entries in one array sorted by key (bytewise,
    shorter first on a common prefix), so GET is a binary search and LIST
    by prefix is a binary search plus a scan of just the matching run;
    other namespaces are never touched. Adding a new key moves the
    pointers after it (memmove), which stays cheap for the sizes a shared
    namespace is meant for (thousands to some hundred thousand keys).

    Values are zmq messages, so a reply or a publish shares the bytes by
    reference count (zmq_msg_copy) instead of copying them.

    Every change takes the next sequence number of its namespace (seq);
    the caller (broker.c) bumps it, since it also journals and publishes.
*/
#ifndef BROKER_STATE_H_INCLUDED
#define BROKER_STATE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

//  Longest key, in bytes
#define STATE_KEY_MAX 1024

typedef struct {
    uint8_t *key;               //  key bytes (owned)
    size_t key_size;            //  their length, 1..STATE_KEY_MAX
    uint64_t version;           //  1 on creation, +1 per change of this key
    zmq_msg_t value;            //  current value (shared on send, never copied)
} state_entry_t;

typedef struct {
    char *name;                 //  namespace name (owned)
    uint64_t seq;               //  sequence number of the last change, 0 = none yet
    state_entry_t **entries;    //  sorted by key
    size_t count;               //  entries in use
    size_t cap;                 //  allocated slots
} state_ns_t;

typedef struct _state_t state_t;

state_t *state_new (void);
void state_destroy (state_t **self_p);

//  The namespace of that name, or NULL.
state_ns_t *state_ns_find (state_t *self, const char *name);
//  Finds or creates it; NULL when out of memory.
state_ns_t *state_ns_require (state_t *self, const char *name);
//  Iteration over all namespaces (any order); NULL at the end.
state_ns_t *state_ns_first (state_t *self);
state_ns_t *state_ns_next (state_t *self);

//  Index of the first entry whose key is >= key (count if none).
size_t state_lower_bound (const state_ns_t *ns, const uint8_t *key, size_t key_size);
//  The entry of that key, or NULL.
state_entry_t *state_get (const state_ns_t *ns, const uint8_t *key, size_t key_size);
//  Sets key to value (moved in, left empty) with that version, creating
//  the entry if needed. Returns the entry, or NULL when out of memory
//  (value is then untouched).
state_entry_t *state_put (state_t *self, state_ns_t *ns, const uint8_t *key, size_t key_size,
                          uint64_t version, zmq_msg_t *value);
//  Removes the key if present.
void state_remove (state_t *self, state_ns_t *ns, const uint8_t *key, size_t key_size);
//  True if the key starts with prefix.
bool state_has_prefix (const state_entry_t *entry, const uint8_t *prefix, size_t prefix_size);

//  Bytes a compacted journal would spend on the whole state (for the
//  compaction trigger).
uint64_t state_bytes (state_t *self);

#endif
