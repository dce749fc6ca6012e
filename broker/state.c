/*  state.c - shared-state namespaces (see state.h).  */
#include "state.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

//  Journal overhead per entry and per namespace (framing, fixed fields),
//  so the compaction trigger sees roughly what a rewrite would cost
#define ENTRY_OVERHEAD 40
#define NS_OVERHEAD 24

struct _state_t {
    zhashx_t *spaces;           //  name -> state_ns_t
    uint64_t bytes;             //  see state_bytes()
};

static void
s_entry_free (state_entry_t *entry)
{
    zmq_msg_close (&entry->value);
    free (entry->key);
    free (entry);
}

static void
s_ns_destroy (state_ns_t **ns_p)
{
    state_ns_t *ns = *ns_p;
    if (!ns)
        return;
    for (size_t i = 0; i < ns->count; i++)
        s_entry_free (ns->entries [i]);
    free (ns->entries);
    free (ns->name);
    free (ns);
    *ns_p = NULL;
}

state_t *
state_new (void)
{
    state_t *self = (state_t *) calloc (1, sizeof (state_t));
    if (!self)
        return NULL;
    self->spaces = zhashx_new ();
    if (!self->spaces) {
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->spaces, (zhashx_destructor_fn *) s_ns_destroy);
    return self;
}

void
state_destroy (state_t **self_p)
{
    state_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->spaces);
    free (self);
    *self_p = NULL;
}

state_ns_t *
state_ns_find (state_t *self, const char *name)
{
    return (state_ns_t *) zhashx_lookup (self->spaces, name);
}

state_ns_t *
state_ns_require (state_t *self, const char *name)
{
    state_ns_t *ns = state_ns_find (self, name);
    if (ns)
        return ns;
    ns = (state_ns_t *) calloc (1, sizeof (state_ns_t));
    if (!ns || !(ns->name = strdup (name))) {
        free (ns);
        return NULL;
    }
    if (zhashx_insert (self->spaces, name, ns)) {
        s_ns_destroy (&ns);
        return NULL;
    }
    self->bytes += NS_OVERHEAD + strlen (name);
    return ns;
}

state_ns_t *
state_ns_first (state_t *self)
{
    return (state_ns_t *) zhashx_first (self->spaces);
}

state_ns_t *
state_ns_next (state_t *self)
{
    return (state_ns_t *) zhashx_next (self->spaces);
}

//  Bytewise order; on a common prefix the shorter key comes first, so a
//  prefix's matches form one contiguous run.
static int
s_compare (const uint8_t *a, size_t a_size, const uint8_t *b, size_t b_size)
{
    size_t n = a_size < b_size? a_size: b_size;
    int rc = n? memcmp (a, b, n): 0;
    if (rc)
        return rc;
    return a_size < b_size? -1: a_size > b_size? 1: 0;
}

size_t
state_lower_bound (const state_ns_t *ns, const uint8_t *key, size_t key_size)
{
    size_t low = 0, high = ns->count;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        const state_entry_t *entry = ns->entries [mid];
        if (s_compare (entry->key, entry->key_size, key, key_size) < 0)
            low = mid + 1;
        else
            high = mid;
    }
    return low;
}

state_entry_t *
state_get (const state_ns_t *ns, const uint8_t *key, size_t key_size)
{
    size_t at = state_lower_bound (ns, key, key_size);
    if (at < ns->count) {
        state_entry_t *entry = ns->entries [at];
        if (s_compare (entry->key, entry->key_size, key, key_size) == 0)
            return entry;
    }
    return NULL;
}

state_entry_t *
state_put (state_t *self, state_ns_t *ns, const uint8_t *key, size_t key_size,
           uint64_t version, zmq_msg_t *value)
{
    size_t at = state_lower_bound (ns, key, key_size);
    state_entry_t *entry = NULL;
    if (at < ns->count
    &&  s_compare (ns->entries [at]->key, ns->entries [at]->key_size, key, key_size) == 0) {
        entry = ns->entries [at];
        self->bytes -= zmq_msg_size (&entry->value);
        zmq_msg_close (&entry->value);
    }
    else {
        if (ns->count == ns->cap) {
            size_t cap = ns->cap? ns->cap * 2: 16;
            state_entry_t **entries = realloc (ns->entries, cap * sizeof *entries);
            if (!entries)
                return NULL;
            ns->entries = entries;
            ns->cap = cap;
        }
        entry = (state_entry_t *) calloc (1, sizeof (state_entry_t));
        if (!entry || !(entry->key = malloc (key_size))) {
            free (entry);
            return NULL;
        }
        memcpy (entry->key, key, key_size);
        entry->key_size = key_size;
        memmove (ns->entries + at + 1, ns->entries + at, (ns->count - at) * sizeof *ns->entries);
        ns->entries [at] = entry;
        ns->count++;
        self->bytes += ENTRY_OVERHEAD + key_size;
    }
    zmq_msg_init (&entry->value);
    zmq_msg_move (&entry->value, value);
    entry->version = version;
    self->bytes += zmq_msg_size (&entry->value);
    return entry;
}

void
state_remove (state_t *self, state_ns_t *ns, const uint8_t *key, size_t key_size)
{
    size_t at = state_lower_bound (ns, key, key_size);
    if (at == ns->count)
        return;
    state_entry_t *entry = ns->entries [at];
    if (s_compare (entry->key, entry->key_size, key, key_size))
        return;
    self->bytes -= ENTRY_OVERHEAD + key_size + zmq_msg_size (&entry->value);
    s_entry_free (entry);
    memmove (ns->entries + at, ns->entries + at + 1, (ns->count - at - 1) * sizeof *ns->entries);
    ns->count--;
}

bool
state_has_prefix (const state_entry_t *entry, const uint8_t *prefix, size_t prefix_size)
{
    return entry->key_size >= prefix_size
        && (prefix_size == 0 || memcmp (entry->key, prefix, prefix_size) == 0);
}

uint64_t
state_bytes (state_t *self)
{
    return self->bytes;
}
