/*  replica.c - drover_replica_t: a local, read-fast copy of state namespaces.

    The Clone pattern with per-namespace sequences. The replica has its own
    thread and ZeroMQ context with one SUB socket connected (with the
    client's CURVE keys) to the broker's state PUB socket. To track a
    namespace the thread subscribes to "ns\0" first, waits for the
    subscriber's handshake, then takes a SNAPSHOT through the client. While
    that request is in flight the updates wait in the SUB socket's queue;
    afterwards the thread drops those at or below the snapshot's sequence
    and applies the rest in order. An update whose sequence is not the last
    one plus one (a gap: missed updates, or a broker that restarted and
    counts again) makes the thread take a fresh snapshot by itself, as does
    a re-hello to a broker with a new broker_id (the client raises our wake
    signal). Watchers are told of every change, including the differences
    a fresh snapshot brings.

    The local store is a hash table per namespace guarded by the replica's
    lock; only the replica thread changes it, so the thread may read it
    without the lock (and so runs watch callbacks without holding it).
*/
#include "common.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_component = "replica";

//  Store ------------------------------------------------------------------

typedef struct _entry_t entry_t;
struct _entry_t {
    char *key;                  //  NUL-terminated
    size_t key_size;            //  its length
    void *value;                //  NUL-terminated copy
    size_t size;                //  its size (without the NUL)
    uint64_t version;           //  key's version
    uint64_t hash;              //  of key
    entry_t *next;              //  bucket chain
};

typedef struct {
    entry_t **buckets;          //  chains
    size_t bucket_count;        //  power of two
    size_t count;               //  entries
} store_t;

static uint64_t
s_hash (const char *key, size_t size)
{
    uint64_t hash = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++) {
        hash ^= (unsigned char) key [i];
        hash *= 1099511628211ull;
    }
    return hash;
}

static void
s_entry_free (entry_t *entry)
{
    free (entry->key);
    free (entry->value);
    free (entry);
}

static void
s_store_clear (store_t *self)
{
    for (size_t i = 0; i < self->bucket_count; i++)
        for (entry_t *entry = self->buckets [i], *next; entry; entry = next) {
            next = entry->next;
            s_entry_free (entry);
        }
    free (self->buckets);
    memset (self, 0, sizeof *self);
}

static entry_t *
s_store_find (store_t *self, const char *key, size_t key_size)
{
    if (!self->bucket_count)
        return NULL;
    uint64_t hash = s_hash (key, key_size);
    for (entry_t *entry = self->buckets [hash & (self->bucket_count - 1)]; entry; entry = entry->next)
        if (entry->hash == hash && entry->key_size == key_size && memcmp (entry->key, key, key_size) == 0)
            return entry;
    return NULL;
}

static int
s_store_grow (store_t *self)
{
    if (self->count < self->bucket_count * 3 / 4 && self->bucket_count)
        return 0;
    size_t count = self->bucket_count? self->bucket_count * 2: 64;
    entry_t **buckets = calloc (count, sizeof *buckets);
    if (!buckets)
        return -1;
    for (size_t i = 0; i < self->bucket_count; i++)
        for (entry_t *entry = self->buckets [i], *next; entry; entry = next) {
            next = entry->next;
            entry->next = buckets [entry->hash & (count - 1)];
            buckets [entry->hash & (count - 1)] = entry;
        }
    free (self->buckets);
    self->buckets = buckets;
    self->bucket_count = count;
    return 0;
}

