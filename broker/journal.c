/*  journal.c - the broker's append-only, checksummed journal.

    On-disk format and recovery rules are in journal.h. The choices here:

    - One growable batch buffer holds the framed records of a loop turn;
      commit hands it to one writev and one fdatasync. The buffer is kept
      between turns, so steady-state appends never allocate.
    - The newest segment is opened O_APPEND and its durable length is
      tracked; any failed commit cuts the file back to that length, so a
      half-written batch can never sit in front of later records (which
      replay would rightly call corruption).
    - Segments are only ever born complete: header (and, for compaction,
      every record) written to a .tmp file, synced, renamed, and the
      directory synced. So a segment header is never torn, and a bad one
      is corruption.
    - Replay maps each segment read-only and hands the callback pointers
      into the mapping: no whole-file reads, no copies.
*/
#include "journal.h"
#include "util.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#   define S_CRC_HW 1
#   include <nmmintrin.h>
#endif

#define S_MAGIC          "DRVJ"
#define S_VERSION        1u
#define S_HEADER_SIZE    16             //  magic, version, flags, crc
#define S_FLAG_BASE      1u             //  segment holds the whole state
#define S_FRAME_SIZE     8              //  u32 length + u32 crc before each type+body
#define S_BATCH_KEEP     (4u << 20)     //  larger batch buffers are freed after use
#define S_BATCH_MIN      (64u << 10)    //  first allocation of the batch buffer
#define S_COMPACT_FLUSH  (1u << 20)     //  compaction writes in chunks of this size
#define S_COMPACT_MIN    (4u << 20)     //  default: never compact below this
#define S_FILE_MODE      0600           //  jobs may carry secrets
#define S_DIR_MODE       0700
#define S_SCAN_BUDGET    (256u << 20)   //  checksum bytes to tell a torn tail from a bad length

typedef struct {
    uint32_t seq;                       //  number in the file name
    uint64_t size;                      //  bytes on disk; for the newest, the durable length
} s_segment_t;

struct _journal_t {
    char *dir;                          //  directory holding the segments
    journal_io_t io;                    //  file operations, NULL members filled in
    int dir_fd;                         //  the directory, synced after create/rename
    int fd;                             //  newest segment, O_APPEND
    s_segment_t *segs;                  //  live segments, oldest (a base) first
    size_t seg_count;                   //  segments in use
    size_t seg_cap;                     //  segments allocated
    uint64_t size;                      //  sum of segment sizes
    uint64_t compact_min;               //  never suggest compaction below this size
    uint8_t *buf;                       //  framed records of this turn, or compaction output
    size_t buf_len;                     //  bytes in use
    size_t buf_cap;                     //  bytes allocated
    bool replayed;                      //  journal_replay has run; appends allowed
    bool dirty;                         //  bytes past the durable length may be on disk
    char broken [256];                  //  why nothing more can be committed, or ""
    uint64_t last_sync_us;              //  duration of the last commit's fdatasync
    bool compacting;                    //  between compact_begin and end/abort
    int tmp_fd;                         //  the compaction's .tmp segment
    uint32_t tmp_seq;                   //  the number it will be renamed to
    uint64_t tmp_size;                  //  bytes written to it so far
    char compact_error [256];           //  first compact_append failure, or ""
    size_t batch_records;               //  records in the batch being built
    uint64_t sync_us;                   //  duration of the most recent fdatasync
    journal_stats_t stats;              //  counters for metrics (bytes, segments filled in on read)
};


//  Helpers ------------------------------------------------------------------

static void
s_why (char *why, size_t why_size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_why (char *why, size_t why_size, const char *format, ...)
{
    if (!why || why_size == 0)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (why, why_size, format, args);
    va_end (args);
}

static void
s_put_u32 (uint8_t *p, uint32_t value)
{
    p [0] = (uint8_t) value;
    p [1] = (uint8_t) (value >> 8);
    p [2] = (uint8_t) (value >> 16);
    p [3] = (uint8_t) (value >> 24);
}

static uint32_t
s_get_u32 (const uint8_t *p)
{
    return (uint32_t) p [0] | (uint32_t) p [1] << 8 | (uint32_t) p [2] << 16
         | (uint32_t) p [3] << 24;
}

static uint64_t
s_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void
s_seg_path (journal_t *self, uint32_t seq, bool tmp, char *path, size_t size)
{
    snprintf (path, size, "%s/journal-%06" PRIu32 ".log%s", self->dir, seq, tmp? ".tmp": "");
}

//  Parses "journal-N.log" or "journal-N.log.tmp"; false for anything else.
static bool
s_parse_name (const char *name, uint32_t *seq, bool *tmp)
{
    if (strncmp (name, "journal-", 8) != 0)
        return false;
    const char *p = name + 8;
    uint32_t value = 0;
    size_t digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        uint32_t digit = (uint32_t) (*p - '0');
        if (value > (UINT32_MAX - digit) / 10)
            return false;
        value = value * 10 + digit;
    }
    if (digits == 0 || value == 0)
        return false;
    if (strcmp (p, ".log") == 0)
        *tmp = false;
    else
    if (strcmp (p, ".log.tmp") == 0)
        *tmp = true;
    else
        return false;
    *seq = value;
    return true;
}

