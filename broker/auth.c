/*  auth.c - allow-list, ZAP handler and server certificate.  */
#include "auth.h"
#include "codec.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>

struct _auth_t {
    char *dir;              //  allow-list directory
    zsock_t *zap;           //  REP socket bound to the ZAP endpoint
    zhashx_t *keys;         //  Z85 public key -> auth_key_t
    uint64_t signature;     //  of the directory's listing at the last load
    uint64_t generation;    //  loads so far
    uint64_t removals;      //  loads that dropped a key the one before had
    uint64_t refused;       //  handshakes refused
    drv_budget_t log_budget;    //  refusal log lines, per second
    bool loaded;            //  a load has succeeded
};

static const char *s_roles [] = {"producer", "worker", "admin", NULL};

static bool
s_role_valid (const char *role)
{
    for (int i = 0; s_roles [i]; i++)
        if (streq (role, s_roles [i]))
            return true;
    return false;
}

static void
s_key_destroy (auth_key_t **entry_p)
{
    if (entry_p && *entry_p) {
        free ((char *) (*entry_p)->role);
        free ((char *) (*entry_p)->queues);
        free (*entry_p);
        *entry_p = NULL;
    }
}

bool
auth_queue_allowed (const char *queues, const char *name)
{
    if (!queues)
        return true;
    size_t name_len = strlen (name);
    const char *item = queues;
    while (*item) {
        const char *end = strchr (item, ',');
        size_t len = end? (size_t) (end - item): strlen (item);
        if (len && item [len - 1] == '*') {
            if (name_len >= len - 1 && memcmp (name, item, len - 1) == 0)
                return true;
        }
        else
        if (len == name_len && memcmp (name, item, len) == 0)
            return true;
        if (!end)
            break;
        item = end + 1;
    }
    return false;
}

//  A cheap fingerprint of the directory: names, sizes and mtimes of its
//  entries, order-independent. Changes whenever a certificate is added,
//  removed, replaced or edited in place.
static int
s_signature (const char *path, uint64_t *signature)
{
    DIR *dir = opendir (path);
    if (!dir)
        return -1;
    uint64_t sum = 0x9e3779b97f4a7c15ull;
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        if (entry->d_name [0] == '.')
            continue;
        char file [PATH_MAX];
        snprintf (file, sizeof file, "%s/%s", path, entry->d_name);
        struct stat st;
        if (stat (file, &st))
            continue;
        uint64_t h = 1469598103934665603ull;
        for (const char *c = entry->d_name; *c; c++)
            h = (h ^ (uint8_t) *c) * 1099511628211ull;
        uint64_t facts [4] = {(uint64_t) st.st_size, (uint64_t) st.st_mtim.tv_sec,
                              (uint64_t) st.st_mtim.tv_nsec, (uint64_t) st.st_ino};
        for (int i = 0; i < 4; i++)
            h = (h ^ facts [i]) * 1099511628211ull;
        sum += h;
    }
    closedir (dir);
    *signature = sum;
    return 0;
}