//  Sets key to a copy of value (NULL value: removes it). Returns 0 or -1.
static int
s_store_put (store_t *self, const char *key, size_t key_size, const void *value, size_t size,
             uint64_t version)
{
    entry_t *entry = s_store_find (self, key, key_size);
    if (!value) {
        if (entry) {
            entry_t **link = &self->buckets [entry->hash & (self->bucket_count - 1)];
            while (*link != entry)
                link = &(*link)->next;
            *link = entry->next;
            s_entry_free (entry);
            self->count--;
        }
        return 0;
    }
    void *copy = malloc (size + 1);
    if (!copy)
        return -1;
    if (size)
        memcpy (copy, value, size);
    ((char *) copy) [size] = 0;
    if (!entry) {
        if (s_store_grow (self))
            goto fail;
        entry = calloc (1, sizeof *entry);
        if (!entry)
            goto fail;
        entry->key = malloc (key_size + 1);
        if (!entry->key) {
            free (entry);
            goto fail;
        }
        memcpy (entry->key, key, key_size);
        entry->key [key_size] = 0;
        entry->key_size = key_size;
        entry->hash = s_hash (key, key_size);
        entry->next = self->buckets [entry->hash & (self->bucket_count - 1)];
        self->buckets [entry->hash & (self->bucket_count - 1)] = entry;
        self->count++;
    }
    free (entry->value);
    entry->value = copy;
    entry->size = size;
    entry->version = version;
    return 0;
fail:
    free (copy);
    return -1;
}

//  Replica ----------------------------------------------------------------

typedef struct _watch_t watch_t;
struct _watch_t {
    char *ns;                   //  namespace watched
    char *prefix;               //  key prefix ("" = all)
    size_t prefix_size;         //  its length
    drover_watch_fn *fn;        //  callback
    void *arg;                  //  its argument
    watch_t *_Atomic next;      //  list (appended under the lock, read without)
};

typedef struct _ns_t ns_t;
struct _ns_t {
    char name [DRV_QUEUE_NAME_MAX + 1];  //  namespace
    char topic [DRV_QUEUE_NAME_MAX + 2]; //  name plus its zero byte
    size_t topic_size;          //  length of topic, with the zero byte
    store_t store;              //  local copy (written by the thread, lock held)
    uint64_t seq;               //  last applied sequence (lock held to write)
    bool ready;                 //  first snapshot in (lock)
    int err;                    //  first snapshot failed with this (lock)
    //  Replica thread only
    bool subscribed;            //  SUB subscription made
    bool stale;                 //  needs a (fresh) snapshot
    bool fresh;                 //  nothing applied since the snapshot
    bool dead;                  //  refused for good (denied, invalid): ignored
    ns_t *_Atomic next;         //  list (appended under the lock, read without)
};

struct _drover_replica_t {
    drover_client_t *client;    //  for snapshots (not owned)
    void *ctx;                  //  our own ZeroMQ context
    pthread_t thread;           //  the replica thread
    bool thread_started;        //  joined on destroy
    drv_signal_t wake;          //  new namespaces, broker restart, destroy
    atomic_bool stop;           //  destroy has begun
    pthread_mutex_t lock;       //  guards namespaces and watches
    pthread_cond_t cond;        //  a first snapshot finished
    ns_t *_Atomic namespaces;   //  tracked (append only until destroy)
    watch_t *_Atomic watches;   //  watchers (append only until destroy)
    //  Replica thread only
    void *sub;                  //  SUB to the state PUB, or NULL
    void *monitor;              //  PAIR for the SUB's handshake, or NULL
    bool handshaken;            //  the SUB completed a handshake
    unsigned port;              //  state port the SUB uses
    unsigned epoch;             //  client epoch last seen
    drv_codec_t *codec;         //  decodes updates
    drv_frames_t frames;        //  last update received
    int timeout_ms;             //  snapshot and handshake bound
};

static ns_t *
s_ns_find (drover_replica_t *self, const char *name)
{
    for (ns_t *ns = self->namespaces; ns; ns = ns->next)
        if (strcmp (ns->name, name) == 0)
            return ns;
    return NULL;
}

//  Runs the callbacks watching ns/key. Thread only, lock not held.
static void
s_notify (drover_replica_t *self, ns_t *ns, const char *key, size_t key_size,
          const void *value, size_t size, uint64_t version)
{
    //  Watchers are only ever appended: take the head under the lock and
    //  walk the links, each written before it was published
    pthread_mutex_lock (&self->lock);
    watch_t *watches = self->watches;
    pthread_mutex_unlock (&self->lock);
    for (watch_t *watch = watches; watch; watch = watch->next) {
        if (strcmp (watch->ns, ns->name) || watch->prefix_size > key_size
        ||  memcmp (watch->prefix, key, watch->prefix_size))
            continue;
        watch->fn (ns->name, key, value, size, version, watch->arg);
    }
}

