/*  util.c - clocks, ids, logging and multipart helpers (internal).  */
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t
drv_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

uint64_t
drv_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

//  Ids come from a per-thread pool refilled 256 ids at a time, so that
//  submitting a job costs no system call of its own.
#define ID_POOL (256 * 16)
static __thread uint8_t s_id_pool [ID_POOL];
static __thread size_t s_id_left;
static pthread_once_t s_id_once = PTHREAD_ONCE_INIT;

//  A forked child must not hand out the ids its parent still holds
static void
s_id_forget (void)
{
    s_id_left = 0;
}

static void
s_id_init (void)
{
    if (sodium_init () < 0)
        abort ();
    pthread_atfork (NULL, NULL, s_id_forget);
}

void
drv_random_id (uint8_t *id)
{
    pthread_once (&s_id_once, s_id_init);
    if (s_id_left < 16) {
        randombytes_buf (s_id_pool, ID_POOL);
        s_id_left = ID_POOL;
    }
    s_id_left -= 16;
    memcpy (id, s_id_pool + s_id_left, 16);
    sodium_memzero (s_id_pool + s_id_left, 16);
}

void
drv_hex (const uint8_t *bytes, size_t size, char *text)
{
    static const char digits [] = "0123456789abcdef";
    for (size_t i = 0; i < size; i++) {
        text [2 * i] = digits [bytes [i] >> 4];
        text [2 * i + 1] = digits [bytes [i] & 15];
    }
    text [2 * size] = 0;
}

//  Logging ----------------------------------------------------------------

static drv_log_level_t s_log_level = DRV_LOG_INFO;
static bool s_log_json = false;
static pthread_mutex_t s_log_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *s_level_names [] = {"debug", "info", "warn", "error"};

static pthread_once_t s_log_env_once = PTHREAD_ONCE_INIT;

//  Until a program calls drv_log_setup, DROVER_LOG_LEVEL and
//  DROVER_LOG_FORMAT decide; this lets a parent quieten the SDK and
//  children it starts without new API.
static void
s_log_from_env (void)
{
    drv_log_level_t level;
    if (drv_log_parse_level (getenv ("DROVER_LOG_LEVEL"), &level) == 0)
        s_log_level = level;
    const char *format = getenv ("DROVER_LOG_FORMAT");
    if (format && strcmp (format, "json") == 0)
        s_log_json = true;
}

void
drv_log_setup (drv_log_level_t level, bool json)
{
    pthread_once (&s_log_env_once, s_log_from_env);
    s_log_level = level;
    s_log_json = json;
}

int
drv_log_parse_level (const char *text, drv_log_level_t *level)
{
    for (int i = 0; i < 4; i++)
        if (text && strcmp (text, s_level_names [i]) == 0) {
            *level = (drv_log_level_t) i;
            return 0;
        }
    return -1;
}

//  Writes text as a JSON string body, escaping what JSON requires.
static void
s_json_escape (FILE *out, const char *text)
{
    for (const unsigned char *p = (const unsigned char *) text; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf (out, "\\%c", *p);
        else
        if (*p < 0x20)
            fprintf (out, "\\u%04x", *p);
        else
            fputc (*p, out);
    }
}

