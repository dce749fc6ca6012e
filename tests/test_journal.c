/*  test_journal.c - the broker journal: round trip, torn tails, corruption,
    injected disk failures, compaction, and a commit-rate printout.

    Each case works in its own temporary directory. Disk failures are
    injected through journal_io_t; the on-disk format is written out here
    by hand where a case needs a file the journal would never produce, so
    this test also pins the format.
*/
#define _GNU_SOURCE                     //  nftw
#include "journal.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond) \
    do { if (!(cond)) { fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); exit (1); } } while (0)

#define HEADER_SIZE 16
#define FRAME_SIZE  8
#define MAX_BODY    (1u << 20)


//  Fault injection ------------------------------------------------------------

typedef enum {
    WRITE_OK,               //  pass through
    WRITE_ENOSPC,           //  fail every call with ENOSPC
    WRITE_SHORT_THEN_FAIL,  //  write half, then fail with ENOSPC
    WRITE_EINTR_ONCE,       //  fail once with EINTR, then pass through
    WRITE_DRIBBLE           //  write at most 7 bytes per call (never fails)
} write_mode_t;

static write_mode_t s_write_mode;
static int s_fail_sync_at;          //  fail the Nth fdatasync from now (1 = next), 0 = never
static int s_fail_sync_count = 1;   //  ... and this many in a row from there
static int s_sync_delay_us;         //  a slow disk, to check the sync timing
static int s_fail_truncate;         //  ftruncate fails while set
static bool s_fake_sync;            //  skip the real fdatasync (speed, where it does not matter)
static int s_writev_calls;          //  calls seen, for "no syscalls" checks
static int s_sync_calls;
static int s_truncate_calls;

static ssize_t
s_writev (int fd, const struct iovec *iov, int iovcnt)
{
    s_writev_calls++;
    switch (s_write_mode) {
        case WRITE_ENOSPC:
            errno = ENOSPC;
            return -1;
        case WRITE_SHORT_THEN_FAIL: {
            s_write_mode = WRITE_ENOSPC;
            struct iovec half = {iov [0].iov_base, iov [0].iov_len / 2};
            return writev (fd, &half, 1);
        }
        case WRITE_EINTR_ONCE:
            s_write_mode = WRITE_OK;
            errno = EINTR;
            return -1;
        case WRITE_DRIBBLE: {
            struct iovec some = {iov [0].iov_base, iov [0].iov_len < 7? iov [0].iov_len: 7};
            return writev (fd, &some, 1);
        }
        default:
            return writev (fd, iov, iovcnt);
    }
}

static int
s_fdatasync (int fd)
{
    s_sync_calls++;
    if (s_fail_sync_at > 0 && --s_fail_sync_at == 0) {
        if (--s_fail_sync_count > 0)
            s_fail_sync_at = 1;
        errno = EIO;
        return -1;
    }
    if (s_sync_delay_us)
        usleep ((useconds_t) s_sync_delay_us);
    return s_fake_sync? 0: fdatasync (fd);
}

static int
s_ftruncate (int fd, off_t length)
{
    s_truncate_calls++;
    if (s_fail_truncate) {
        errno = EIO;
        return -1;
    }
    return ftruncate (fd, length);
}

static const journal_io_t s_io = {s_writev, s_fdatasync, s_ftruncate};

static void
s_faults_clear (void)
{
    s_write_mode = WRITE_OK;
    s_fail_sync_at = 0;
    s_fail_sync_count = 1;
    s_fail_truncate = 0;
    s_sync_delay_us = 0;
}


//  Records: content is a function of a 32-bit id, so a replay can be
//  checked against a list of ids without keeping the bodies.