static int
s_seq_cmp (const void *a, const void *b)
{
    uint32_t x = ((const s_segment_t *) a)->seq;
    uint32_t y = ((const s_segment_t *) b)->seq;
    return (x > y) - (x < y);
}

//  fdatasync through the io hook; EINTR is not a failure, just retried.
//  Each call is counted and timed for metrics (errno is kept).
static int
s_sync (journal_t *self, int fd)
{
    uint64_t start = s_now_us ();
    int rc;
    do
        rc = self->io.fdatasync (fd);
    while (rc != 0 && errno == EINTR);
    int err = errno;
    self->sync_us = s_now_us () - start;
    self->stats.fsyncs++;
    if (rc != 0)
        self->stats.fsync_failures++;
    prom_histogram_observe (&self->stats.fsync_seconds, (double) self->sync_us / 1e6);
    errno = err;
    return rc;
}

//  mkdir, and on success sync the parent so the new entry survives a power
//  loss (else a first start could lose the whole journal).
static int
s_mkdir_durable (journal_t *self, char *path)
{
    if (mkdir (path, S_DIR_MODE) != 0)
        return errno == EEXIST? 0: -1;
    char *slash = strrchr (path, '/');
    const char *parent = ".";
    if (slash == path)
        parent = "/";
    else
    if (slash) {
        *slash = '\0';
        parent = path;
    }
    int fd = open (parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd < 0? -1: s_sync (self, fd);
    int err = errno;
    if (fd >= 0)
        close (fd);
    if (slash && slash != path)
        *slash = '/';
    errno = err;
    return rc;
}

//  mkdir -p: the data directory may be given as a path whose parents do
//  not exist yet.
static int
s_mkdirs (journal_t *self, const char *dir)
{
    char path [PATH_MAX];
    if (snprintf (path, sizeof path, "%s", dir) >= (int) sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/' || p [-1] == '/')
            continue;
        *p = '\0';
        int rc = s_mkdir_durable (self, path);
        *p = '/';
        if (rc)
            return -1;
    }
    return s_mkdir_durable (self, path);
}

//  Writes all of data through io.writev, going on after partial writes and
//  EINTR. Returns 0 or -1 with errno set.
static int
s_write_all (journal_t *self, int fd, const uint8_t *data, size_t size)
{
    while (size > 0) {
        struct iovec iov = {(void *) data, size};
        ssize_t n = self->io.writev (fd, &iov, 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0 || (size_t) n > size) {
            //  Would loop forever or overrun; no real writev does this
            errno = EIO;
            return -1;
        }
        data += n;
        size -= (size_t) n;
    }
    return 0;
}

static void
s_header_encode (uint8_t *header, uint32_t flags)
{
    memcpy (header, S_MAGIC, 4);
    s_put_u32 (header + 4, S_VERSION);
    s_put_u32 (header + 8, flags);
    s_put_u32 (header + 12, journal_crc32c (0, header, 12));
}

//  Reads and checks a segment header. Returns 0 with *flags, or -1 with why.
static int
s_header_read (const char *path, uint32_t *flags, char *why, size_t why_size)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        s_why (why, why_size, "cannot open journal %s: %s", path, strerror (errno));
        return -1;
    }
    uint8_t header [S_HEADER_SIZE];
    ssize_t n;
    do
        n = pread (fd, header, sizeof header, 0);
    while (n < 0 && errno == EINTR);
    int err = errno;
    close (fd);
    const char *reason = NULL;
    if (n < 0) {
        s_why (why, why_size, "cannot read journal %s: %s", path, strerror (err));
        return -1;
    }
    if (n < S_HEADER_SIZE)
        reason = "file is shorter than its header";
    else
    if (memcmp (header, S_MAGIC, 4) != 0)
        reason = "not a journal segment (bad magic)";
    else
    if (s_get_u32 (header + 12) != journal_crc32c (0, header, 12))
        reason = "header checksum mismatch";
    else
    if (s_get_u32 (header + 4) != S_VERSION) {
        s_why (why, why_size, "journal %s has format version %" PRIu32 ", this broker reads %u",
               path, s_get_u32 (header + 4), S_VERSION);
        return -1;
    }
    if (reason) {
        s_why (why, why_size, "journal %s is corrupt at offset 0: %s", path, reason);
        return -1;
    }
    *flags = s_get_u32 (header + 8);
    return 0;
}

