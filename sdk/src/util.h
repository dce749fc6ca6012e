/*  util.h - small helpers shared by the SDK, broker, worker and CLI (internal).

    Clocks, random ids, logging, and whole-message receive/send of ZeroMQ
    multipart messages as arrays of zmq_msg_t (so payload frames are moved,
    never copied).
*/
#ifndef DRV_UTIL_H_INCLUDED
#define DRV_UTIL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

//  Monotonic milliseconds (for timers) and Unix milliseconds (for display).
uint64_t drv_now_ms (void);
uint64_t drv_wall_ms (void);

//  Fills id with 16 random bytes (libsodium).
void drv_random_id (uint8_t *id);
//  32 hex characters + NUL.
void drv_hex (const uint8_t *bytes, size_t size, char *text);

//  Logging ----------------------------------------------------------------

typedef enum { DRV_LOG_DEBUG, DRV_LOG_INFO, DRV_LOG_WARN, DRV_LOG_ERROR } drv_log_level_t;

//  Lines below level are dropped; json selects one JSON object per line.
void drv_log_setup (drv_log_level_t level, bool json);
//  Parses "debug|info|warn|error" into *level; returns 0 or -1.
int drv_log_parse_level (const char *text, drv_log_level_t *level);
//  One line on stderr: time, level, component, message. Thread-safe.
void drv_log (drv_log_level_t level, const char *component, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));
//  The same for a line about one job: the job id (32 hex characters) is its
//  own field, "job" in JSON, "job=ID" ahead of the text otherwise.
void drv_log_job (drv_log_level_t level, const char *component, const char *job,
                  const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));
//  Whether a line at level would be written (to skip building costly ones).
bool drv_log_enabled (drv_log_level_t level);

//  A per-second budget of events (log lines about bad input, say): at most
//  per_second pass in any one second, the rest are counted. Zero it to start.
typedef struct {
    uint64_t second;            //  second of the current window
    int left;                   //  events that may still pass in it
    uint64_t dropped;           //  events refused in it
} drv_budget_t;

//  True if one more event fits in the current second. When a new second
//  begins after some were refused, *dropped says how many (else 0), for a
//  summary line.
bool drv_budget_take (drv_budget_t *self, uint64_t now_ms, int per_second, uint64_t *dropped);

//  Frames -----------------------------------------------------------------

typedef struct {
    zmq_msg_t *msg;   //  frames received, in order
    size_t count;     //  frames in use
    size_t cap;       //  frames allocated (each initialised)
} drv_frames_t;

void drv_frames_init (drv_frames_t *self);
//  Closes every frame; keeps the array for reuse.
void drv_frames_clear (drv_frames_t *self);
void drv_frames_destroy (drv_frames_t *self);

//  Receives one whole multipart message. Frames beyond max_frames are read
//  and discarded. Returns the number of frames the message had (which may
//  exceed self->count when frames were discarded), or -1 with errno set
//  (EAGAIN with ZMQ_DONTWAIT and nothing waiting).
int drv_frames_recv (void *socket, drv_frames_t *self, int flags, size_t max_frames);

//  Sends routing (optional; shared, not consumed), then envelope (consumed),
//  then count payload frames. When share_payloads is true the payloads are
//  sent as reference-counted copies and stay valid for the caller; otherwise
//  they are moved out (left empty). Returns 0 or -1 (errno set); on error
//  the frames not yet sent are left as they were. With a routing frame the
//  send never blocks: a ROUTER peer whose queue is full (it does not read)
//  fails with EAGAIN instead of stalling the sender.
int drv_send (void *socket, zmq_msg_t *routing, zmq_msg_t *envelope,
              zmq_msg_t *payloads, size_t count, bool share_payloads);

//  Makes the array *array_p hold at least need elements of size bytes,
//  doubling its capacity *cap_p as needed. Returns 0, or -1 when out of
//  memory (the array is then unchanged).
int drv_grow (void **array_p, size_t *cap_p, size_t need, size_t size);

//  Reads a whole file into a new NUL-terminated buffer; NULL on error.
char *drv_read_file (const char *path, size_t *size_p);

#endif
