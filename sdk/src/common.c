/*  common.c - public utilities (errors, states, ids, environment) and the
    helpers the client and worker share: settings, certificates, the broker
    connection with its handshake monitor, and the wake-up signal.
*/
#include "common.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

//  Public utilities -------------------------------------------------------

bool
drover_queue_name_valid (const char *name)
{
    return drv_queue_name_valid (name);
}

const char *
drover_strerror (int err)
{
    switch (err) {
        case DROVER_OK:           return "success";
        case DROVER_EINVAL:       return "invalid argument";
        case DROVER_ENOMEM:       return "out of memory";
        case DROVER_ETIMEDOUT:    return "timed out";
        case DROVER_EUNREACHABLE: return "cannot reach the broker";
        case DROVER_EUNAUTH:      return "not authorised: the broker refused our key, or CURVE/plaintext mismatch";
        case DROVER_EDENIED:      return "denied: our key's role may not do this";
        case DROVER_EINTR:        return "interrupted";
        case DROVER_ECLOSED:      return "closed";
        case DROVER_EPROTO:       return "protocol error or unsupported protocol version";
        case DROVER_ETOOLARGE:    return "payload or batch too large";
        case DROVER_ENOQUEUE:     return "queue name missing or invalid";
        case DROVER_ENOTFOUND:    return "not found: no such job or key";
        case DROVER_EFAILED:      return "job failed";
        case DROVER_ECANCELLED:   return "job cancelled";
        case DROVER_ELIMIT:       return "broker limit reached; retry later";
        case DROVER_EUNAVAILABLE: return "broker unavailable";
        case DROVER_EKEY:         return "certificate missing or unreadable";
        case DROVER_ESTATE:       return "the state (of a job, lock or barrier) does not allow this";
        case DROVER_EINTERNAL:    return "internal error";
        case DROVER_ECONFLICT:    return "version conflict: the value changed";
        default:                  return "unknown error";
    }
}

const char *
drover_job_state_name (drover_job_state_t state)
{
    static const char *names [] = {
        "unknown", "queued", "scheduled", "running", "done", "failed", "cancelled"
    };
    return (unsigned) state < sizeof names / sizeof names [0]? names [state]: "unknown";
}

void
drover_id_format (const uint8_t id [DROVER_ID_SIZE], char text [DROVER_ID_TEXT + 1])
{
    drv_hex (id, DROVER_ID_SIZE, text);
}