//  Makes sure the batch buffer has room for extra more bytes.
static int
s_reserve (journal_t *self, size_t extra)
{
    if (self->buf_cap - self->buf_len >= extra)
        return 0;
    size_t cap = self->buf_cap? self->buf_cap: S_BATCH_MIN;
    while (cap - self->buf_len < extra)
        cap *= 2;
    uint8_t *buf = realloc (self->buf, cap);
    if (!buf) {
        errno = ENOMEM;
        return -1;
    }
    self->buf = buf;
    self->buf_cap = cap;
    return 0;
}

//  Empties the batch; a buffer grown by a rare huge batch is given back so
//  one big payload does not pin memory for the broker's lifetime.
static void
s_batch_reset (journal_t *self)
{
    self->buf_len = 0;
    self->batch_records = 0;
    if (self->buf_cap > S_BATCH_KEEP) {
        free (self->buf);
        self->buf = NULL;
        self->buf_cap = 0;
    }
}

//  Frames one record onto the end of the buffer. Returns 0 or -1 (errno).
static int
s_frame (journal_t *self, uint8_t type, const void *head, size_t head_size,
         const void *tail, size_t tail_size)
{
    if (head_size > JOURNAL_MAX_RECORD - 1 || tail_size > JOURNAL_MAX_RECORD - 1 - head_size) {
        errno = EMSGSIZE;
        return -1;
    }
    size_t length = 1 + head_size + tail_size;
    if (s_reserve (self, S_FRAME_SIZE + length))
        return -1;
    uint8_t *frame = self->buf + self->buf_len;
    uint8_t *body = frame + S_FRAME_SIZE;
    body [0] = type;
    if (head_size)
        memcpy (body + 1, head, head_size);
    if (tail_size)
        memcpy (body + 1 + head_size, tail, tail_size);
    s_put_u32 (frame, (uint32_t) length);
    s_put_u32 (frame + 4, journal_crc32c (0, body, length));
    self->buf_len += S_FRAME_SIZE + length;
    return 0;
}

static s_segment_t *
s_newest (journal_t *self)
{
    assert (self->seg_count > 0);
    return &self->segs [self->seg_count - 1];
}

static int
s_seg_push (journal_t *self, uint32_t seq)
{
    if (self->seg_count == self->seg_cap) {
        size_t cap = self->seg_cap? self->seg_cap * 2: 8;
        s_segment_t *segs = realloc (self->segs, cap * sizeof *segs);
        if (!segs)
            return -1;
        self->segs = segs;
        self->seg_cap = cap;
    }
    self->segs [self->seg_count++] = (s_segment_t) {seq, 0};
    return 0;
}


//  Segment creation ---------------------------------------------------------

//  Creates seq's .tmp file, empty. Returns the fd or -1 with why.
static int
s_tmp_open (journal_t *self, uint32_t seq, char *why, size_t why_size)
{
    char path [PATH_MAX];
    s_seg_path (self, seq, true, path, sizeof path);
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, S_FILE_MODE);
    if (fd < 0)
        s_why (why, why_size, "cannot create journal %s: %s", path, strerror (errno));
    return fd;
}

//  Makes a fully written .tmp segment durable under its final name: sync
//  the file, rename, sync the directory. On failure the new file is gone
//  (the caller closes fd) and -1 is returned with why. If even undoing the
//  rename cannot be made durable, a restart might find the new segment and
//  treat it as the base, hiding appends made after this failure; the
//  journal then refuses further commits.
static int
s_tmp_publish (journal_t *self, uint32_t seq, int fd, char *why, size_t why_size)
{
    char tmp [PATH_MAX], path [PATH_MAX];
    s_seg_path (self, seq, true, tmp, sizeof tmp);
    s_seg_path (self, seq, false, path, sizeof path);
    if (s_sync (self, fd) != 0) {
        s_why (why, why_size, "journal sync of %s failed: %s", tmp, strerror (errno));
        unlink (tmp);
        return -1;
    }
    if (rename (tmp, path) != 0) {
        s_why (why, why_size, "cannot rename %s: %s", tmp, strerror (errno));
        unlink (tmp);
        return -1;
    }
    if (s_sync (self, self->dir_fd) != 0) {
        s_why (why, why_size, "journal sync of directory %s failed: %s", self->dir, strerror (errno));
        if (unlink (path) != 0 || s_sync (self, self->dir_fd) != 0) {
            s_why (self->broken, sizeof self->broken,
                   "journal %s: cannot undo the creation of %s (%s); restart the broker",
                   self->dir, path, strerror (errno));
            drv_log (DRV_LOG_ERROR, "journal", "%s", self->broken);
        }
        return -1;
    }
    return 0;
}