//  Opens the SUB socket on the broker's state port. Returns 0 or -1.
static int
s_sub_open (drover_replica_t *self)
{
    static atomic_uint s_sequence;
    const drv_keys_t *keys;
    const drv_config_t *config = drv_client_config (self->client, &keys);
    self->port = drv_client_state_port (self->client);
    if (!self->port) {
        drv_log (DRV_LOG_ERROR, s_component, "the broker announces no state port");
        return -1;
    }
    //  Same host as the broker endpoint, the state port instead
    const char *endpoint = config->endpoint;
    const char *colon = strrchr (endpoint, ':');
    if (strncmp (endpoint, "tcp://", 6) || !colon || colon < endpoint + 6) {
        drv_log (DRV_LOG_ERROR, s_component, "cannot derive the state endpoint from %s", endpoint);
        return -1;
    }
    char state_ep [512];
    snprintf (state_ep, sizeof state_ep, "%.*s:%u", (int) (colon - endpoint), endpoint, self->port);
    self->sub = zmq_socket (self->ctx, ZMQ_SUB);
    if (!self->sub)
        return -1;
    int value = 0;
    zmq_setsockopt (self->sub, ZMQ_LINGER, &value, sizeof value);
    value = DRV_HWM;
    zmq_setsockopt (self->sub, ZMQ_RCVHWM, &value, sizeof value);
    value = DRV_RECONNECT_IVL_MS;
    zmq_setsockopt (self->sub, ZMQ_RECONNECT_IVL, &value, sizeof value);
    value = DRV_RECONNECT_MAX_MS;
    zmq_setsockopt (self->sub, ZMQ_RECONNECT_IVL_MAX, &value, sizeof value);
    if (keys->curve) {
        zmq_setsockopt (self->sub, ZMQ_CURVE_SERVERKEY, keys->server_txt, 40);
        zmq_setsockopt (self->sub, ZMQ_CURVE_PUBLICKEY, keys->public_txt, 40);
        zmq_setsockopt (self->sub, ZMQ_CURVE_SECRETKEY, keys->secret_txt, 40);
    }
    char monitor_ep [64];
    snprintf (monitor_ep, sizeof monitor_ep, "inproc://drover-replica-%u",
              atomic_fetch_add (&s_sequence, 1));
    if (zmq_socket_monitor (self->sub, monitor_ep, ZMQ_EVENT_HANDSHAKE_SUCCEEDED) == 0) {
        self->monitor = zmq_socket (self->ctx, ZMQ_PAIR);
        if (self->monitor && zmq_connect (self->monitor, monitor_ep)) {
            zmq_close (self->monitor);
            self->monitor = NULL;
        }
        if (!self->monitor)
            zmq_socket_monitor (self->sub, NULL, 0);
    }
    self->handshaken = false;
    if (zmq_connect (self->sub, state_ep)) {
        drv_log (DRV_LOG_ERROR, s_component, "cannot connect to %s: %s", state_ep, zmq_strerror (errno));
        return -1;
    }
    return 0;
}

static void
s_sub_close (drover_replica_t *self)
{
    if (self->monitor) {
        zmq_socket_monitor (self->sub, NULL, 0);
        zmq_close (self->monitor);
        self->monitor = NULL;
    }
    if (self->sub) {
        zmq_close (self->sub);
        self->sub = NULL;
    }
    for (ns_t *ns = self->namespaces; ns; ns = ns->next)
        ns->subscribed = false;
}