static int
s_hex_digit (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
drover_id_parse (const char *text, uint8_t id [DROVER_ID_SIZE])
{
    if (!text || !id || strlen (text) != DROVER_ID_TEXT)
        return DROVER_EINVAL;
    uint8_t out [DROVER_ID_SIZE];
    for (int i = 0; i < DROVER_ID_SIZE; i++) {
        int hi = s_hex_digit (text [2 * i]);
        int lo = s_hex_digit (text [2 * i + 1]);
        if (hi < 0 || lo < 0)
            return DROVER_EINVAL;
        out [i] = (uint8_t) (hi << 4 | lo);
    }
    //  Write only on success so a failed parse leaves id untouched
    memcpy (id, out, DROVER_ID_SIZE);
    return DROVER_OK;
}

static const char *
s_env (const char *name)
{
    const char *value = getenv (name);
    return value && *value? value: NULL;
}

void
drover_connect_from_env (drover_connect_t *cfg)
{
    if (!cfg)
        return;
    if (!cfg->endpoint)
        cfg->endpoint = s_env ("DROVER_BROKER");
    if (!cfg->server_key)
        cfg->server_key = s_env ("DROVER_SERVER_KEY");
    if (!cfg->cert)
        cfg->cert = s_env ("DROVER_CERT");
    const char *insecure = s_env ("DROVER_INSECURE");
    if (!cfg->insecure && insecure
    && (strcmp (insecure, "1") == 0 || strcasecmp (insecure, "true") == 0
     || strcasecmp (insecure, "yes") == 0))
        cfg->insecure = true;
}

//  Settings ---------------------------------------------------------------

static char *
s_strdup_or_null (const char *text, bool *failed)
{
    if (!text)
        return NULL;
    char *copy = strdup (text);
    if (!copy)
        *failed = true;
    return copy;
}

void
drv_default_name (char *name, size_t size)
{
    char host [128] = "localhost";
    gethostname (host, sizeof host - 1);
    host [sizeof host - 1] = 0;
    snprintf (name, size, "%s:%d", host, (int) getpid ());
}

int
drv_config_copy (drv_config_t *self, const drover_connect_t *cfg)
{
    memset (self, 0, sizeof *self);
    if (!cfg || !cfg->endpoint || !*cfg->endpoint)
        return DROVER_EINVAL;
    //  CURVE needs both key files; refusing here beats a silent hang later
    if (!cfg->insecure && (!cfg->server_key || !*cfg->server_key || !cfg->cert || !*cfg->cert))
        return DROVER_EINVAL;
    bool failed = false;
    char name [256];
    if (!cfg->name)
        drv_default_name (name, sizeof name);
    self->endpoint = s_strdup_or_null (cfg->endpoint, &failed);
    self->server_key = s_strdup_or_null (cfg->server_key, &failed);
    self->cert = s_strdup_or_null (cfg->cert, &failed);
    self->name = s_strdup_or_null (cfg->name? cfg->name: name, &failed);
    self->insecure = cfg->insecure;
    self->timeout_ms = cfg->timeout_ms > 0? cfg->timeout_ms: DRV_DEFAULT_TIMEOUT_MS;
    if (failed) {
        drv_config_free (self);
        return DROVER_ENOMEM;
    }
    return DROVER_OK;
}

void
drv_config_free (drv_config_t *self)
{
    free (self->endpoint);
    free (self->server_key);
    free (self->cert);
    free (self->name);
    memset (self, 0, sizeof *self);
}

//  Certificates -----------------------------------------------------------

//  zcert_load quietly falls back from "path_secret" to "path"; we check the
//  file is there first so a typo gives a clear message, not a zero key.
static zcert_t *
s_cert_load (const char *path, char *why, size_t why_size)
{
    char secret_path [PATH_MAX];
    snprintf (secret_path, sizeof secret_path, "%s_secret", path);
    if (access (path, R_OK) != 0 && access (secret_path, R_OK) != 0) {
        snprintf (why, why_size, "cannot read certificate %s: %s", path, strerror (errno));
        return NULL;
    }
    zcert_t *cert = zcert_load (path);
    if (!cert)
        snprintf (why, why_size, "certificate %s is not a valid CURVE certificate", path);
    return cert;
}

int
drv_keys_load (drv_keys_t *keys, const drv_config_t *cfg, char *why, size_t why_size)
{
    memset (keys, 0, sizeof *keys);
    why [0] = 0;
    if (cfg->insecure)
        return DROVER_OK;
    keys->curve = true;

    zcert_t *ours = s_cert_load (cfg->cert, why, why_size);
    if (!ours)
        return DROVER_EKEY;
    static const uint8_t zeros [32] = {0};
    if (memcmp (zcert_secret_key (ours), zeros, 32) == 0) {
        snprintf (why, why_size, "certificate %s holds no secret key", cfg->cert);
        zcert_destroy (&ours);
        return DROVER_EKEY;
    }
    snprintf (keys->public_txt, sizeof keys->public_txt, "%s", zcert_public_txt (ours));
    snprintf (keys->secret_txt, sizeof keys->secret_txt, "%s", zcert_secret_txt (ours));
    zcert_destroy (&ours);

    zcert_t *server = s_cert_load (cfg->server_key, why, why_size);
    if (!server)
        return DROVER_EKEY;
    snprintf (keys->server_txt, sizeof keys->server_txt, "%s", zcert_public_txt (server));
    zcert_destroy (&server);
    return DROVER_OK;
}

//  Connection -------------------------------------------------------------

static void
s_setopt_int (void *socket, int option, int value)
{
    zmq_setsockopt (socket, option, &value, sizeof value);
}

int
drv_conn_open (drv_conn_t *self, void *ctx, const drv_config_t *cfg,
               const drv_keys_t *keys, bool monitor)
{
    //  Each connection gets its own monitor endpoint name
    static atomic_uint s_sequence;
    memset (self, 0, sizeof *self);
    self->socket = zmq_socket (ctx, ZMQ_DEALER);
    if (!self->socket)
        return -1;
    s_setopt_int (self->socket, ZMQ_LINGER, DRV_LINGER_MS);
    s_setopt_int (self->socket, ZMQ_SNDHWM, DRV_HWM);
    s_setopt_int (self->socket, ZMQ_RCVHWM, DRV_HWM);
    s_setopt_int (self->socket, ZMQ_RECONNECT_IVL, DRV_RECONNECT_IVL_MS);
    s_setopt_int (self->socket, ZMQ_RECONNECT_IVL_MAX, DRV_RECONNECT_MAX_MS);
    if (keys->curve) {
        zmq_setsockopt (self->socket, ZMQ_CURVE_SERVERKEY, keys->server_txt, 40);
        zmq_setsockopt (self->socket, ZMQ_CURVE_PUBLICKEY, keys->public_txt, 40);
        zmq_setsockopt (self->socket, ZMQ_CURVE_SECRETKEY, keys->secret_txt, 40);
    }
    if (monitor) {
        snprintf (self->monitor_ep, sizeof self->monitor_ep, "inproc://drover-monitor-%u",
                  atomic_fetch_add (&s_sequence, 1));
        int events = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED
                   | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                   | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
        if (zmq_socket_monitor (self->socket, self->monitor_ep, events) == 0) {
            self->monitor = zmq_socket (ctx, ZMQ_PAIR);
            if (self->monitor) {
                s_setopt_int (self->monitor, ZMQ_LINGER, 0);
                if (zmq_connect (self->monitor, self->monitor_ep) != 0) {
                    zmq_close (self->monitor);
                    self->monitor = NULL;
                }
            }
            if (!self->monitor)
                zmq_socket_monitor (self->socket, NULL, 0);
        }
    }
    if (zmq_connect (self->socket, cfg->endpoint) != 0) {
        int err = errno;
        drv_conn_close (self, 0);
        errno = err;
        return -1;
    }
    return 0;
}

void
drv_conn_unmonitor (drv_conn_t *self)
{
    if (self->monitor) {
        zmq_socket_monitor (self->socket, NULL, 0);
        zmq_close (self->monitor);
        self->monitor = NULL;
    }
}

void
drv_conn_close (drv_conn_t *self, int linger_ms)
{
    if (self->socket) {
        drv_conn_unmonitor (self);
        s_setopt_int (self->socket, ZMQ_LINGER, linger_ms);
        zmq_close (self->socket);
        self->socket = NULL;
    }
}

int
drv_conn_check (drv_conn_t *self, char *why, size_t why_size)
{
    if (!self->monitor)
        return 0;
    int result = 0;
    while (true) {
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        if (zmq_msg_recv (&frame, self->monitor, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&frame);
            break;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size (&frame) >= 6) {
            memcpy (&event, zmq_msg_data (&frame), 2);
            memcpy (&value, (char *) zmq_msg_data (&frame) + 2, 4);
        }
        //  The second frame (endpoint) is always there; drain it
        while (zmq_msg_more (&frame)) {
            zmq_msg_close (&frame);
            zmq_msg_init (&frame);
            if (zmq_msg_recv (&frame, self->monitor, 0) == -1)
                break;
        }
        zmq_msg_close (&frame);

        switch (event) {
            case ZMQ_EVENT_CONNECTED:
                self->attempts++;
                break;
            case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
                if (self->handshaken)
                    self->rehandshaken = true;
                self->handshaken = true;
                self->attempts = 0;
                break;
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
                snprintf (why, why_size, "the broker refused our key (ZAP status %u)", value);
                result = DROVER_EUNAUTH;
                break;
            case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
                snprintf (why, why_size,
                          "security handshake failed (protocol error 0x%x): CURVE/plaintext mismatch or wrong server key",
                          value);
                result = DROVER_EUNAUTH;
                break;
            case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                //  The connection broke during the handshake. A CURVE
                //  broker does that to a wrong server key or a plaintext
                //  peer, but so does a broker killed or restarted in the
                //  middle of it: only a repeated failure is a refusal.
                if (self->attempts >= 3 && !result) {
                    snprintf (why, why_size, "security handshake failed");
                    result = DROVER_EUNAUTH;
                }
                break;
            case ZMQ_EVENT_DISCONNECTED:
                //  A CURVE server drops a client whose HELLO it cannot
                //  decrypt (wrong server key) without telling it why; the
                //  client then only sees connections that never complete.
                if (!self->handshaken && self->attempts >= 3 && !result) {
                    snprintf (why, why_size,
                              "the broker closes every connection during the handshake (wrong server key?)");
                    result = DROVER_EUNAUTH;
                }
                break;
            default:
                break;
        }
    }
    return result;
}

//  Link -------------------------------------------------------------------

int
drv_link_open (drv_link_t *self, void *ctx, const drv_config_t *cfg,
               const drv_keys_t *keys, char *why, size_t why_size)
{
    memset (self, 0, sizeof *self);
    self->heartbeat_ms = DRV_DEFAULT_HEARTBEAT_MS;
    uint64_t now = drv_now_ms ();
    self->connect_deadline = now + (uint64_t) cfg->timeout_ms;
    self->last_recv = now;
    if (drv_conn_open (&self->conn, ctx, cfg, keys, true)) {
        int err = errno;
        snprintf (why, why_size, "cannot connect to %s: %s", cfg->endpoint, zmq_strerror (err));
        return err == EINVAL || err == EPROTONOSUPPORT? DROVER_EINVAL: DROVER_EUNREACHABLE;
    }
    return 0;
}

int
drv_link_reopen (drv_link_t *self, void *ctx, const drv_config_t *cfg,
                 const drv_keys_t *keys, const char *component, const char *why)
{
    drv_log (DRV_LOG_INFO, component, "reconnecting to %s: %s", cfg->endpoint, why);
    drv_conn_close (&self->conn, 0);
    self->welcomed = false;
    self->blocked = false;
    //  A failed open is tried again after another silent spell, not in a loop
    self->last_recv = drv_now_ms ();
    if (drv_conn_open (&self->conn, ctx, cfg, keys, false)) {
        drv_log (DRV_LOG_ERROR, component, "cannot open socket: %s", zmq_strerror (errno));
        return -1;
    }
    return 0;
}

int
drv_link_check (drv_link_t *self, char *why, size_t why_size, bool *hello_again)
{
    *hello_again = false;
    if (!self->conn.monitor)
        return 0;
    int err = drv_conn_check (&self->conn, why, why_size);
    if (err)
        return err;
    if (self->conn.rehandshaken) {
        self->conn.rehandshaken = false;
        *hello_again = !self->welcomed;
    }
    return 0;
}

bool
drv_link_welcome (drv_link_t *self, const drv_msg_t *welcome)
{
    self->welcomed = true;
    self->heartbeat_ms = welcome->welcome.heartbeat_ms? welcome->welcome.heartbeat_ms
                                                      : DRV_DEFAULT_HEARTBEAT_MS;
    if (self->ever_welcomed)
        return false;
    self->ever_welcomed = true;
    drv_conn_unmonitor (&self->conn);
    return true;
}

int
drv_link_send (drv_link_t *self, drv_codec_t *tx, drv_msg_t *msg, zmq_msg_t *payloads,
               size_t count, const char *component)
{
    int rc = drv_send_msg (self->conn.socket, tx, msg, payloads, count, ZMQ_DONTWAIT);
    if (rc == 0)
        self->last_send = drv_now_ms ();
    else
    if (errno != EAGAIN) {
        int err = errno;
        drv_log (DRV_LOG_WARN, component, "cannot send %s: %s", drv_cmd_name (msg->cmd),
                 zmq_strerror (err));
        errno = err;
    }
    return rc;
}

int
drv_link_send_simple (drv_link_t *self, drv_codec_t *tx, drv_cmd_t cmd, uint64_t corr,
                      const char *component)
{
    drv_msg_t msg;
    drv_codec_reset (tx);
    drv_msg_init (&msg, cmd, corr);
    return drv_link_send (self, tx, &msg, NULL, 0, component);
}

long
drv_link_timeout (const drv_link_t *self, uint64_t now, uint64_t also)
{
    uint64_t hb = self->heartbeat_ms;
    uint64_t next = self->ever_welcomed? self->last_recv + 3 * hb: self->connect_deadline;
    if (self->welcomed && self->last_send + hb < next)
        next = self->last_send + hb;
    if (also && also < next)
        next = also;
    return next > now? (long) (next - now): 0;
}

bool
drv_link_beat_due (const drv_link_t *self, uint64_t now)
{
    return self->welcomed && now - self->last_send >= self->heartbeat_ms;
}

const char *
drv_link_silent (const drv_link_t *self, uint64_t now)
{
    if (now - self->last_recv < 3 * (uint64_t) self->heartbeat_ms)
        return NULL;
    return self->welcomed? "broker silent for 3 heartbeats": "no welcome";
}

//  Signal -----------------------------------------------------------------

int
drv_signal_init (drv_signal_t *self)
{
#ifdef __linux__
    self->rfd = self->wfd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    return self->rfd >= 0? 0: -1;
#else
    int fds [2];
    if (pipe (fds))
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl (fds [i], F_SETFL, fcntl (fds [i], F_GETFL) | O_NONBLOCK);
        fcntl (fds [i], F_SETFD, FD_CLOEXEC);
    }
    self->rfd = fds [0];
    self->wfd = fds [1];
    return 0;
#endif
}