//  A fresh journal: segment 1, a base holding nothing.
static int
s_create_first (journal_t *self, char *why, size_t why_size)
{
    int fd = s_tmp_open (self, 1, why, why_size);
    if (fd < 0)
        return -1;
    uint8_t header [S_HEADER_SIZE];
    s_header_encode (header, S_FLAG_BASE);
    if (s_write_all (self, fd, header, sizeof header) != 0) {
        char tmp [PATH_MAX];
        s_seg_path (self, 1, true, tmp, sizeof tmp);
        s_why (why, why_size, "journal write to %s failed: %s", tmp, strerror (errno));
        unlink (tmp);
        close (fd);
        return -1;
    }
    int rc = s_tmp_publish (self, 1, fd, why, why_size);
    close (fd);
    if (rc)
        return -1;
    if (s_seg_push (self, 1)) {
        s_why (why, why_size, "out of memory");
        return -1;
    }
    return 0;
}


//  Open ---------------------------------------------------------------------

//  Lists the segments, oldest first, and removes .tmp files: those are
//  compactions or creations that never reached their rename.
static int
s_scan (journal_t *self, char *why, size_t why_size)
{
    DIR *dir = opendir (self->dir);
    if (!dir) {
        s_why (why, why_size, "cannot read journal directory %s: %s", self->dir, strerror (errno));
        return -1;
    }
    int rc = 0;
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        uint32_t seq;
        bool tmp;
        if (!s_parse_name (entry->d_name, &seq, &tmp))
            continue;
        if (tmp) {
            char path [PATH_MAX];
            s_seg_path (self, seq, true, path, sizeof path);
            drv_log (DRV_LOG_INFO, "journal", "removing unfinished segment %s", path);
            unlink (path);
        }
        else
        if (s_seg_push (self, seq)) {
            s_why (why, why_size, "out of memory");
            rc = -1;
            break;
        }
    }
    closedir (dir);
    if (rc == 0 && self->seg_count > 1)
        qsort (self->segs, self->seg_count, sizeof *self->segs, s_seq_cmp);
    return rc;
}

//  Checks headers from the newest down to the newest base, drops anything
//  older (superseded by that base), and checks no segment is missing.
static int
s_check_segments (journal_t *self, char *why, size_t why_size)
{
    char path [PATH_MAX];
    size_t base = SIZE_MAX;
    for (size_t i = self->seg_count; i-- > 0;) {
        s_seg_path (self, self->segs [i].seq, false, path, sizeof path);
        uint32_t flags;
        if (s_header_read (path, &flags, why, why_size))
            return -1;
        if (flags & S_FLAG_BASE) {
            base = i;
            break;
        }
    }
    if (base == SIZE_MAX) {
        s_seg_path (self, self->segs [0].seq, false, path, sizeof path);
        s_why (why, why_size, "journal %s is incomplete: no segment before %s holds the "
               "start of the state (segments were deleted?)", self->dir, path);
        return -1;
    }
    if (base > 0) {
        for (size_t i = 0; i < base; i++) {
            s_seg_path (self, self->segs [i].seq, false, path, sizeof path);
            drv_log (DRV_LOG_INFO, "journal", "removing %s, superseded by a compaction", path);
            if (unlink (path) != 0 && errno != ENOENT)
                drv_log (DRV_LOG_WARN, "journal", "cannot remove %s: %s", path, strerror (errno));
        }
        //  Not fatal if this fails: the base supersedes them on every open
        if (s_sync (self, self->dir_fd) != 0)
            drv_log (DRV_LOG_WARN, "journal", "journal sync of directory %s failed: %s",
                     self->dir, strerror (errno));
        memmove (self->segs, self->segs + base, (self->seg_count - base) * sizeof *self->segs);
        self->seg_count -= base;
    }
    for (size_t i = 1; i < self->seg_count; i++)
        if (self->segs [i].seq != self->segs [i - 1].seq + 1) {
            s_seg_path (self, self->segs [i - 1].seq + 1, false, path, sizeof path);
            s_why (why, why_size, "journal %s is incomplete: %s is missing", self->dir, path);
            return -1;
        }
    return 0;
}

