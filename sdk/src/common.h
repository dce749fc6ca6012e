/*  common.h - helpers shared by the client and the worker (internal).

    Connection settings, certificates, the DEALER socket with its CURVE
    options and handshake monitor, a wake-up signal that other threads (and
    signal handlers) can raise, and the mapping of wire codes to the public
    error enum.
*/
#ifndef DRV_COMMON_H_INCLUDED
#define DRV_COMMON_H_INCLUDED

//  The shared library is built with hidden visibility; everything drover.h
//  declares is the public API and must stay visible.
#pragma GCC visibility push(default)
#include "drover.h"
#pragma GCC visibility pop
#include "codec.h"
#include "util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

//  Defaults used until the broker's Welcome says otherwise.
#define DRV_DEFAULT_TIMEOUT_MS   5000
#define DRV_DEFAULT_HEARTBEAT_MS 1000
#define DRV_DEFAULT_MAX_PAYLOAD  (8u * 1024 * 1024)
#define DRV_DEFAULT_MAX_BATCH    1000
#define DRV_DEFAULT_MAX_VALUE    (1u << 20)
//  Socket tuning: linger long enough for a final Bye/Report to leave.
#define DRV_LINGER_MS            1000
#define DRV_HWM                  100000
#define DRV_RECONNECT_IVL_MS     100
#define DRV_RECONNECT_MAX_MS     2000
//  Frames accepted in one incoming message (a broker list plus envelope)
#define DRV_MAX_FRAMES           (1u << 20)

//  A private copy of drover_connect_t.
typedef struct {
    char *endpoint;         //  broker endpoint
    char *server_key;       //  broker public certificate path, or NULL
    char *cert;             //  our secret certificate path, or NULL
    char *name;             //  label for broker logs
    bool insecure;          //  no CURVE
    int timeout_ms;         //  connect/handshake timeout
} drv_config_t;

//  Copies cfg; fills defaults. Returns 0, DROVER_EINVAL (no endpoint, or
//  CURVE without key paths) or DROVER_ENOMEM.
int drv_config_copy (drv_config_t *self, const drover_connect_t *cfg);
void drv_config_free (drv_config_t *self);

//  CURVE keys as Z85 text, ready for zmq_setsockopt.
typedef struct {
    bool curve;                 //  false when insecure
    char public_txt [41];       //  our public key
    char secret_txt [41];       //  our secret key
    char server_txt [41];       //  broker's public key
} drv_keys_t;

//  Loads both certificates. Returns 0 or DROVER_EKEY (missing, unreadable,
//  or our certificate has no secret key); why receives a message.
int drv_keys_load (drv_keys_t *keys, const drv_config_t *cfg, char *why, size_t why_size);

//  One DEALER connection to the broker, with an optional monitor.
typedef struct {
    void *socket;               //  DEALER, or NULL when closed
    void *monitor;              //  PAIR receiving socket events, or NULL
    char monitor_ep [64];       //  inproc endpoint of the monitor
    int attempts;               //  TCP connections made without a handshake
    bool handshaken;            //  a handshake succeeded on this socket
    bool rehandshaken;          //  a later one did too: a Hello sent on an
                                //  earlier connection may be lost; resend it
} drv_conn_t;

//  Creates the DEALER in ctx, sets options and keys, connects. With
//  monitor, also watches handshake events (see drv_conn_check). Returns 0
//  or -1 (errno set).
int drv_conn_open (drv_conn_t *self, void *ctx, const drv_config_t *cfg,
                   const drv_keys_t *keys, bool monitor);
//  Closes the socket with the given linger (ms) and the monitor.
void drv_conn_close (drv_conn_t *self, int linger_ms);
//  Stops monitoring (after the first successful session).
void drv_conn_unmonitor (drv_conn_t *self);
//  Reads all pending monitor events. Returns 0 while nothing is wrong, or
//  DROVER_EUNAUTH when the broker refused our key or the security
//  mechanisms do not match; why receives a message.
int drv_conn_check (drv_conn_t *self, char *why, size_t why_size);

//  One session's link to the broker, shared by the client's and the
//  worker's I/O loops: the connection, and its liveness. Heartbeats go out
//  when we have been quiet for an interval; a broker silent for three
//  intervals gets a fresh socket (and a new Hello from the owner); the
//  first Welcome must come before connect_deadline.
typedef struct {
    drv_conn_t conn;            //  DEALER to the broker
    uint32_t heartbeat_ms;      //  from the Welcome (a default until then)
    uint64_t last_send;         //  ms of our last message
    uint64_t last_recv;         //  ms of the broker's last message
    uint64_t connect_deadline;  //  ms by which the first Welcome is due
    bool welcomed;              //  this session is established
    bool ever_welcomed;         //  the first Welcome has arrived
    bool blocked;               //  the socket would block: wait for POLLOUT
} drv_link_t;