void
drv_signal_post (drv_signal_t *self)
{
    //  Only write(): this runs inside signal handlers
#ifdef __linux__
    uint64_t one = 1;
    ssize_t rc = write (self->wfd, &one, sizeof one);
#else
    char one = 1;
    ssize_t rc = write (self->wfd, &one, 1);
#endif
    (void) rc;      //  EAGAIN means a wake-up is already pending
}

void
drv_signal_drain (drv_signal_t *self)
{
    char buffer [64];
    while (read (self->rfd, buffer, sizeof buffer) > 0)
        ;
}

void
drv_signal_destroy (drv_signal_t *self)
{
    if (self->rfd >= 0)
        close (self->rfd);
    if (self->wfd >= 0 && self->wfd != self->rfd)
        close (self->wfd);
    self->rfd = self->wfd = -1;
}

//  Mapping ----------------------------------------------------------------

int
drv_code_to_err (drv_code_t code)
{
    switch (code) {
        case DRV_CODE_OK:              return DROVER_OK;
        case DRV_CODE_BAD_REQUEST:     return DROVER_EINVAL;
        case DRV_CODE_UNKNOWN_COMMAND: return DROVER_EPROTO;
        case DRV_CODE_BAD_VERSION:     return DROVER_EPROTO;
        case DRV_CODE_REHELLO:         return DROVER_EUNREACHABLE;
        case DRV_CODE_TOO_LARGE:       return DROVER_ETOOLARGE;
        case DRV_CODE_UNKNOWN_QUEUE:   return DROVER_ENOQUEUE;
        case DRV_CODE_UNKNOWN_JOB:     return DROVER_ENOTFOUND;
        case DRV_CODE_DENIED:          return DROVER_EDENIED;
        case DRV_CODE_LIMIT:           return DROVER_ELIMIT;
        case DRV_CODE_UNAVAILABLE:     return DROVER_EUNAVAILABLE;
        case DRV_CODE_INTERNAL:        return DROVER_EINTERNAL;
        case DRV_CODE_BAD_STATE:       return DROVER_ESTATE;
        case DRV_CODE_NOT_FOUND:       return DROVER_ENOTFOUND;
        case DRV_CODE_CONFLICT:        return DROVER_ECONFLICT;
        case DRV_CODE_TIMEOUT:         return DROVER_ETIMEDOUT;
        default:                       return DROVER_EPROTO;
    }
}