journal_t *
journal_open (const char *dir, const journal_io_t *io, char *why, size_t why_size)
{
    assert (dir);
    journal_t *self = calloc (1, sizeof *self);
    if (!self || !(self->dir = strdup (dir))) {
        free (self);
        s_why (why, why_size, "out of memory");
        return NULL;
    }
    self->dir_fd = self->fd = self->tmp_fd = -1;
    self->compact_min = S_COMPACT_MIN;
    prom_histogram_init_fsync (&self->stats.fsync_seconds);
    self->io.writev = io && io->writev? io->writev: writev;
    self->io.fdatasync = io && io->fdatasync? io->fdatasync: fdatasync;
    self->io.ftruncate = io && io->ftruncate? io->ftruncate: ftruncate;

    if (s_mkdirs (self, dir) != 0) {
        s_why (why, why_size, "cannot create journal directory %s: %s", dir, strerror (errno));
        goto fail;
    }
    self->dir_fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dir_fd < 0) {
        s_why (why, why_size, "cannot open journal directory %s: %s", dir, strerror (errno));
        goto fail;
    }
    if (s_scan (self, why, why_size))
        goto fail;
    if (self->seg_count == 0) {
        if (s_create_first (self, why, why_size))
            goto fail;
    }
    else
    if (s_check_segments (self, why, why_size))
        goto fail;

    char path [PATH_MAX];
    for (size_t i = 0; i < self->seg_count; i++) {
        s_seg_path (self, self->segs [i].seq, false, path, sizeof path);
        struct stat st;
        if (stat (path, &st) != 0) {
            s_why (why, why_size, "cannot stat journal %s: %s", path, strerror (errno));
            goto fail;
        }
        self->segs [i].size = (uint64_t) st.st_size;
        self->size += (uint64_t) st.st_size;
    }
    self->fd = open (path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (self->fd < 0) {
        s_why (why, why_size, "cannot open journal %s: %s", path, strerror (errno));
        goto fail;
    }
    return self;

fail:
    journal_close (&self);
    return NULL;
}

void
journal_close (journal_t **self_p)
{
    assert (self_p);
    journal_t *self = *self_p;
    if (!self)
        return;
    journal_compact_abort (self);
    if (self->fd >= 0)
        close (self->fd);
    if (self->dir_fd >= 0)
        close (self->dir_fd);
    free (self->segs);
    free (self->buf);
    free (self->dir);
    free (self);
    *self_p = NULL;
}


//  Replay -------------------------------------------------------------------

static bool
s_all_zero (const uint8_t *p, uint64_t size)
{
    for (uint64_t i = 0; i < size; i++)
        if (p [i])
            return false;
    return true;
}

//  Cuts the newest segment at offset, durably, after a torn write.
static int
s_cut_tail (journal_t *self, const char *path, uint64_t offset, uint64_t size,
            const char *reason, char *why, size_t why_size)
{
    if (self->io.ftruncate (self->fd, (off_t) offset) != 0 || s_sync (self, self->fd) != 0) {
        s_why (why, why_size, "cannot cut the torn tail of journal %s at offset %" PRIu64 ": %s",
               path, offset, strerror (errno));
        return -1;
    }
    drv_log (DRV_LOG_WARN, "journal", "torn write in %s at offset %" PRIu64 " (%s): "
             "cut %" PRIu64 " bytes", path, offset, reason, size - offset);
    s_segment_t *seg = s_newest (self);
    self->size -= seg->size - offset;
    seg->size = offset;
    return 0;
}

//  Looks for a complete record with a good checksum after offset. A record
//  whose length runs past the end of the file is a torn write only if
//  nothing valid follows it: a torn append leaves a prefix of one record
//  at the end, while a length damaged in the middle of the file (a flipped
//  bit) leaves the later records intact behind it. Returns the offset of
//  the first such record, or 0 when there is none or the checksum budget
//  ran out first (then *gave_up is set, and the tail is treated as torn).
static uint64_t
s_record_follows (const uint8_t *map, uint64_t offset, uint64_t size, bool *gave_up)
{
    uint64_t budget = S_SCAN_BUDGET;
    *gave_up = false;
    for (uint64_t at = offset + 1; at + S_FRAME_SIZE < size; at++) {
        uint32_t length = s_get_u32 (map + at);
        if (length == 0 || length > JOURNAL_MAX_RECORD || length > size - at - S_FRAME_SIZE)
            continue;
        if (length > budget) {
            *gave_up = true;
            return 0;
        }
        budget -= length;
        if (journal_crc32c (0, map + at + S_FRAME_SIZE, length) == s_get_u32 (map + at + 4))
            return at;
    }
    return 0;
}