//  Waits (bounded) for the subscriber's first handshake, so that our
//  subscriptions are on their way before we take a snapshot. A late
//  subscription only costs a resnapshot at the next update.
static void
s_sub_wait_handshake (drover_replica_t *self)
{
    if (self->handshaken || !self->monitor)
        return;
    uint64_t until = drv_now_ms () + (uint64_t) self->timeout_ms;
    while (!self->handshaken && !atomic_load (&self->stop)) {
        uint64_t now = drv_now_ms ();
        if (now >= until)
            break;
        //  Short slices so that destroy is not held up
        long slice = until - now < 100? (long) (until - now): 100;
        zmq_pollitem_t item = {self->monitor, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, slice) <= 0)
            continue;
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        while (zmq_msg_recv (&frame, self->monitor, ZMQ_DONTWAIT) >= 0)
            if (!zmq_msg_more (&frame))
                self->handshaken = true;    //  a whole event: the handshake
        zmq_msg_close (&frame);
    }
}

typedef struct {
    const char *key;            //  key (NUL-terminated)
    size_t key_size;            //  its length
} keyref_t;

//  Takes a snapshot of ns and puts it in place of the local copy; tells
//  watchers what changed (except on the first snapshot). Returns 0 or an
//  error (the copy is left as it was).
static int
s_snapshot (drover_replica_t *self, ns_t *ns)
{
    drover_state_entry_t *entries = NULL;
    size_t count = 0;
    uint64_t seq = 0;
    int rc = drv_client_snapshot (self->client, ns->name, &entries, &count, &seq, self->timeout_ms);
    if (rc) {
        drv_log (DRV_LOG_WARN, s_component, "snapshot of %s failed: %s", ns->name, drover_strerror (rc));
        return rc;
    }
    store_t fresh = {NULL, 0, 0};
    for (size_t i = 0; i < count; i++)
        if (s_store_put (&fresh, entries [i].key, strlen (entries [i].key), entries [i].value,
                         entries [i].size, entries [i].version)) {
            s_store_clear (&fresh);
            drover_state_entries_free (entries, count);
            return DROVER_ENOMEM;
        }
    pthread_mutex_lock (&self->lock);
    bool first = !ns->ready;
    store_t old = ns->store;
    ns->store = fresh;
    ns->seq = seq;
    pthread_mutex_unlock (&self->lock);
    ns->stale = false;
    ns->fresh = true;
    if (!first) {
        //  What changed while we were not following: new or changed keys,
        //  then keys gone
        for (size_t i = 0; i < count; i++) {
            size_t key_size = strlen (entries [i].key);
            entry_t *was = s_store_find (&old, entries [i].key, key_size);
            if (!was || was->version != entries [i].version) {
                entry_t *now = s_store_find (&ns->store, entries [i].key, key_size);
                s_notify (self, ns, now->key, now->key_size, now->value, now->size, now->version);
            }
        }
        for (size_t b = 0; b < old.bucket_count; b++)
            for (entry_t *was = old.buckets [b]; was; was = was->next)
                if (!s_store_find (&ns->store, was->key, was->key_size))
                    s_notify (self, ns, was->key, was->key_size, NULL, 0, 0);
    }
    s_store_clear (&old);
    drover_state_entries_free (entries, count);
    return 0;
}

//  Subscribes and snapshots the namespaces that need it. Returns false if
//  some snapshot failed (retried later).
static bool
s_sync (drover_replica_t *self)
{
    pthread_mutex_lock (&self->lock);
    ns_t *list = self->namespaces;
    pthread_mutex_unlock (&self->lock);
    if (!self->sub && list && s_sub_open (self)) {
        s_sub_close (self);
        //  Nothing to follow: fail first snapshots now
        pthread_mutex_lock (&self->lock);
        for (ns_t *ns = list; ns; ns = ns->next)
            if (!ns->ready && !ns->err)
                ns->err = DROVER_EUNREACHABLE;
        pthread_cond_broadcast (&self->cond);
        pthread_mutex_unlock (&self->lock);
        return false;
    }
    bool ok = true;
    for (ns_t *ns = list; ns; ns = ns->next)
        if (!ns->subscribed) {
            zmq_setsockopt (self->sub, ZMQ_SUBSCRIBE, ns->topic, ns->topic_size);
            ns->subscribed = true;
            ns->stale = true;
        }
    for (ns_t *ns = list; ns && !atomic_load (&self->stop); ns = ns->next) {
        if (!ns->stale || ns->dead)
            continue;
        s_sub_wait_handshake (self);
        int rc = s_snapshot (self, ns);
        pthread_mutex_lock (&self->lock);
        if (rc == 0) {
            ns->ready = true;
            ns->err = 0;
        }
        else {
            ok = false;
            if (!ns->ready)
                ns->err = rc;
            if (rc == DROVER_EDENIED || rc == DROVER_EINVAL) {
                ns->dead = true;
                ns->stale = false;
            }
        }
        pthread_cond_broadcast (&self->cond);
        pthread_mutex_unlock (&self->lock);
    }
    return ok;
}