drover_job_state_t
drv_state_to_public (drv_job_state_t state)
{
    //  The enums share their numbering; guard against unknown values
    return (unsigned) state <= DRV_JOB_CANCELLED? (drover_job_state_t) state: DROVER_JOB_UNKNOWN;
}

//  Time -------------------------------------------------------------------

int
drv_cond_init (pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init (cond, &attr);
    pthread_condattr_destroy (&attr);
    return rc;
}

void
drv_deadline (struct timespec *ts, int timeout_ms)
{
    clock_gettime (CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long) (timeout_ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

//  Sending ----------------------------------------------------------------

int
drv_send_msg (void *socket, drv_codec_t *codec, drv_msg_t *msg,
              zmq_msg_t *payloads, size_t count, int flags)
{
    zmq_msg_t envelope;
    if (drv_codec_encode (codec, msg, &envelope)) {
        errno = EINVAL;
        return -1;
    }
    if (zmq_msg_send (&envelope, socket, flags | (count? ZMQ_SNDMORE: 0)) == -1) {
        int err = errno;
        zmq_msg_close (&envelope);
        errno = err;
        return -1;
    }
    //  Once the first frame is in, the rest of the message always fits
    for (size_t i = 0; i < count; i++)
        if (zmq_msg_send (&payloads [i], socket, i + 1 < count? ZMQ_SNDMORE: 0) == -1)
            return -1;
    return 0;
}

int
drv_decode_message (drv_codec_t *codec, drv_frames_t *frames, drv_msg_t *msg,
                    const char *component)
{
    if (drv_codec_decode (codec, zmq_msg_data (&frames->msg [0]),
                          zmq_msg_size (&frames->msg [0]), msg)) {
        drv_log (DRV_LOG_WARN, component, "dropped malformed message: %s", drv_codec_error (codec));
        return -1;
    }
    size_t want = drv_cmd_has_payloads (msg->cmd)? msg->count + 1: 1;
    if (frames->count != want) {
        drv_log (DRV_LOG_WARN, component, "dropped %s with %zu frames, expected %zu",
                 drv_cmd_name (msg->cmd), frames->count, want);
        return -1;
    }
    return 0;
}