//  Replays one segment. Returns 0 or -1 with why.
static int
s_replay_segment (journal_t *self, size_t index, journal_record_fn *fn, void *arg,
                  char *why, size_t why_size)
{
    bool last = index + 1 == self->seg_count;
    char path [PATH_MAX];
    s_seg_path (self, self->segs [index].seq, false, path, sizeof path);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat (fd, &st) != 0) {
        s_why (why, why_size, "cannot open journal %s: %s", path, strerror (errno));
        if (fd >= 0)
            close (fd);
        return -1;
    }
    uint64_t size = (uint64_t) st.st_size;
    if (size < S_HEADER_SIZE || size > SIZE_MAX) {
        //  The header was checked at open; only a change under us gets here
        close (fd);
        s_why (why, why_size, "journal %s is corrupt at offset 0: unexpected size %" PRIu64,
               path, size);
        return -1;
    }
    const uint8_t *map = mmap (NULL, (size_t) size, PROT_READ, MAP_PRIVATE, fd, 0);
    close (fd);
    if (map == MAP_FAILED) {
        s_why (why, why_size, "cannot map journal %s: %s", path, strerror (errno));
        return -1;
    }
    madvise ((void *) map, (size_t) size, MADV_SEQUENTIAL);

    int rc = 0;
    uint64_t offset = S_HEADER_SIZE;
    while (offset < size) {
        uint64_t left = size - offset;
        const char *reason = NULL;
        bool torn = false;
        uint32_t length = 0;
        if (left < S_FRAME_SIZE) {
            reason = "record header runs past the end of the file";
            torn = last;
        }
        else {
            length = s_get_u32 (map + offset);
            uint32_t crc = s_get_u32 (map + offset + 4);
            if (length == 0) {
                reason = "zero record length";
                torn = last && s_all_zero (map + offset, left);
            }
            else
            if (length > JOURNAL_MAX_RECORD)
                reason = "impossible record length";
            else
            if (length > left - S_FRAME_SIZE) {
                reason = "record runs past the end of the file";
                bool gave_up = false;
                uint64_t next = last? s_record_follows (map, offset, size, &gave_up): 0;
                if (next) {
                    munmap ((void *) map, (size_t) size);
                    s_why (why, why_size, "journal %s is corrupt at offset %" PRIu64 ": record "
                           "length %" PRIu32 " runs past the end of the file, but a valid "
                           "record follows at offset %" PRIu64, path, offset, length, next);
                    return -1;
                }
                if (gave_up)
                    drv_log (DRV_LOG_WARN, "journal", "%s offset %" PRIu64 ": cannot tell a "
                             "torn write from a damaged length within the scan budget; "
                             "treating it as torn", path, offset);
                torn = last;
            }
            else
            if (journal_crc32c (0, map + offset + S_FRAME_SIZE, length) != crc) {
                reason = "checksum mismatch";
                uint64_t end = offset + S_FRAME_SIZE + length;
                torn = last && s_all_zero (map + end, size - end);
            }
        }
        if (torn) {
            munmap ((void *) map, (size_t) size);
            return s_cut_tail (self, path, offset, size, reason, why, why_size);
        }
        if (reason) {
            s_why (why, why_size, "journal %s is corrupt at offset %" PRIu64 ": %s",
                   path, offset, reason);
            rc = -1;
            break;
        }
        const uint8_t *body = map + offset + S_FRAME_SIZE;
        if (fn (body [0], body + 1, length - 1, arg) != 0) {
            if (why && why_size && why [0] == '\0')
                s_why (why, why_size, "journal replay stopped at %s offset %" PRIu64,
                       path, offset);
            rc = -1;
            break;
        }
        offset += S_FRAME_SIZE + length;
    }
    munmap ((void *) map, (size_t) size);
    return rc;
}

int
journal_replay (journal_t *self, journal_record_fn *fn, void *arg, char *why, size_t why_size)
{
    assert (self && fn);
    assert (!self->replayed);
    self->replayed = true;
    if (why && why_size)
        why [0] = '\0';
    for (size_t i = 0; i < self->seg_count; i++)
        if (s_replay_segment (self, i, fn, arg, why, why_size))
            return -1;
    return 0;
}


//  Append and commit --------------------------------------------------------

int
journal_append (journal_t *self, uint8_t type, const void *head, size_t head_size,
                const void *tail, size_t tail_size)
{
    assert (self);
    assert (self->replayed);
    assert (!self->compacting);
    if (s_frame (self, type, head, head_size, tail, tail_size))
        return -1;
    self->batch_records++;
    return 0;
}

bool
journal_pending (journal_t *self)
{
    assert (self);
    return !self->compacting && self->buf_len > 0;
}

//  After a failed commit: cut the file back to the durable length. If even
//  that fails, the next commit retries it before writing anything.
static void
s_rollback (journal_t *self)
{
    if (self->io.ftruncate (self->fd, (off_t) s_newest (self)->size) != 0) {
        self->dirty = true;
        drv_log (DRV_LOG_WARN, "journal", "cannot cut journal back after a failed commit: %s",
                 strerror (errno));
    }
    else
        self->dirty = false;
    s_batch_reset (self);
}