int
auth_reload (auth_t *self)
{
    uint64_t signature = 0;
    DIR *dir = opendir (self->dir);
    if (!dir || s_signature (self->dir, &signature)) {
        drv_log (DRV_LOG_ERROR, "auth", "cannot read allow-list directory %s: %s",
                 self->dir, strerror (errno));
        if (dir)
            closedir (dir);
        return -1;
    }
    zhashx_t *keys = zhashx_new ();
    zhashx_set_destructor (keys, (zhashx_destructor_fn *) s_key_destroy);
    //  Which file gave each key, and keys two files give different rights
    zhashx_t *files = zhashx_new ();
    zhashx_set_destructor (files, (zhashx_destructor_fn *) zstr_free);
    zlist_t *conflicts = zlist_new ();
    zlist_autofree (conflicts);
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        if (entry->d_name [0] == '.')
            continue;
        size_t len = strlen (entry->d_name);
        //  A secret certificate does not belong here; skip it rather than
        //  admit a key whose secret sits next to the broker
        if (len > 7 && streq (entry->d_name + len - 7, "_secret")) {
            drv_log (DRV_LOG_WARN, "auth", "ignoring secret certificate %s/%s in allow-list",
                     self->dir, entry->d_name);
            continue;
        }
        char path [PATH_MAX];
        snprintf (path, sizeof path, "%s/%s", self->dir, entry->d_name);
        struct stat st;
        if (stat (path, &st) || !S_ISREG (st.st_mode))
            continue;
        zcert_t *cert = zcert_load (path);
        if (!cert) {
            drv_log (DRV_LOG_WARN, "auth", "not a certificate, ignored: %s", path);
            continue;
        }
        const char *role = zcert_meta (cert, "role");
        const char *queues = zcert_meta (cert, "queues");
        if (!role)
            role = "producer";
        char why [256] = "";
        char *list = queues? drv_queue_list_parse (queues, why, sizeof why): NULL;
        bool bad = queues && !list;
        if (!s_role_valid (role))
            drv_log (DRV_LOG_WARN, "auth", "unknown role '%s' in %s, key ignored", role, path);
        else
        if (bad)
            drv_log (DRV_LOG_WARN, "auth", "%s in %s: key ignored", why, path);
        else {
            const char *public_key = zcert_public_txt (cert);
            const auth_key_t *earlier = (const auth_key_t *) zhashx_lookup (keys, public_key);
            if (earlier) {
                //  The same key twice: fine if the rights agree, else the
                //  key is refused rather than given whichever came last
                bool same = streq (earlier->role, role)
                         && ((!earlier->queues && !list)
                             || (earlier->queues && list && streq (earlier->queues, list)));
                if (!same) {
                    drv_log (DRV_LOG_WARN, "auth", "key %s is in %s and in %s with different "
                             "rights: refused until one is removed", public_key,
                             (const char *) zhashx_lookup (files, public_key), path);
                    zlist_append (conflicts, (void *) public_key);
                }
            }
            else {
                auth_key_t *key = (auth_key_t *) calloc (1, sizeof (auth_key_t));
                if (key) {
                    key->role = strdup (role);
                    key->queues = list;
                    list = NULL;
                    zhashx_update (keys, public_key, key);
                    zhashx_update (files, public_key, strdup (path));
                }
            }
        }
        free (list);
        zcert_destroy (&cert);
    }
    closedir (dir);
    for (const char *key = (const char *) zlist_first (conflicts); key;
         key = (const char *) zlist_next (conflicts))
        zhashx_delete (keys, key);
    zlist_destroy (&conflicts);
    zhashx_destroy (&files);
    bool removed = false;
    if (self->keys)
        for (void *old = zhashx_first (self->keys); old && !removed; old = zhashx_next (self->keys))
            removed = !zhashx_lookup (keys, (const char *) zhashx_cursor (self->keys));
    if (removed)
        self->removals++;
    self->generation++;
    zhashx_destroy (&self->keys);
    self->keys = keys;
    self->signature = signature;
    self->loaded = true;
    if (zhashx_size (keys))
        drv_log (DRV_LOG_INFO, "auth", "allow-list %s: %zu keys", self->dir, zhashx_size (keys));
    else
        drv_log (DRV_LOG_WARN, "auth", "allow-list %s is empty: no client can connect "
                 "until its public certificate is copied there", self->dir);
    return (int) zhashx_size (keys);
}

bool
auth_check (auth_t *self)
{
    uint64_t signature;
    if (s_signature (self->dir, &signature) || signature == self->signature)
        return false;
    return auth_reload (self) >= 0;
}

uint64_t
auth_generation (auth_t *self)
{
    return self->generation;
}

uint64_t
auth_removals (auth_t *self)
{
    return self->removals;
}

uint64_t
auth_refused (auth_t *self)
{
    return self->refused;
}

const auth_key_t *
auth_lookup (auth_t *self, const char *key)
{
    return key? (const auth_key_t *) zhashx_lookup (self->keys, key): NULL;
}