static uint64_t
s_mix (uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static size_t
s_body_size (uint32_t id)
{
    uint64_t r = s_mix (id);
    if (id % 97 == 0)
        return MAX_BODY;                //  the largest body the broker sends
    if (id % 13 == 0)
        return 0;
    if (id % 7 == 0)
        return r % 70000;
    return r % 400;
}

//  Fills body (MAX_BODY bytes) with id's record; returns its size.
static size_t
s_record (uint32_t id, uint8_t *type, uint8_t *body, size_t *split)
{
    size_t size = s_body_size (id);
    uint64_t r = s_mix (id ^ 0x5bd1e995);
    *type = (uint8_t) (id * 31);
    *split = size? r % (size + 1): 0;
    for (size_t i = 0; i < size; i += 8) {
        r = s_mix (r + i);
        memcpy (body + i, &r, size - i < 8? size - i: 8);
    }
    return size;
}

static uint8_t *s_body;                 //  scratch, MAX_BODY bytes
static uint8_t *s_body2;                //  second scratch for checks

static void
s_append (journal_t *journal, uint32_t id)
{
    uint8_t type;
    size_t split;
    size_t size = s_record (id, &type, s_body, &split);
    CHECK (journal_append (journal, type, s_body, split, s_body + split, size - split) == 0);
}

static void
s_commit (journal_t *journal)
{
    char why [512];
    int rc = journal_commit (journal, why, sizeof why);
    if (rc)
        fprintf (stderr, "commit: %s\n", why);
    CHECK (rc == 0);
    CHECK (!journal_pending (journal));
}

//  Framed size of a record on disk
static uint64_t
s_framed (uint32_t id)
{
    return FRAME_SIZE + 1 + s_body_size (id);
}

typedef struct {
    const uint32_t *ids;                //  expected records, in order
    size_t count;                       //  how many
    size_t seen;                        //  records replayed so far
    int stop_at;                        //  return -1 at this record (-1: never)
} expect_t;

static int
s_expect_fn (uint8_t type, const uint8_t *body, size_t size, void *arg)
{
    expect_t *expect = arg;
    if ((int) expect->seen == expect->stop_at)
        return -1;
    CHECK (expect->seen < expect->count);
    uint32_t id = expect->ids [expect->seen++];
    uint8_t want_type;
    size_t split;
    size_t want = s_record (id, &want_type, s_body2, &split);
    CHECK (type == want_type);
    CHECK (size == want);
    CHECK (size == 0 || memcmp (body, s_body2, size) == 0);
    return 0;
}

//  Replays into expect; returns replay's result, leaves why filled.
static int
s_replay (journal_t *journal, const uint32_t *ids, size_t count, size_t *seen,
          char *why, size_t why_size)
{
    expect_t expect = {ids, count, 0, -1};
    int rc = journal_replay (journal, s_expect_fn, &expect, why, why_size);
    if (seen)
        *seen = expect.seen;
    return rc;
}

//  Opens dir, replays, checks the records are exactly ids, returns the journal.
static journal_t *
s_open_check (const char *dir, const uint32_t *ids, size_t count)
{
    char why [512];
    journal_t *journal = journal_open (dir, &s_io, why, sizeof why);
    if (!journal)
        fprintf (stderr, "open: %s\n", why);
    CHECK (journal);
    size_t seen;
    int rc = s_replay (journal, ids, count, &seen, why, sizeof why);
    if (rc)
        fprintf (stderr, "replay: %s\n", why);
    CHECK (rc == 0);
    CHECK (seen == count);
    return journal;
}

static uint32_t *
s_range (uint32_t first, size_t count)
{
    uint32_t *ids = malloc (count * sizeof *ids);
    CHECK (ids);
    for (size_t i = 0; i < count; i++)
        ids [i] = first + (uint32_t) i;
    return ids;
}


//  Files ----------------------------------------------------------------------

static int
s_rm_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove (path);
}