//  Applies one update from the SUB socket.
static void
s_on_update (drover_replica_t *self)
{
    drv_frames_t *frames = &self->frames;
    if (frames->count != 3)
        return;
    drv_msg_t msg;
    if (drv_codec_decode (self->codec, zmq_msg_data (&frames->msg [1]),
                          zmq_msg_size (&frames->msg [1]), &msg)
    ||  msg.cmd != DRV_CMD_STATE_UPDATE) {
        drv_log (DRV_LOG_WARN, s_component, "dropped a malformed state update");
        return;
    }
    ns_t *ns = NULL;
    for (ns_t *each = self->namespaces; each; each = each->next)
        if (strcmp (each->name, msg.update.ns) == 0)
            ns = each;
    if (!ns || !ns->ready || ns->stale || ns->dead)
        return;
    if (msg.update.key_size == 0) {
        //  A beacon: the namespace's current sequence, sent while quiet.
        //  Ahead of us means we lost updates; behind us, the broker lost
        //  its state (restart without a journal)
        if (msg.update.seq != ns->seq && !(ns->fresh && msg.update.seq < ns->seq)) {
            drv_log (DRV_LOG_INFO, s_component, "%s: broker is at %llu, we are at %llu; "
                     "taking a fresh snapshot", ns->name, (unsigned long long) msg.update.seq,
                     (unsigned long long) ns->seq);
            ns->stale = true;
        }
        return;
    }
    if (msg.update.seq <= ns->seq) {
        //  Right after a snapshot: already in it. Otherwise the broker
        //  counts again from the start: it restarted without its state
        if (!ns->fresh)
            ns->stale = true;
        return;
    }
    if (msg.update.seq != ns->seq + 1) {
        drv_log (DRV_LOG_INFO, s_component, "%s: update %llu after %llu; taking a fresh snapshot",
                 ns->name, (unsigned long long) msg.update.seq, (unsigned long long) ns->seq);
        ns->stale = true;
        return;
    }
    if (msg.update.key_size == 0 || memchr (msg.update.key, 0, msg.update.key_size))
        return;
    //  Keys are C strings: keep a NUL-terminated copy for the callbacks
    char *key = malloc (msg.update.key_size + 1);
    if (!key) {
        ns->stale = true;
        return;
    }
    memcpy (key, msg.update.key, msg.update.key_size);
    key [msg.update.key_size] = 0;
    zmq_msg_t *value = &frames->msg [2];
    pthread_mutex_lock (&self->lock);
    int rc = s_store_put (&ns->store, key, msg.update.key_size,
                          msg.update.deleted? NULL: zmq_msg_data (value), zmq_msg_size (value),
                          msg.update.version);
    if (rc == 0)
        ns->seq = msg.update.seq;
    pthread_mutex_unlock (&self->lock);
    if (rc) {
        ns->stale = true;
        free (key);
        return;
    }
    ns->fresh = false;
    if (msg.update.deleted)
        s_notify (self, ns, key, msg.update.key_size, NULL, 0, msg.update.version);
    else {
        entry_t *entry = s_store_find (&ns->store, key, msg.update.key_size);
        s_notify (self, ns, key, msg.update.key_size, entry->value, entry->size, entry->version);
    }
    free (key);
}

static bool
s_any_stale (drover_replica_t *self)
{
    pthread_mutex_lock (&self->lock);
    ns_t *list = self->namespaces;
    pthread_mutex_unlock (&self->lock);
    for (ns_t *ns = list; ns; ns = ns->next)
        if (!ns->dead && (ns->stale || !ns->subscribed))
            return true;
    return false;
}