auth_t *
auth_new (const char *dir)
{
    auth_t *self = (auth_t *) zmalloc (sizeof (auth_t));
    self->dir = strdup (dir);
    if (auth_reload (self) < 0) {
        auth_destroy (&self);
        return NULL;
    }
    self->zap = zsock_new (ZMQ_REP);
    if (!self->zap || zsock_bind (self->zap, "inproc://zeromq.zap.01") != 0) {
        drv_log (DRV_LOG_ERROR, "auth", "cannot bind the ZAP handler (another broker in this process?)");
        auth_destroy (&self);
        return NULL;
    }
    return self;
}

void
auth_destroy (auth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    auth_t *self = *self_p;
    zsock_destroy (&self->zap);
    zhashx_destroy (&self->keys);
    free (self->dir);
    free (self);
    *self_p = NULL;
}

zsock_t *
auth_socket (auth_t *self)
{
    return self->zap;
}

//  Appends one ZMTP metadata property (name-len, name, value-len BE32, value).
static size_t
s_put_property (byte *out, const char *name, const char *value)
{
    size_t nlen = strlen (name), vlen = strlen (value);
    byte *p = out;
    *p++ = (byte) nlen;
    memcpy (p, name, nlen);
    p += nlen;
    *p++ = (byte) (vlen >> 24);
    *p++ = (byte) (vlen >> 16);
    *p++ = (byte) (vlen >> 8);
    *p++ = (byte) vlen;
    memcpy (p, value, vlen);
    return (size_t) (p + vlen - out);
}

static void
s_reply (auth_t *self, const char *version, zframe_t *request_id,
         const char *status, const char *text, const char *user, const char *role)
{
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, version);
    zmsg_append (reply, &request_id);
    zmsg_addstr (reply, status);
    zmsg_addstr (reply, text);
    zmsg_addstr (reply, user? user: "");
    if (role) {
        byte meta [64];
        size_t size = s_put_property (meta, "role", role);
        zmsg_addmem (reply, meta, size);
    }
    else
        zmsg_addmem (reply, NULL, 0);
    if (zmsg_send (&reply, self->zap))
        zmsg_destroy (&reply);
}

//  Refusals are logged at most a few per second: a flood of bad handshakes
//  must not become a flood of log lines. Says how many were left out.
static bool
s_refusal_log_allowed (auth_t *self)
{
    uint64_t dropped;
    bool allowed = drv_budget_take (&self->log_budget, drv_now_ms (), 5, &dropped);
    if (dropped)
        drv_log (DRV_LOG_WARN, "auth", "%" PRIu64 " more refused handshakes not logged", dropped);
    return allowed;
}

void
auth_handle (auth_t *self)
{
    //  Pick up keys added, removed or changed since the last handshake
    auth_check (self);

    while (zsock_events (self->zap) & ZMQ_POLLIN) {
        zmsg_t *request = zmsg_recv (self->zap);
        if (!request)
            return;
        //  ZAP/1.0: version, request id, domain, address, identity, mechanism, credentials
        char *version = zmsg_popstr (request);
        zframe_t *request_id = zmsg_pop (request);
        char *domain = zmsg_popstr (request);
        char *address = zmsg_popstr (request);
        char *identity = zmsg_popstr (request);
        char *mechanism = zmsg_popstr (request);
        zframe_t *key = zmsg_pop (request);
        if (!version || !request_id || !mechanism) {
            drv_log (DRV_LOG_ERROR, "auth", "malformed ZAP request");
            s_reply (self, "1.0", request_id? request_id: zframe_new_empty (), "500",
                     "malformed request", NULL, NULL);
        }
        else
        if (streq (mechanism, "CURVE") && key && zframe_size (key) == 32) {
            char z85 [41];
            zmq_z85_encode (z85, zframe_data (key), 32);
            const auth_key_t *entry = auth_lookup (self, z85);
            if (entry)
                s_reply (self, version, request_id, "200", "OK", z85, entry->role);
            else {
                if (s_refusal_log_allowed (self))
                    drv_log (DRV_LOG_WARN, "auth", "refused key %s from %s: not in allow-list %s",
                             z85, address? address: "?", self->dir);
                s_reply (self, version, request_id, "400", "key not allowed", NULL, NULL);
                self->refused++;
            }
        }
        else {
            if (s_refusal_log_allowed (self))
                drv_log (DRV_LOG_WARN, "auth", "refused %s connection from %s",
                         mechanism, address? address: "?");
            s_reply (self, version, request_id, "400", "CURVE required", NULL, NULL);
            self->refused++;
        }
        zstr_free (&version);
        zstr_free (&domain);
        zstr_free (&address);
        zstr_free (&identity);
        zstr_free (&mechanism);
        zframe_destroy (&key);
        zmsg_destroy (&request);
    }
}

