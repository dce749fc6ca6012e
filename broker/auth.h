/*  auth.h - who may connect: the broker's certificate, the allow-list of
    client keys with their roles, and the ZAP handler that applies it.

    The ZAP handler is a REP socket on inproc://zeromq.zap.01 in CZMQ's
    context, polled by the broker's own loop (no extra thread). It admits a
    CURVE client only if its public key is in the allow-list directory, and
    hands the key's role to the broker as ZAP metadata ("role"), which the
    broker reads from each message with zmq_msg_gets.
*/
#ifndef BROKER_AUTH_H_INCLUDED
#define BROKER_AUTH_H_INCLUDED

#include <czmq.h>

typedef struct _auth_t auth_t;

//  What the allow-list says of one key: its role, and the queues it is
//  limited to (from the certificate's "queues" metadata: a comma-separated
//  list of names, where a name ending in '*' stands for every queue with
//  that prefix), or NULL when it may use every queue.
typedef struct {
    const char *role;
    const char *queues;
} auth_key_t;

//  Loads the allow-list from dir and binds the ZAP socket. Returns NULL
//  after logging why (directory unreadable, ZAP endpoint already taken).
auth_t *auth_new (const char *dir);
void auth_destroy (auth_t **self_p);

//  The ZAP socket, for the broker's poll set.
zsock_t *auth_socket (auth_t *self);

//  Answers every waiting ZAP request. Rereads the directory first when it
//  has changed.
void auth_handle (auth_t *self);

//  Rereads the directory now. Returns the number of keys, or -1 (the
//  previous list stays in force).
int auth_reload (auth_t *self);

//  Rereads the directory if any certificate in it was added, removed or
//  changed since the last load (names, sizes and modification times are
//  compared). Returns true when the list was reloaded.
bool auth_check (auth_t *self);

//  Counters: loads of the list so far (changes when any reload happened,
//  whoever caused it), loads that removed a key, handshakes refused.
uint64_t auth_generation (auth_t *self);
uint64_t auth_removals (auth_t *self);
uint64_t auth_refused (auth_t *self);

//  The allow-list entry of a Z85 public key, or NULL if the key is not
//  (or no longer) allowed. Valid until the next reload.
const auth_key_t *auth_lookup (auth_t *self, const char *key);

//  True if a queue-limit list (auth_key_t.queues) admits queue name; a NULL
//  list admits everything.
bool auth_queue_allowed (const char *queues, const char *name);

//  Loads the server certificate from path, or, with path NULL, from
//  data_dir/server.cert, creating it there on first start. Logs the public
//  certificate's path. Refuses a secret file that group or others may read
//  unless open_ok. Returns NULL after logging why.
zcert_t *auth_server_cert (const char *path, const char *data_dir, bool open_ok);

#endif