//  Opens the first connection, watching its handshakes, and starts the
//  first-connection clock (cfg->timeout_ms). Returns 0, or DROVER_EINVAL
//  (bad endpoint) or DROVER_EUNREACHABLE with why set.
int drv_link_open (drv_link_t *self, void *ctx, const drv_config_t *cfg,
                   const drv_keys_t *keys, char *why, size_t why_size);
//  Drops the socket and opens a fresh one, logging why under component;
//  the owner then sends its Hello. Returns 0 or -1 (tried again when the
//  broker stays silent).
int drv_link_reopen (drv_link_t *self, void *ctx, const drv_config_t *cfg,
                     const drv_keys_t *keys, const char *component, const char *why);
//  Reads the handshake monitor (first connection only). Returns 0 or
//  DROVER_EUNAUTH with why set. Sets *hello_again when the connection was
//  made again before the first Welcome: our Hello may be lost with the
//  old one.
int drv_link_check (drv_link_t *self, char *why, size_t why_size, bool *hello_again);
//  Takes a Welcome for this session: its heartbeat interval, and on the
//  first Welcome ever stops watching handshakes (outages after that are
//  retried quietly). Returns true for that first Welcome.
bool drv_link_welcome (drv_link_t *self, const drv_msg_t *welcome);
//  Milliseconds until the link's next timer or until also (absolute ms;
//  0: none), whichever comes first.
long drv_link_timeout (const drv_link_t *self, uint64_t now, uint64_t also);
//  Sends msg (encoded with tx; count payload frames, moved) without
//  blocking and notes the time. Returns 0, or -1 with errno set (EAGAIN:
//  the socket is full; anything else is logged under component).
int drv_link_send (drv_link_t *self, drv_codec_t *tx, drv_msg_t *msg, zmq_msg_t *payloads,
                   size_t count, const char *component);
//  The same for a message with nothing but its command and corr (the
//  codec is reset first).
int drv_link_send_simple (drv_link_t *self, drv_codec_t *tx, drv_cmd_t cmd, uint64_t corr,
                          const char *component);
//  True when a Heartbeat is due (welcomed, and quiet for an interval).
bool drv_link_beat_due (const drv_link_t *self, uint64_t now);
//  Why the link should be reopened now (the broker silent for three
//  intervals), or NULL.
const char *drv_link_silent (const drv_link_t *self, uint64_t now);

//  Wake-up signal: an eventfd (or pipe) that zmq_poll can watch. Posting is
//  async-signal-safe.
typedef struct {
    int rfd;                    //  read end (polled)
    int wfd;                    //  write end (same as rfd for eventfd)
} drv_signal_t;

int drv_signal_init (drv_signal_t *self);
void drv_signal_post (drv_signal_t *self);
void drv_signal_drain (drv_signal_t *self);
void drv_signal_destroy (drv_signal_t *self);

//  Maps a wire code to the public error enum.
int drv_code_to_err (drv_code_t code);
//  Maps a wire job state to the public one.
drover_job_state_t drv_state_to_public (drv_job_state_t state);

//  Initialises a condition variable that waits on CLOCK_MONOTONIC.
int drv_cond_init (pthread_cond_t *cond);
//  Absolute CLOCK_MONOTONIC deadline timeout_ms from now.
void drv_deadline (struct timespec *ts, int timeout_ms);

//  "host:pid", for Hello.name when the caller gave none.
void drv_default_name (char *name, size_t size);

//  Encodes msg with codec (whose arena may hold msg's lists: no reset
//  here) and sends it with count payload frames (moved).
//  Returns 0 or -1 (errno set; EAGAIN when the socket would block). On
//  failure the payload frames are left as they were.
int drv_send_msg (void *socket, drv_codec_t *codec, drv_msg_t *msg,
                  zmq_msg_t *payloads, size_t count, int flags);

//  Client internals the replica uses (client.c) ----------------------

//  SNAPSHOT of a namespace through the client: entries as for
//  drover_state_list, plus the sequence they reflect.
int drv_client_snapshot (drover_client_t *client, const char *ns, drover_state_entry_t **entries_p,
                         size_t *count_p, uint64_t *seq_p, int timeout_ms);
//  The client's settings and CURVE keys (owned by the client).
const drv_config_t *drv_client_config (drover_client_t *client, const drv_keys_t **keys_p);
//  Welcome.state_port of the current session (0: none yet).
unsigned drv_client_state_port (drover_client_t *client);
//  Grows by one each time a broker with a new broker_id welcomes us.
unsigned drv_client_epoch (drover_client_t *client);
//  Adds (or removes) a signal the client raises when the epoch grows.
//  At most DRV_RESTART_HOOKS at once; returns 0 or -1 when full.
#define DRV_RESTART_HOOKS 16
int drv_client_restart_hook (drover_client_t *client, drv_signal_t *signal, bool add);

//  Decodes a received message (envelope first, then its payload frames)
//  and checks the frame count. Returns 0, or -1 after logging why the
//  message was dropped under component.
int drv_decode_message (drv_codec_t *codec, drv_frames_t *frames, drv_msg_t *msg,
                        const char *component);

#endif