static void *
s_thread (void *arg)
{
    drover_replica_t *self = (drover_replica_t *) arg;
    while (!atomic_load (&self->stop)) {
        //  A broker with a new identity: follow its (maybe new) port and
        //  take everything afresh
        unsigned epoch = drv_client_epoch (self->client);
        if (epoch != self->epoch) {
            self->epoch = epoch;
            if (self->sub && drv_client_state_port (self->client) != self->port)
                s_sub_close (self);
            pthread_mutex_lock (&self->lock);
            for (ns_t *ns = self->namespaces; ns; ns = ns->next)
                ns->stale = true;
            pthread_mutex_unlock (&self->lock);
        }
        bool synced = true;
        if (s_any_stale (self))
            synced = s_sync (self);
        //  Updates that came in meanwhile come first, in order
        while (self->sub && drv_frames_recv (self->sub, &self->frames, ZMQ_DONTWAIT, 4) >= 0)
            s_on_update (self);
        if (synced && self->sub && s_any_stale (self))
            continue;           //  a gap: take the snapshot now
        zmq_pollitem_t items [2] = {
            {NULL, self->wake.rfd, ZMQ_POLLIN, 0},
            {self->sub, 0, ZMQ_POLLIN, 0}
        };
        //  A failed snapshot is retried after a pause, not in a loop
        long timeout = synced? -1: 1000;
        zmq_poll (items, self->sub? 2: 1, timeout);
        if (items [0].revents & ZMQ_POLLIN)
            drv_signal_drain (&self->wake);
    }
    return NULL;
}

//  Public API ----------------------------------------------------------

drover_replica_t *
drover_replica_new (drover_client_t *client)
{
    if (!client)
        return NULL;
    drover_replica_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->client = client;
    const drv_config_t *config = drv_client_config (client, NULL);
    self->timeout_ms = config->timeout_ms > 0? config->timeout_ms: DRV_DEFAULT_TIMEOUT_MS;
    self->epoch = drv_client_epoch (client);
    pthread_mutex_init (&self->lock, NULL);
    drv_cond_init (&self->cond);
    drv_frames_init (&self->frames);
    self->wake.rfd = self->wake.wfd = -1;
    if (!drv_client_state_port (client)) {
        drv_log (DRV_LOG_ERROR, s_component, "the broker has no state channel (Welcome.state_port is 0)");
        goto fail;
    }
    self->ctx = zmq_ctx_new ();
    self->codec = drv_codec_new ();
    if (!self->ctx || !self->codec || drv_signal_init (&self->wake))
        goto fail;
    if (drv_client_restart_hook (client, &self->wake, true)) {
        drv_log (DRV_LOG_ERROR, s_component, "too many replicas on one client");
        goto fail;
    }
    if (pthread_create (&self->thread, NULL, s_thread, self)) {
        drv_client_restart_hook (client, &self->wake, false);
        goto fail;
    }
    self->thread_started = true;
    return self;
fail:
    drover_replica_destroy (&self);
    return NULL;
}

void
drover_replica_destroy (drover_replica_t **replica_p)
{
    if (!replica_p || !*replica_p)
        return;
    drover_replica_t *self = *replica_p;
    *replica_p = NULL;
    if (self->thread_started) {
        drv_client_restart_hook (self->client, &self->wake, false);
        atomic_store (&self->stop, true);
        drv_signal_post (&self->wake);
        pthread_join (self->thread, NULL);
    }
    s_sub_close (self);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    drv_codec_destroy (&self->codec);
    drv_frames_destroy (&self->frames);
    if (self->wake.rfd >= 0)
        drv_signal_destroy (&self->wake);
    while (self->namespaces) {
        ns_t *ns = self->namespaces;
        self->namespaces = ns->next;
        s_store_clear (&ns->store);
        free (ns);
    }
    while (self->watches) {
        watch_t *watch = self->watches;
        self->watches = watch->next;
        free (watch->ns);
        free (watch->prefix);
        free (watch);
    }
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->cond);
    free (self);
}