static void
s_rmrf (const char *dir)
{
    nftw (dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *
s_tmpdir (void)
{
    const char *base = getenv ("TMPDIR");
    char *dir = malloc (512);
    CHECK (dir);
    snprintf (dir, 512, "%s/drover-journal-XXXXXX", base && *base? base: "/tmp");
    CHECK (mkdtemp (dir));
    return dir;
}

static void
s_seg (const char *dir, uint32_t seq, char *path, size_t size)
{
    snprintf (path, size, "%s/journal-%06" PRIu32 ".log", dir, seq);
}

static int64_t
s_file_size (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0? (int64_t) st.st_size: -1;
}

static bool
s_exists (const char *path)
{
    return access (path, F_OK) == 0;
}

static uint8_t *
s_read_file (const char *path, size_t *size)
{
    char *data = drv_read_file (path, size);
    CHECK (data);
    return (uint8_t *) data;
}

static void
s_write_file (const char *path, const void *data, size_t size)
{
    FILE *file = fopen (path, "wb");
    CHECK (file);
    CHECK (size == 0 || fwrite (data, 1, size, file) == size);
    CHECK (fclose (file) == 0);
}

//  Flips one byte of a file in place.
static void
s_flip (const char *path, uint64_t offset, uint8_t mask)
{
    int fd = open (path, O_RDWR);
    CHECK (fd >= 0);
    uint8_t byte;
    CHECK (pread (fd, &byte, 1, (off_t) offset) == 1);
    byte ^= mask;
    CHECK (pwrite (fd, &byte, 1, (off_t) offset) == 1);
    close (fd);
}

//  Number of segment files (suffix ".log") or left-overs (".log.tmp") in dir
static int
s_count_files (const char *dir, const char *suffix)
{
    int count = 0;
    char path [600];
    for (uint32_t seq = 1; seq < 20; seq++) {
        snprintf (path, sizeof path, "%s/journal-%06" PRIu32 "%s", dir, seq, suffix);
        count += s_exists (path);
    }
    return count;
}

//  A segment header as the journal writes it (format version 1).
static void
s_header (uint8_t *header, uint32_t flags)
{
    memcpy (header, "DRVJ", 4);
    uint32_t version = 1;
    memcpy (header + 4, &version, 4);
    memcpy (header + 8, &flags, 4);
    uint32_t crc = journal_crc32c (0, header, 12);
    memcpy (header + 12, &crc, 4);
}


//  Capturing the journal's log lines (stderr) ---------------------------------

static int s_saved_stderr = -1;
static char s_capture_path [600];

static void
s_capture_begin (const char *dir)
{
    fflush (stderr);
    snprintf (s_capture_path, sizeof s_capture_path, "%s.log", dir);
    int fd = open (s_capture_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK (fd >= 0);
    s_saved_stderr = dup (2);
    dup2 (fd, 2);
    close (fd);
}

//  Returns what was logged (caller frees).
static char *
s_capture_end (void)
{
    fflush (stderr);
    dup2 (s_saved_stderr, 2);
    close (s_saved_stderr);
    size_t size;
    char *text = drv_read_file (s_capture_path, &size);
    CHECK (text);
    unlink (s_capture_path);
    return text;
}


//  Cases ----------------------------------------------------------------------

static uint32_t
s_crc_bitwise (const uint8_t *p, size_t size)
{
    uint32_t crc = ~0u;
    while (size--) {
        crc ^= *p++;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
    }
    return ~crc;
}

static void
test_crc (void)
{
    CHECK (journal_crc32c (0, "123456789", 9) == 0xE3069283u);
    uint8_t block [4096];
    memset (block, 0, 32);
    CHECK (journal_crc32c (0, block, 32) == 0x8A9136AAu);
    memset (block, 0xff, 32);
    CHECK (journal_crc32c (0, block, 32) == 0x62A8AB43u);
    CHECK (journal_crc32c (0, NULL, 0) == 0);
    for (size_t i = 0; i < sizeof block; i++)
        block [i] = (uint8_t) s_mix (i);
    //  Every alignment and many lengths, whole and in two parts
    for (size_t offset = 0; offset < 8; offset++)
        for (size_t size = 0; size + offset <= sizeof block; size += 1 + size / 3) {
            uint32_t want = s_crc_bitwise (block + offset, size);
            CHECK (journal_crc32c (0, block + offset, size) == want);
            size_t half = size / 3;
            uint32_t crc = journal_crc32c (0, block + offset, half);
            CHECK (journal_crc32c (crc, block + offset + half, size - half) == want);
        }
}

static void
test_roundtrip (void)
{
    char *dir = s_tmpdir ();
    char path [600], why [512];
    s_seg (dir, 1, path, sizeof path);

    //  A fresh journal is one header-only segment; an empty commit costs nothing
    journal_t *journal = s_open_check (dir, NULL, 0);
    CHECK (s_file_size (path) == HEADER_SIZE);
    CHECK (journal_size (journal) == HEADER_SIZE);
    CHECK (!journal_pending (journal));
    int calls = s_writev_calls + s_sync_calls + s_truncate_calls;
    CHECK (journal_commit (journal, why, sizeof why) == 0);
    CHECK (s_writev_calls + s_sync_calls + s_truncate_calls == calls);

    //  Batches of 1..40 records, one sync each
    enum { N = 3000, M = 200 };
    uint64_t expect_size = HEADER_SIZE;
    uint32_t id = 1;
    while (id <= N) {
        int batch = 1 + (int) (s_mix (id) % 40);
        for (int i = 0; i < batch && id <= N; i++, id++) {
            s_append (journal, id);
            expect_size += s_framed (id);
        }
        CHECK (journal_pending (journal));
        int syncs = s_sync_calls;
        s_commit (journal);
        CHECK (s_sync_calls == syncs + 1);
    }
    CHECK (journal_size (journal) == expect_size);
    CHECK ((uint64_t) s_file_size (path) == expect_size);
    //  Uncommitted records are dropped by close
    s_append (journal, 999999);
    journal_close (&journal);
    CHECK (journal == NULL);
    journal_close (&journal);           //  harmless on NULL

    uint32_t *ids = s_range (1, N + M);
    journal = s_open_check (dir, ids, N);
    CHECK (journal_size (journal) == expect_size);
    for (id = N + 1; id <= N + M; id++)
        s_append (journal, id);
    s_commit (journal);
    journal_close (&journal);
    journal = s_open_check (dir, ids, N + M);
    journal_close (&journal);

    //  Oversized records are refused, nothing is half-added
    journal = s_open_check (dir, ids, N + M);
    errno = 0;
    CHECK (journal_append (journal, 1, s_body, JOURNAL_MAX_RECORD, NULL, 0) == -1);
    CHECK (errno == EMSGSIZE);
    CHECK (journal_append (journal, 1, s_body, 1, s_body, SIZE_MAX) == -1);
    CHECK (!journal_pending (journal));
    journal_close (&journal);

    //  A callback error stops replay; replay names where if the callback did not
    journal = journal_open (dir, &s_io, why, sizeof why);
    CHECK (journal);
    expect_t expect = {ids, N + M, 0, 3};
    CHECK (journal_replay (journal, s_expect_fn, &expect, why, sizeof why) == -1);
    CHECK (expect.seen == 3);
    CHECK (strstr (why, "stopped at") && strstr (why, path));
    journal_close (&journal);

    //  A data directory whose parents do not exist yet is created
    char nested [600];
    snprintf (nested, sizeof nested, "%s/a/b/data", dir);
    journal = s_open_check (nested, NULL, 0);
    journal_close (&journal);
    free (ids);
    s_rmrf (dir);
    free (dir);
}

//  Builds a fresh journal in dir of ids, each committed alone; returns the
//  segment's bytes and the offset where the last record starts.
static uint8_t *
s_build (const char *dir, const uint32_t *ids, size_t count, size_t *size, uint64_t *last_offset)
{
    char path [600];
    s_seg (dir, 1, path, sizeof path);
    s_rmrf (dir);
    journal_t *journal = s_open_check (dir, NULL, 0);
    for (size_t i = 0; i < count; i++) {
        *last_offset = (uint64_t) s_file_size (path);
        s_append (journal, ids [i]);
        s_commit (journal);
    }
    journal_close (&journal);
    return s_read_file (path, size);
}

//  Writes data as the only segment of a fresh dir, replays, expects the
//  first count ids and a logged cut at offset, then checks the journal is
//  usable: an append after the cut replays after the survivors.
static void
s_torn_case (const char *dir, const uint8_t *data, size_t size, uint32_t *ids, size_t count,
             uint64_t cut_at, bool expect_cut)
{
    char path [600], why [512];
    s_rmrf (dir);
    CHECK (mkdir (dir, 0700) == 0);
    s_seg (dir, 1, path, sizeof path);
    s_write_file (path, data, size);

    s_capture_begin (dir);
    journal_t *journal = journal_open (dir, &s_io, why, sizeof why);
    CHECK (journal);
    size_t seen;
    int rc = s_replay (journal, ids, count, &seen, why, sizeof why);
    char *log = s_capture_end ();
    if (rc)
        fprintf (stderr, "replay: %s\n", why);
    CHECK (rc == 0);
    CHECK (seen == count);
    if (expect_cut) {
        char offset [32];
        snprintf (offset, sizeof offset, "offset %" PRIu64, cut_at);
        CHECK (strstr (log, "torn"));
        CHECK (strstr (log, path));
        CHECK (strstr (log, offset));
        char bytes [40];
        snprintf (bytes, sizeof bytes, "cut %" PRIu64 " bytes", (uint64_t) size - cut_at);
        CHECK (strstr (log, bytes));
    }
    else
        CHECK (log [0] == '\0');
    free (log);
    CHECK ((uint64_t) s_file_size (path) == cut_at);
    CHECK (journal_size (journal) == cut_at);

    //  The journal goes on from the cut
    uint32_t saved = ids [count];
    ids [count] = 777;
    s_append (journal, 777);
    s_commit (journal);
    journal_close (&journal);
    journal = s_open_check (dir, ids, count + 1);
    journal_close (&journal);
    ids [count] = saved;
}

static void
test_torn_tail (void)
{
    char *dir = s_tmpdir ();
    s_fake_sync = true;                 //  hundreds of reopen cycles; the data is in cache anyway
    enum { N = 20 };
    uint32_t ids [N + 2];
    for (uint32_t i = 0; i < N; i++)
        ids [i] = 1 + i;
    //  The last record: 300-odd bytes, every cut offset
    ids [N - 1] = 1000;
    while (s_body_size (ids [N - 1]) < 200 || s_body_size (ids [N - 1]) > 400)
        ids [N - 1]++;
    size_t size;
    uint64_t last;
    uint8_t *data = s_build (dir, ids, N, &size, &last);
    CHECK (size == last + s_framed (ids [N - 1]));
    for (uint64_t cut = last; cut < size; cut++)
        s_torn_case (dir, data, (size_t) cut, ids, N - 1, last, cut > last);
    //  The whole file: nothing cut, nothing logged
    s_torn_case (dir, data, size, ids, N, size, false);

    //  A bad checksum in the final record is a torn write
    uint8_t *copy = malloc (size + 8192);
    CHECK (copy);
    memcpy (copy, data, size);
    copy [size - 1] ^= 0x40;
    s_torn_case (dir, copy, size, ids, N - 1, last, true);
    copy [last + 4] ^= 0x01;            //  in its stored checksum, body intact
    copy [size - 1] ^= 0x40;
    s_torn_case (dir, copy, size, ids, N - 1, last, true);
    copy [last + 4] ^= 0x01;

    //  Torn writes that the filesystem left as zeros
    memset (copy + last + FRAME_SIZE, 0, size - last - FRAME_SIZE);
    s_torn_case (dir, copy, size, ids, N - 1, last, true);  //  body zero
    memset (copy + last, 0, size - last);
    s_torn_case (dir, copy, size, ids, N - 1, last, true);  //  whole record zero
    memcpy (copy, data, size);
    memset (copy + size, 0, 8192);
    s_torn_case (dir, copy, size + 8192, ids, N, size, true);   //  zeros after it
    free (copy);
    free (data);

    //  A 1 MiB last record, sampled offsets
    ids [N - 1] = 97 * 5;
    data = s_build (dir, ids, N, &size, &last);
    CHECK (size == last + s_framed (ids [N - 1]));
    uint64_t cuts [] = {last + 1, last + 4, last + 7, last + 8, last + 9,
                        last + (size - last) / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts [0]; i++)
        s_torn_case (dir, data, (size_t) cuts [i], ids, N - 1, last, true);
    free (data);
    s_fake_sync = false;
    s_rmrf (dir);
    free (dir);
}

//  Opens dir, replays, and expects -1 with why naming path and offset.
static void
s_expect_corrupt (const char *dir, const char *path, uint64_t offset, const uint32_t *ids,
                  size_t good)
{
    char why [512], want [64];
    int64_t size_before = s_file_size (path);
    journal_t *journal = journal_open (dir, &s_io, why, sizeof why);
    CHECK (journal);
    size_t seen;
    CHECK (s_replay (journal, ids, good, &seen, why, sizeof why) == -1);
    snprintf (want, sizeof want, "corrupt at offset %" PRIu64 ":", offset);
    if (!strstr (why, path) || !strstr (why, want))
        fprintf (stderr, "why: %s (want %s, %s)\n", why, path, want);
    CHECK (strstr (why, path));
    CHECK (strstr (why, want));
    CHECK (seen == good);
    journal_close (&journal);
    CHECK (s_file_size (path) == size_before);    //  evidence is never cut
}

static void
test_corruption (void)
{
    char *dir = s_tmpdir ();
    char path [600], path2 [600], why [512];
    enum { N = 50 };
    uint32_t *ids = s_range (1, N);
    int K = 25;                         //  the record to damage: one with a body
    while (s_body_size (ids [K]) < 4)
        K++;
    size_t size;
    uint64_t last;
    s_seg (dir, 1, path, sizeof path);
    uint8_t *data = s_build (dir, ids, N, &size, &last);
    //  Offset of record K (0-based)
    uint64_t at = HEADER_SIZE;
    for (int i = 0; i < K; i++)
        at += s_framed (ids [i]);

    //  A flipped byte in a body, in a checksum, in a length
    s_flip (path, at + FRAME_SIZE + 3, 0x10);
    s_expect_corrupt (dir, path, at, ids, (size_t) K);
    s_write_file (path, data, size);
    s_flip (path, at + 5, 0x01);
    s_expect_corrupt (dir, path, at, ids, (size_t) K);
    s_write_file (path, data, size);
    s_flip (path, at, 0x01);            //  length one off: checksum fails
    s_expect_corrupt (dir, path, at, ids, (size_t) K);
    s_write_file (path, data, size);
    s_flip (path, at + 3, 0x80);        //  length far too large
    s_expect_corrupt (dir, path, at, ids, (size_t) K);
    s_write_file (path, data, size);
    //  An impossible length is never a torn write, even at the very end
    s_flip (path, last + 3, 0x40);
    s_expect_corrupt (dir, path, last, ids, N - 1);
    s_write_file (path, data, size);
    //  A zero length followed by data
    int fd = open (path, O_RDWR);
    CHECK (fd >= 0);
    uint8_t zero [4] = {0};
    CHECK (pwrite (fd, zero, 4, (off_t) at) == 4);
    close (fd);
    s_expect_corrupt (dir, path, at, ids, (size_t) K);
    s_write_file (path, data, size);

    //  A bad header is corruption too, found by open
    s_flip (path, 1, 0x01);
    journal_t *journal = journal_open (dir, &s_io, why, sizeof why);
    CHECK (!journal);
    CHECK (strstr (why, path) && strstr (why, "corrupt at offset 0"));
    s_write_file (path, data, size);
    s_flip (path, 9, 0x01);             //  flags: caught by the header checksum
    CHECK (!journal_open (dir, &s_io, why, sizeof why));
    CHECK (strstr (why, "corrupt at offset 0"));
    s_write_file (path, data, 10);      //  shorter than a header
    CHECK (!journal_open (dir, &s_io, why, sizeof why));
    CHECK (strstr (why, "corrupt at offset 0"));
    s_write_file (path, data, size);

    //  A second, non-base segment: the first is no longer last, so what
    //  would be a torn tail there is corruption
    uint8_t header [HEADER_SIZE];
    s_header (header, 0);
    s_seg (dir, 2, path2, sizeof path2);
    s_write_file (path2, header, sizeof header);
    journal = s_open_check (dir, ids, N);
    s_append (journal, 4242);           //  appends go to the newest
    s_commit (journal);
    journal_close (&journal);
    CHECK ((uint64_t) s_file_size (path2) == HEADER_SIZE + s_framed (4242));
    CHECK ((uint64_t) s_file_size (path) == size);
    uint32_t *ids2 = s_range (1, N + 1);
    ids2 [N] = 4242;
    journal = s_open_check (dir, ids2, N + 1);
    journal_close (&journal);
    s_write_file (path, data, size - 1);
    s_expect_corrupt (dir, path, last, ids2, N - 1);
    s_write_file (path, data, size);
    s_flip (path, size - 1, 0x01);
    s_expect_corrupt (dir, path, last, ids2, N - 1);
    s_write_file (path, data, size);
    //  Corruption before the final record of the second segment
    unlink (path2);
    s_write_file (path2, header, sizeof header);
    journal = s_open_check (dir, ids, N);
    s_append (journal, 4242);
    s_append (journal, 4243);
    s_commit (journal);
    journal_close (&journal);
    s_flip (path2, HEADER_SIZE + FRAME_SIZE, 0x01);
    s_expect_corrupt (dir, path2, HEADER_SIZE, ids, N);

    //  Missing segments stop open: a gap, or no base to start from
    s_seg (dir, 3, path2, sizeof path2);
    s_write_file (path2, header, sizeof header);
    s_seg (dir, 2, path2, sizeof path2);
    unlink (path2);
    CHECK (!journal_open (dir, &s_io, why, sizeof why));
    CHECK (strstr (why, "journal-000002.log is missing"));
    unlink (path);
    CHECK (!journal_open (dir, &s_io, why, sizeof why));
    CHECK (strstr (why, "incomplete"));

    s_rmrf (dir);
    free (ids2);
    free (ids);
    free (data);
    free (dir);
}

//  Commits that fail must leave the file at its durable length and the
//  journal usable; replay then sees exactly what was committed.
static void
test_faults (void)
{
    char *dir = s_tmpdir ();
    char path [600], why [512];
    s_seg (dir, 1, path, sizeof path);
    journal_t *journal = s_open_check (dir, NULL, 0);
    uint32_t committed [32];
    size_t count = 0;

    s_append (journal, 1);
    s_append (journal, 2);
    s_commit (journal);
    committed [count++] = 1;
    committed [count++] = 2;
    int64_t durable = s_file_size (path);

    //  Disk full
    s_write_mode = WRITE_ENOSPC;
    s_append (journal, 3);
    CHECK (journal_commit (journal, why, sizeof why) == -1);
    CHECK (strstr (why, "No space left on device") && strstr (why, path));
    CHECK (!journal_pending (journal));
    CHECK (s_file_size (path) == durable);
    CHECK (journal_size (journal) == (uint64_t) durable);
    s_faults_clear ();
    s_append (journal, 4);
    s_commit (journal);
    committed [count++] = 4;
    durable = s_file_size (path);

    //  Half of a 1 MiB batch written, then the disk fills
    s_write_mode = WRITE_SHORT_THEN_FAIL;
    s_append (journal, 97 * 2);
    CHECK (journal_commit (journal, why, sizeof why) == -1);
    CHECK (strstr (why, "No space left on device"));
    CHECK (s_file_size (path) == durable);
    s_faults_clear ();
    s_append (journal, 6);
    s_commit (journal);
    committed [count++] = 6;

    //  EINTR and short writes are not failures
    s_write_mode = WRITE_EINTR_ONCE;
    s_append (journal, 7);
    s_commit (journal);
    committed [count++] = 7;
    s_write_mode = WRITE_DRIBBLE;
    s_append (journal, 8);
    s_append (journal, 9);
    s_commit (journal);
    committed [count++] = 8;
    committed [count++] = 9;
    s_faults_clear ();
    durable = s_file_size (path);

    //  fdatasync fails: the written batch is cut off again
    s_fail_sync_at = 1;
    s_append (journal, 10);
    CHECK (journal_commit (journal, why, sizeof why) == -1);
    CHECK (strstr (why, "sync") && strstr (why, "Input/output error"));
    CHECK (s_file_size (path) == durable);
    s_faults_clear ();
    s_sync_delay_us = 3000;
    s_append (journal, 11);
    s_commit (journal);
    CHECK (journal_last_sync_us (journal) >= 3000);
    s_faults_clear ();
    committed [count++] = 11;
    durable = s_file_size (path);

    //  The write fails and so does cutting back: nothing more is written
    //  until the cut succeeds, so the garbage never lands mid-file
    s_write_mode = WRITE_SHORT_THEN_FAIL;
    s_fail_truncate = 1;
    s_append (journal, 97 * 3);
    CHECK (journal_commit (journal, why, sizeof why) == -1);
    CHECK (s_file_size (path) > durable);
    s_write_mode = WRITE_OK;
    s_append (journal, 12);
    int writes = s_writev_calls;
    CHECK (journal_commit (journal, why, sizeof why) == -1);
    CHECK (strstr (why, "cannot cut"));
    CHECK (s_writev_calls == writes);
    s_faults_clear ();
    s_append (journal, 13);
    s_commit (journal);
    committed [count++] = 13;
    CHECK ((uint64_t) s_file_size (path) == (uint64_t) durable + s_framed (13));
    CHECK (journal_size (journal) == (uint64_t) s_file_size (path));
    journal_close (&journal);

    journal = s_open_check (dir, committed, count);
    journal_close (&journal);
    s_rmrf (dir);
    free (dir);
}

static uint64_t
s_framed_sum (const uint32_t *ids, size_t count)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < count; i++)
        sum += s_framed (ids [i]);
    return sum;
}

static void
s_compact_into (journal_t *journal, const uint32_t *ids, size_t count)
{
    char why [512];
    CHECK (journal_compact_begin (journal, why, sizeof why) == 0);
    CHECK (!journal_pending (journal));
    for (size_t i = 0; i < count; i++) {
        uint8_t type;
        size_t split;
        size_t size = s_record (ids [i], &type, s_body, &split);
        CHECK (journal_compact_append (journal, type, s_body, split, s_body + split,
                                       size - split) == 0);
    }
    int rc = journal_compact_end (journal, why, sizeof why);
    if (rc)
        fprintf (stderr, "compact: %s\n", why);
    CHECK (rc == 0);
}

static void
test_compact (void)
{
    char *dir = s_tmpdir ();
    char path1 [600], path2 [600], path3 [600], why [512];
    s_seg (dir, 1, path1, sizeof path1);
    s_seg (dir, 2, path2, sizeof path2);
    s_seg (dir, 3, path3, sizeof path3);
    journal_t *journal = s_open_check (dir, NULL, 0);
    for (uint32_t id = 1; id <= 1000; id++) {
        s_append (journal, id);
        if (id % 50 == 0)
            s_commit (journal);
    }
    uint64_t before = journal_size (journal);

    //  Every tenth record survives (with a 1 MiB one, so output is flushed
    //  in several writes); later appends follow the compacted records
    enum { LIVE = 100, LATER = 50 };
    uint32_t ids [LIVE + LATER];
    for (uint32_t i = 0; i < LIVE; i++)
        ids [i] = 10 * (i + 1);
    for (uint32_t i = 0; i < LATER; i++)
        ids [LIVE + i] = 2001 + i;
    s_compact_into (journal, ids, LIVE);
    CHECK (!s_exists (path1) && s_exists (path2));
    CHECK (s_count_files (dir, ".log.tmp") == 0);
    uint64_t after = HEADER_SIZE + s_framed_sum (ids, LIVE);
    CHECK (journal_size (journal) == after && after < before);
    CHECK ((uint64_t) s_file_size (path2) == after);
    for (size_t i = LIVE; i < LIVE + LATER; i++)
        s_append (journal, ids [i]);
    s_commit (journal);
    journal_close (&journal);
    journal = s_open_check (dir, ids, LIVE + LATER);

    //  Pending records must be committed first
    s_append (journal, 5);
    CHECK (journal_compact_begin (journal, why, sizeof why) == -1);
    CHECK (strstr (why, "pending"));
    s_commit (journal);
    journal_close (&journal);

    //  A crash after a compaction's rename, before the old segments were
    //  deleted, and one before its rename: open keeps only the new base
    uint32_t *ids2 = s_range (1, LIVE + LATER + 1);
    memcpy (ids2, ids, sizeof ids);
    ids2 [LIVE + LATER] = 5;
    size_t old_size;
    uint8_t *old = s_read_file (path2, &old_size);
    journal = s_open_check (dir, ids2, LIVE + LATER + 1);
    uint32_t *ids3 = s_range (3001, 10);
    s_compact_into (journal, ids3, 10);
    journal_close (&journal);
    CHECK (!s_exists (path2) && s_exists (path3));
    s_write_file (path2, old, old_size);
    char tmp [600];
    snprintf (tmp, sizeof tmp, "%s/journal-000004.log.tmp", dir);
    s_write_file (tmp, old, old_size / 2);
    journal = s_open_check (dir, ids3, 10);
    CHECK (!s_exists (path2) && !s_exists (tmp));
    CHECK (journal_size (journal) == (uint64_t) s_file_size (path3));
    journal_close (&journal);

    free (ids2);
    free (ids3);
    free (old);
    s_rmrf (dir);
    free (dir);
}

//  Checks a failed compaction left segment 1 alone and the journal usable:
//  an append after it commits and replays after the old records.
static void
s_after_failed_compaction (journal_t *journal, const char *dir, uint32_t *ids, size_t *count,
                           int64_t *size1, uint32_t next_id)
{
    char path1 [600], path2 [600], tmp [600];
    s_seg (dir, 1, path1, sizeof path1);
    s_seg (dir, 2, path2, sizeof path2);
    snprintf (tmp, sizeof tmp, "%s/journal-000002.log.tmp", dir);
    CHECK (!s_exists (path2) && !s_exists (tmp));
    CHECK (s_file_size (path1) == *size1);
    s_append (journal, next_id);
    s_commit (journal);
    ids [(*count)++] = next_id;
    *size1 = s_file_size (path1);
    CHECK (journal_size (journal) == (uint64_t) *size1);
}

static void
test_compact_fail (void)
{
    char *dir = s_tmpdir ();
    char path1 [600], why [512];
    s_seg (dir, 1, path1, sizeof path1);
    uint32_t ids [400];
    size_t count = 0;
    journal_t *journal = s_open_check (dir, NULL, 0);
    for (uint32_t id = 1; id <= 300; id++) {
        s_append (journal, id);
        ids [count++] = id;
    }
    s_commit (journal);
    int64_t size1 = s_file_size (path1);
    uint32_t live [3] = {3, 4, 5};
    uint8_t type;
    size_t split;

    //  The new segment's sync fails
    CHECK (journal_compact_begin (journal, why, sizeof why) == 0);
    for (int i = 0; i < 3; i++) {
        size_t size = s_record (live [i], &type, s_body, &split);
        CHECK (journal_compact_append (journal, type, s_body, split, s_body + split, size - split) == 0);
    }
    s_fail_sync_at = 1;
    CHECK (journal_compact_end (journal, why, sizeof why) == -1);
    CHECK (strstr (why, "sync") && strstr (why, "journal-000002.log.tmp"));
    s_faults_clear ();
    s_after_failed_compaction (journal, dir, ids, &count, &size1, 401);

    //  The directory sync after the rename fails: the rename is undone
    CHECK (journal_compact_begin (journal, why, sizeof why) == 0);
    s_fail_sync_at = 2;
    CHECK (journal_compact_end (journal, why, sizeof why) == -1);
    CHECK (strstr (why, "directory"));
    s_faults_clear ();
    s_after_failed_compaction (journal, dir, ids, &count, &size1, 402);

    //  The disk fills while the live records are written (1 MiB records,
    //  so the writes happen inside compact_append)
    CHECK (journal_compact_begin (journal, why, sizeof why) == 0);
    s_write_mode = WRITE_ENOSPC;
    int failed = 0;
    for (uint32_t id = 97; id <= 97 * 4; id += 97) {
        size_t size = s_record (id, &type, s_body, &split);
        failed += journal_compact_append (journal, type, s_body, split, s_body + split,
                                          size - split) != 0;
    }
    CHECK (failed >= 2);
    CHECK (journal_compact_end (journal, why, sizeof why) == -1);
    CHECK (strstr (why, "No space left on device"));
    s_faults_clear ();
    s_after_failed_compaction (journal, dir, ids, &count, &size1, 403);

    //  ... or in end's last write
    CHECK (journal_compact_begin (journal, why, sizeof why) == 0);
    size_t size = s_record (3, &type, s_body, &split);
    CHECK (journal_compact_append (journal, type, s_body, split, s_body + split, size - split) == 0);
    s_write_mode = WRITE_SHORT_THEN_FAIL;
    CHECK (journal_compact_end (journal, why, sizeof why) == -1);
    s_faults_clear ();
    s_after_failed_compaction (journal, dir, ids, &count, &size1, 404);

    //  Abandoned by the caller
    CHECK (journal_compact_begin (journal, why, sizeof why) == 0);
    CHECK (journal_compact_append (journal, type, s_body, split, s_body + split, size - split) == 0);
    journal_compact_abort (journal);
    journal_compact_abort (journal);    //  no-op when none is running
    s_after_failed_compaction (journal, dir, ids, &count, &size1, 405);

    //  Closed halfway
    CHECK (journal_compact_begin (journal, why, sizeof why) == 0);
    journal_close (&journal);
    journal = s_open_check (dir, ids, count);
    s_after_failed_compaction (journal, dir, ids, &count, &size1, 406);

    //  The rename cannot even be undone durably: the journal stops taking
    //  commits (a restart sorts the directory out) rather than risk that
    //  a later restart picks the half-published segment over new records
    CHECK (journal_compact_begin (journal, why, sizeof why) == 0);
    s_fail_sync_at = 2;
    s_fail_sync_count = 2;
    CHECK (journal_compact_end (journal, why, sizeof why) == -1);
    s_faults_clear ();
    s_append (journal, 407);
    CHECK (journal_commit (journal, why, sizeof why) == -1);
    CHECK (strstr (why, "restart"));
    CHECK (journal_compact_begin (journal, why, sizeof why) == -1);
    journal_close (&journal);

    journal = s_open_check (dir, ids, count);
    journal_close (&journal);
    s_rmrf (dir);
    free (dir);
}

static void
test_should_compact (void)
{
    char *dir = s_tmpdir ();
    journal_t *journal = s_open_check (dir, NULL, 0);
    for (uint32_t id = 1; id <= 90; id++)
        s_append (journal, id);
    s_commit (journal);
    uint64_t size = journal_size (journal);
    CHECK (size > 30000 && size < (4u << 20));
    //  Below the default minimum, never
    CHECK (!journal_should_compact (journal, 0, 2));
    journal_set_compact_min (journal, size - 1);
    CHECK (journal_should_compact (journal, size / 3 - 1, 3));
    CHECK (!journal_should_compact (journal, size / 3 + 1, 3));
    CHECK (journal_should_compact (journal, size / 2 - 1, 2));
    CHECK (!journal_should_compact (journal, size / 2 + 1, 2));
    CHECK (!journal_should_compact (journal, UINT64_MAX / 2, 4));   //  no overflow
    journal_set_compact_min (journal, size);
    CHECK (!journal_should_compact (journal, 0, 2));
    journal_close (&journal);
    s_rmrf (dir);
    free (dir);
}

static double
s_seconds (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

//  Printout only: rates depend on the disk
static void
bench (void)
{
    char *dir = s_tmpdir ();
    uint8_t record [64];
    memset (record, 'x', sizeof record);
    int batches [] = {1, 100};
    for (size_t b = 0; b < 2; b++) {
        s_rmrf (dir);
        journal_t *journal = s_open_check (dir, NULL, 0);
        uint64_t records = 0, commits = 0, sync_us = 0;
        double start = s_seconds (), elapsed = 0;
        while (elapsed < 1.0 && commits < 200000) {
            for (int i = 0; i < batches [b]; i++)
                CHECK (journal_append (journal, 1, record, 16, record + 16, 48) == 0);
            s_commit (journal);
            sync_us += journal_last_sync_us (journal);
            records += (uint64_t) batches [b];
            commits++;
            elapsed = s_seconds () - start;
        }
        printf ("journal bench: 64-byte records, batch %3d: %8.0f commits/s %9.0f records/s "
                "(mean sync %.0f us)\n", batches [b], commits / elapsed, records / elapsed,
                (double) sync_us / (double) commits);
        journal_close (&journal);
    }
    s_rmrf (dir);
    free (dir);
}

int
main (void)
{
    setvbuf (stdout, NULL, _IOLBF, 0);
    s_body = malloc (MAX_BODY);
    s_body2 = malloc (MAX_BODY);
    CHECK (s_body && s_body2);

    //  The table-driven CRC in a child (the choice is made once per process),
    //  then whatever this CPU uses
    pid_t pid = fork ();
    CHECK (pid >= 0);
    if (pid == 0) {
        setenv ("DROVER_CRC32C", "sw", 1);
        test_crc ();
        test_roundtrip ();
        _exit (0);
    }
    int status;
    CHECK (waitpid (pid, &status, 0) == pid);
    CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    printf ("crc32c (tables) and round trip: ok\n");
    test_crc ();
    printf ("crc32c: ok\n");
    test_roundtrip ();
    printf ("round trip: ok\n");
    test_torn_tail ();
    printf ("torn tails: ok\n");
    test_corruption ();
    printf ("corruption: ok\n");
    test_faults ();
    printf ("injected write/sync failures: ok\n");
    test_compact ();
    printf ("compaction: ok\n");
    test_compact_fail ();
    printf ("failed compactions: ok\n");
    test_should_compact ();
    printf ("should_compact: ok\n");
    bench ();
    free (s_body);
    free (s_body2);
    return 0;
}