int
journal_commit (journal_t *self, char *why, size_t why_size)
{
    assert (self);
    assert (!self->compacting);
    if (self->buf_len == 0)
        return 0;
    //  The path is only for error messages, but cheap next to a sync
    char path [PATH_MAX];
    s_segment_t *seg = s_newest (self);
    s_seg_path (self, seg->seq, false, path, sizeof path);
    if (self->broken [0]) {
        s_why (why, why_size, "%s", self->broken);
        s_batch_reset (self);
        self->stats.commit_failures++;
        return -1;
    }
    if (self->dirty) {
        if (self->io.ftruncate (self->fd, (off_t) seg->size) != 0) {
            s_why (why, why_size, "cannot cut journal %s back after a failed commit: %s",
                   path, strerror (errno));
            s_batch_reset (self);
            self->stats.commit_failures++;
            return -1;
        }
        self->dirty = false;
    }
    if (s_write_all (self, self->fd, self->buf, self->buf_len) != 0) {
        s_why (why, why_size, "journal write to %s failed: %s", path, strerror (errno));
        s_rollback (self);
        self->stats.commit_failures++;
        return -1;
    }
    int rc = s_sync (self, self->fd);
    int err = errno;
    self->last_sync_us = self->sync_us;
    if (rc != 0) {
        s_why (why, why_size, "journal sync of %s failed: %s", path, strerror (err));
        s_rollback (self);
        self->stats.commit_failures++;
        return -1;
    }
    seg->size += self->buf_len;
    self->size += self->buf_len;
    self->stats.records += self->batch_records;
    self->stats.commits++;
    s_batch_reset (self);
    return 0;
}

uint64_t
journal_size (journal_t *self)
{
    assert (self);
    return self->size;
}

bool
journal_should_compact (journal_t *self, uint64_t live_bytes, unsigned factor)
{
    assert (self);
    if (self->size <= self->compact_min)
        return false;
    if (factor > 0 && live_bytes > UINT64_MAX / factor)
        return false;
    return self->size > live_bytes * factor;
}

void
journal_set_compact_min (journal_t *self, uint64_t bytes)
{
    assert (self);
    self->compact_min = bytes;
}

uint64_t
journal_last_sync_us (journal_t *self)
{
    assert (self);
    return self->last_sync_us;
}

void
journal_stats (journal_t *self, journal_stats_t *stats)
{
    assert (self);
    assert (stats);
    *stats = self->stats;
    stats->bytes = self->size;
    stats->segments = self->seg_count;
}


//  Compaction ---------------------------------------------------------------

int
journal_compact_begin (journal_t *self, char *why, size_t why_size)
{
    assert (self);
    assert (self->replayed);
    assert (!self->compacting);
    if (self->buf_len > 0) {
        s_why (why, why_size, "journal %s: commit pending records before compacting", self->dir);
        return -1;
    }
    if (self->broken [0]) {
        s_why (why, why_size, "%s", self->broken);
        return -1;
    }
    uint32_t seq = s_newest (self)->seq;
    if (seq == UINT32_MAX) {
        s_why (why, why_size, "journal %s: segment numbers exhausted", self->dir);
        return -1;
    }
    seq++;
    int fd = s_tmp_open (self, seq, why, why_size);
    if (fd < 0)
        return -1;
    if (s_reserve (self, S_HEADER_SIZE)) {
        s_why (why, why_size, "out of memory");
        close (fd);
        char tmp [PATH_MAX];
        s_seg_path (self, seq, true, tmp, sizeof tmp);
        unlink (tmp);
        return -1;
    }
    s_header_encode (self->buf, S_FLAG_BASE);
    self->buf_len = S_HEADER_SIZE;
    self->compacting = true;
    self->tmp_fd = fd;
    self->tmp_seq = seq;
    self->tmp_size = 0;
    self->compact_error [0] = '\0';
    return 0;
}

//  Writes out the compaction buffer; remembers the first failure.
static int
s_compact_flush (journal_t *self)
{
    if (s_write_all (self, self->tmp_fd, self->buf, self->buf_len) != 0) {
        char tmp [PATH_MAX];
        s_seg_path (self, self->tmp_seq, true, tmp, sizeof tmp);
        s_why (self->compact_error, sizeof self->compact_error,
               "journal write to %s failed: %s", tmp, strerror (errno));
        return -1;
    }
    self->tmp_size += self->buf_len;
    self->buf_len = 0;
    return 0;
}

int
journal_compact_append (journal_t *self, uint8_t type, const void *head, size_t head_size,
                        const void *tail, size_t tail_size)
{
    assert (self);
    assert (self->compacting);
    if (self->compact_error [0])
        return -1;
    if (s_frame (self, type, head, head_size, tail, tail_size)) {
        s_why (self->compact_error, sizeof self->compact_error,
               "journal compaction: cannot add a record: %s", strerror (errno));
        return -1;
    }
    if (self->buf_len >= S_COMPACT_FLUSH)
        return s_compact_flush (self);
    return 0;
}