static void
s_log_line (drv_log_level_t level, const char *component, const char *job,
            const char *format, va_list args)
{
    char text [1024];
    vsnprintf (text, sizeof text, format, args);

    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r (&ts.tv_sec, &tm);
    char stamp [40];
    strftime (stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

    pthread_mutex_lock (&s_log_lock);
    if (s_log_json) {
        fprintf (stderr, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"component\":\"",
                 stamp, ts.tv_nsec / 1000000, s_level_names [level]);
        s_json_escape (stderr, component);
        if (job) {
            fputs ("\",\"job\":\"", stderr);
            s_json_escape (stderr, job);
        }
        fputs ("\",\"msg\":\"", stderr);
        s_json_escape (stderr, text);
        fputs ("\"}\n", stderr);
    }
    else
        fprintf (stderr, "%s.%03ldZ %-5s %s: %s%s%s%s\n", stamp, ts.tv_nsec / 1000000,
                 s_level_names [level], component, job? "job=": "", job? job: "", job? " ": "",
                 text);
    fflush (stderr);
    pthread_mutex_unlock (&s_log_lock);
}

bool
drv_budget_take (drv_budget_t *self, uint64_t now_ms, int per_second, uint64_t *dropped)
{
    *dropped = 0;
    uint64_t second = now_ms / 1000;
    if (second != self->second) {
        *dropped = self->dropped;
        self->second = second;
        self->left = per_second;
        self->dropped = 0;
    }
    if (self->left > 0) {
        self->left--;
        return true;
    }
    self->dropped++;
    return false;
}

bool
drv_log_enabled (drv_log_level_t level)
{
    pthread_once (&s_log_env_once, s_log_from_env);
    return level >= s_log_level;
}

void
drv_log (drv_log_level_t level, const char *component, const char *format, ...)
{
    if (!drv_log_enabled (level))
        return;
    va_list args;
    va_start (args, format);
    s_log_line (level, component, NULL, format, args);
    va_end (args);
}

void
drv_log_job (drv_log_level_t level, const char *component, const char *job,
             const char *format, ...)
{
    if (!drv_log_enabled (level))
        return;
    va_list args;
    va_start (args, format);
    s_log_line (level, component, job, format, args);
    va_end (args);
}

//  Frames -----------------------------------------------------------------

void
drv_frames_init (drv_frames_t *self)
{
    memset (self, 0, sizeof *self);
}

void
drv_frames_clear (drv_frames_t *self)
{
    for (size_t i = 0; i < self->count; i++) {
        zmq_msg_close (&self->msg [i]);
        zmq_msg_init (&self->msg [i]);
    }
    self->count = 0;
}

void
drv_frames_destroy (drv_frames_t *self)
{
    drv_frames_clear (self);
    for (size_t i = 0; i < self->cap; i++)
        zmq_msg_close (&self->msg [i]);
    free (self->msg);
    memset (self, 0, sizeof *self);
}

static int
s_frames_grow (drv_frames_t *self)
{
    size_t cap = self->cap? self->cap * 2: 16;
    zmq_msg_t *msg = realloc (self->msg, cap * sizeof (zmq_msg_t));
    if (!msg)
        return -1;
    for (size_t i = self->cap; i < cap; i++)
        zmq_msg_init (&msg [i]);
    self->msg = msg;
    self->cap = cap;
    return 0;
}

int
drv_frames_recv (void *socket, drv_frames_t *self, int flags, size_t max_frames)
{
    drv_frames_clear (self);
    int total = 0;
    zmq_msg_t spill;
    zmq_msg_init (&spill);
    while (true) {
        zmq_msg_t *slot = &spill;
        if (self->count < max_frames) {
            if (self->count == self->cap && s_frames_grow (self)) {
                zmq_msg_close (&spill);
                return -1;
            }
            slot = &self->msg [self->count];
        }
        //  Only the first frame may find nothing waiting; the rest of a
        //  multipart message is always there once its first part is
        if (zmq_msg_recv (slot, socket, total == 0? flags: 0) == -1) {
            int err = errno;
            zmq_msg_close (&spill);
            errno = err;
            return -1;
        }
        total++;
        if (slot != &spill)
            self->count++;
        if (!zmq_msg_more (slot))
            break;
    }
    zmq_msg_close (&spill);
    return total;
}

int
drv_send (void *socket, zmq_msg_t *routing, zmq_msg_t *envelope,
          zmq_msg_t *payloads, size_t count, bool share_payloads)
{
    if (routing) {
        zmq_msg_t copy;
        zmq_msg_init (&copy);
        zmq_msg_copy (&copy, routing);
        if (zmq_msg_send (&copy, socket, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&copy);
            return -1;
        }
    }
    if (zmq_msg_send (envelope, socket, count? ZMQ_SNDMORE: 0) == -1)
        return -1;
    for (size_t i = 0; i < count; i++) {
        int more = i + 1 < count? ZMQ_SNDMORE: 0;
        if (share_payloads) {
            zmq_msg_t copy;
            zmq_msg_init (&copy);
            zmq_msg_copy (&copy, &payloads [i]);
            if (zmq_msg_send (&copy, socket, more) == -1) {
                zmq_msg_close (&copy);
                return -1;
            }
        }
        else
        if (zmq_msg_send (&payloads [i], socket, more) == -1)
            return -1;
    }
    return 0;
}

int
drv_grow (void **array_p, size_t *cap_p, size_t need, size_t size)
{
    if (need <= *cap_p)
        return 0;
    size_t cap = *cap_p? *cap_p: 16;
    while (cap < need)
        cap *= 2;
    void *bigger = realloc (*array_p, cap * size);
    if (!bigger)
        return -1;
    *array_p = bigger;
    *cap_p = cap;
    return 0;
}

char *
drv_read_file (const char *path, size_t *size_p)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    size_t cap = 4096, size = 0;
    char *data = malloc (cap);
    while (data) {
        size_t got = fread (data + size, 1, cap - size - 1, file);
        size += got;
        if (got == 0)
            break;
        if (size + 1 == cap) {
            char *bigger = realloc (data, cap * 2);
            if (!bigger) {
                free (data);
                data = NULL;
                break;
            }
            data = bigger;
            cap *= 2;
        }
    }
    int failed = ferror (file);
    fclose (file);
    if (!data || failed) {
        free (data);
        return NULL;
    }
    data [size] = 0;
    if (size_p)
        *size_p = size;
    return data;
}