zcert_t *
auth_server_cert (const char *path, const char *data_dir, bool open_ok)
{
    char generated [PATH_MAX];
    bool create = false;
    if (!path) {
        if (zsys_dir_create ("%s", data_dir) != 0) {
            drv_log (DRV_LOG_ERROR, "auth", "cannot create data directory %s: %s",
                     data_dir, strerror (errno));
            return NULL;
        }
        snprintf (generated, sizeof generated, "%s/server.cert", data_dir);
        path = generated;
        char secret [PATH_MAX + 8];
        snprintf (secret, sizeof secret, "%s_secret", path);
        create = !zsys_file_exists (secret);
    }
    zcert_t *cert = NULL;
    if (create) {
        cert = zcert_new ();
        zcert_set_meta (cert, "role", "broker");
        char secret [PATH_MAX + 8];
        snprintf (secret, sizeof secret, "%s_secret", path);
        //  Create the secret file private before anything is written to it
        mode_t old = umask (077);
        int rc = zcert_save (cert, path);
        umask (old);
        if (rc != 0 || chmod (path, 0644) != 0 || chmod (secret, 0600) != 0) {
            drv_log (DRV_LOG_ERROR, "auth", "cannot write server certificate %s: %s",
                     path, strerror (errno));
            zcert_destroy (&cert);
            return NULL;
        }
        drv_log (DRV_LOG_INFO, "auth", "created server certificate %s", path);
    }
    else {
        char secret [PATH_MAX + 8];
        const char *load = path;
        //  Given the public file, prefer its _secret sibling
        snprintf (secret, sizeof secret, "%s_secret", path);
        if (zsys_file_exists (secret))
            load = secret;
        if (!zsys_file_exists (load)) {
            drv_log (DRV_LOG_ERROR, "auth", "server certificate %s: no such file", load);
            return NULL;
        }
        //  Whoever can read the secret can impersonate the broker
        struct stat st;
        if (stat (load, &st) == 0 && (st.st_mode & 077)) {
            if (!open_ok) {
                drv_log (DRV_LOG_ERROR, "auth", "server secret certificate %s is accessible to "
                         "group or others (mode %04o): run 'chmod 600 %s', or start with "
                         "--allow-open-key to accept it", load, (unsigned) (st.st_mode & 07777), load);
                return NULL;
            }
            drv_log (DRV_LOG_WARN, "auth", "server secret certificate %s is accessible to group "
                     "or others (mode %04o); accepted because of --allow-open-key",
                     load, (unsigned) (st.st_mode & 07777));
        }
        cert = zcert_load (load);
        if (!cert) {
            drv_log (DRV_LOG_ERROR, "auth", "server certificate %s: not a certificate", load);
            return NULL;
        }
        //  zcert_load leaves an all-zero secret when the file has none
        byte zero [32] = {0};
        if (memcmp (zcert_secret_key (cert), zero, 32) == 0) {
            drv_log (DRV_LOG_ERROR, "auth", "server certificate %s has no secret key "
                     "(give the _secret file)", load);
            zcert_destroy (&cert);
            return NULL;
        }
        if (load == generated || strstr (load, "_secret")) {
            size_t len = strlen (load);
            if (len > 7 && streq (load + len - 7, "_secret")) {
                snprintf (generated, sizeof generated, "%.*s", (int) (len - 7), load);
                path = generated;
            }
        }
    }
    drv_log (DRV_LOG_INFO, "auth", "server public certificate: %s (key %s)",
             path, zcert_public_txt (cert));
    return cert;
}