int
drover_replica_track (drover_replica_t *replica, const char *name, int timeout_ms)
{
    if (!replica || !name || !drv_queue_name_valid (name))
        return DROVER_EINVAL;
    pthread_mutex_lock (&replica->lock);
    ns_t *ns = s_ns_find (replica, name);
    if (!ns) {
        ns = calloc (1, sizeof *ns);
        if (!ns) {
            pthread_mutex_unlock (&replica->lock);
            return DROVER_ENOMEM;
        }
        snprintf (ns->name, sizeof ns->name, "%s", name);
        ns->topic_size = strlen (name) + 1;
        memcpy (ns->topic, name, ns->topic_size);     //  with its zero byte
        //  Append, so that the thread may walk the list without the lock
        ns_t *last = replica->namespaces;
        while (last && last->next)
            last = last->next;
        if (last)
            last->next = ns;
        else
            replica->namespaces = ns;
        drv_signal_post (&replica->wake);
    }
    struct timespec deadline;
    if (timeout_ms >= 0)
        drv_deadline (&deadline, timeout_ms);
    int rc = 0;
    while (!ns->ready && !ns->err && rc == 0)
        rc = timeout_ms >= 0? pthread_cond_timedwait (&replica->cond, &replica->lock, &deadline)
                            : pthread_cond_wait (&replica->cond, &replica->lock);
    int err = ns->ready? 0: ns->err? ns->err: DROVER_ETIMEDOUT;
    pthread_mutex_unlock (&replica->lock);
    return err;
}

int
drover_replica_get (drover_replica_t *replica, const char *name, const char *key,
                    void **value_p, size_t *size_p, uint64_t *version_p)
{
    if (!replica || !name || !key)
        return DROVER_EINVAL;
    pthread_mutex_lock (&replica->lock);
    ns_t *ns = s_ns_find (replica, name);
    if (!ns || !ns->ready) {
        pthread_mutex_unlock (&replica->lock);
        return DROVER_EINVAL;
    }
    entry_t *entry = s_store_find (&ns->store, key, strlen (key));
    int rc = entry? 0: DROVER_ENOTFOUND;
    if (entry) {
        if (value_p) {
            *value_p = malloc (entry->size + 1);
            if (*value_p)
                memcpy (*value_p, entry->value, entry->size + 1);
            else
                rc = DROVER_ENOMEM;
        }
        if (size_p)
            *size_p = entry->size;
        if (version_p)
            *version_p = entry->version;
    }
    pthread_mutex_unlock (&replica->lock);
    return rc;
}

uint64_t
drover_replica_seq (drover_replica_t *replica, const char *name)
{
    if (!replica || !name)
        return 0;
    pthread_mutex_lock (&replica->lock);
    ns_t *ns = s_ns_find (replica, name);
    uint64_t seq = ns? ns->seq: 0;
    pthread_mutex_unlock (&replica->lock);
    return seq;
}

int
drover_replica_watch (drover_replica_t *replica, const char *name, const char *prefix,
                      drover_watch_fn *fn, void *arg)
{
    if (!replica || !name || !fn || !drv_queue_name_valid (name))
        return DROVER_EINVAL;
    watch_t *watch = calloc (1, sizeof *watch);
    if (!watch)
        return DROVER_ENOMEM;
    watch->ns = strdup (name);
    watch->prefix = strdup (prefix? prefix: "");
    if (!watch->ns || !watch->prefix) {
        free (watch->ns);
        free (watch->prefix);
        free (watch);
        return DROVER_ENOMEM;
    }
    watch->prefix_size = strlen (watch->prefix);
    watch->fn = fn;
    watch->arg = arg;
    //  Append under the lock; the thread walks links written before
    pthread_mutex_lock (&replica->lock);
    watch_t *last = replica->watches;
    while (last && last->next)
        last = last->next;
    if (last)
        last->next = watch;
    else
        replica->watches = watch;
    pthread_mutex_unlock (&replica->lock);
    return 0;
}