int
journal_compact_end (journal_t *self, char *why, size_t why_size)
{
    assert (self);
    assert (self->compacting);
    if (!self->compact_error [0])
        s_compact_flush (self);
    if (self->compact_error [0]) {
        s_why (why, why_size, "%s", self->compact_error);
        journal_compact_abort (self);
        return -1;
    }
    //  On failure publish has removed the file; the old segments stay live
    int rc = s_tmp_publish (self, self->tmp_seq, self->tmp_fd, why, why_size);
    self->compacting = false;
    s_batch_reset (self);
    if (rc) {
        close (self->tmp_fd);
        self->tmp_fd = -1;
        return -1;
    }
    //  The new base is durable: switch to it, then drop what it supersedes
    //  (should that fail, open drops them next time)
    uint64_t old_size = self->size;
    char path [PATH_MAX];
    for (size_t i = 0; i < self->seg_count; i++) {
        s_seg_path (self, self->segs [i].seq, false, path, sizeof path);
        if (unlink (path) != 0)
            drv_log (DRV_LOG_WARN, "journal", "cannot remove %s: %s", path, strerror (errno));
    }
    close (self->fd);
    self->fd = self->tmp_fd;
    self->tmp_fd = -1;
    self->segs [0] = (s_segment_t) {self->tmp_seq, self->tmp_size};
    self->seg_count = 1;
    self->size = self->tmp_size;
    self->dirty = false;
    s_seg_path (self, self->tmp_seq, false, path, sizeof path);
    drv_log (DRV_LOG_INFO, "journal", "compacted into %s: %" PRIu64 " -> %" PRIu64 " bytes",
             path, old_size, self->size);
    self->stats.compactions++;
    return 0;
}

void
journal_compact_abort (journal_t *self)
{
    assert (self);
    if (!self->compacting)
        return;
    char tmp [PATH_MAX];
    s_seg_path (self, self->tmp_seq, true, tmp, sizeof tmp);
    close (self->tmp_fd);
    self->tmp_fd = -1;
    unlink (tmp);
    self->compacting = false;
    self->compact_error [0] = '\0';
    s_batch_reset (self);
}


//  CRC-32C ------------------------------------------------------------------
//
//  Castagnoli polynomial (reflected 0x82F63B78): better error detection
//  than zlib's CRC-32 at these lengths, and an SSE4.2 instruction.

static uint32_t s_crc_table [8][256];
static bool s_crc_use_hw;
static pthread_once_t s_crc_once = PTHREAD_ONCE_INIT;

static void
s_crc_init (void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t crc = i;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
        s_crc_table [0][i] = crc;
    }
    //  table [k][i]: byte i followed by k zero bytes
    for (uint32_t i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++) {
            uint32_t prev = s_crc_table [k - 1][i];
            s_crc_table [k][i] = (prev >> 8) ^ s_crc_table [0][prev & 0xff];
        }
#if S_CRC_HW
    const char *force = getenv ("DROVER_CRC32C");
    s_crc_use_hw = __builtin_cpu_supports ("sse4.2") && !(force && strcmp (force, "sw") == 0);
#endif
}

//  Slicing-by-8: eight table lookups per 8 bytes instead of one per byte.
static uint32_t
s_crc_sw (uint32_t crc, const uint8_t *p, size_t size)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (size > 0 && ((uintptr_t) p & 7)) {
        crc = (crc >> 8) ^ s_crc_table [0][(crc ^ *p++) & 0xff];
        size--;
    }
    while (size >= 8) {
        uint64_t word;
        memcpy (&word, p, 8);
        word ^= crc;
        crc = s_crc_table [7][word & 0xff] ^ s_crc_table [6][(word >> 8) & 0xff]
            ^ s_crc_table [5][(word >> 16) & 0xff] ^ s_crc_table [4][(word >> 24) & 0xff]
            ^ s_crc_table [3][(word >> 32) & 0xff] ^ s_crc_table [2][(word >> 40) & 0xff]
            ^ s_crc_table [1][(word >> 48) & 0xff] ^ s_crc_table [0][word >> 56];
        p += 8;
        size -= 8;
    }
#endif
    while (size-- > 0)
        crc = (crc >> 8) ^ s_crc_table [0][(crc ^ *p++) & 0xff];
    return crc;
}

#if S_CRC_HW
__attribute__ ((target ("sse4.2")))
static uint32_t
s_crc_hw (uint32_t crc, const uint8_t *p, size_t size)
{
    while (size > 0 && ((uintptr_t) p & 7)) {
        crc = _mm_crc32_u8 (crc, *p++);
        size--;
    }
    uint64_t crc64 = crc;
    while (size >= 8) {
        uint64_t word;
        memcpy (&word, p, 8);
        crc64 = _mm_crc32_u64 (crc64, word);
        p += 8;
        size -= 8;
    }
    crc = (uint32_t) crc64;
    while (size-- > 0)
        crc = _mm_crc32_u8 (crc, *p++);
    return crc;
}
#endif

uint32_t
journal_crc32c (uint32_t crc, const void *data, size_t size)
{
    pthread_once (&s_crc_once, s_crc_init);
    crc = ~crc;
    if (size > 0) {
#if S_CRC_HW
        if (s_crc_use_hw)
            crc = s_crc_hw (crc, data, size);
        else
#endif
            crc = s_crc_sw (crc, data, size);
    }
    return ~crc;
}
