/*  journal.h - the broker's append-only, checksummed journal (durability).

    The journal is a directory of segment files, journal-NNNNNN.log, read
    in number order; appends go to the newest. Records are appended to an
    in-memory batch during a loop turn and made durable together by
    journal_commit() (one write and one fdatasync per turn: group commit).
    The broker acknowledges work only after the commit that holds it.

    Each segment starts with a 16-byte header (little-endian):
        "DRVJ", u32 format version (1), u32 flags, u32 CRC-32C of the first 12
    Flag 1 ("base") marks a segment that holds the whole state: the first
    segment and every compacted one. Segments older than the newest base
    are left-overs of a compaction interrupted after its rename; open
    deletes them, so replay never sees a record twice.

    Record framing on disk (little-endian):
        u32 length of type+body, u32 CRC-32C of type+body, u8 type, body
    A record whose length runs past the end of the last segment, or whose
    checksum fails at the very end of the last segment, is a torn write
    from a crash: replay cuts it off (truncating the file) and logs it.
    But if a record with a good checksum follows one whose length runs
    past the end, that length was damaged in place: corruption.
    Filesystems can also leave a crashed append as zeros, so a bad record
    in the last segment followed only by zero bytes is torn too. A bad
    record anywhere else is corruption: replay stops with an error naming
    the file and offset, and the broker refuses to start. A length above
    JOURNAL_MAX_RECORD is always corruption: we never write one, and a
    torn length field reads as a prefix plus zeros, i.e. smaller.

    Compaction rewrites the live state into a fresh segment: the caller
    starts it, appends the live records through journal_compact_append(),
    and ends it; the new segment is made durable and atomically replaces
    the old ones. The journal suggests compaction when its size exceeds a
    multiple of the live size the caller reports.

    Writes, syncs and truncations go through a replaceable journal_io_t,
    so tests can make writes or fsync fail, or the disk fill up.

    journal_stats() reads counters for metrics: size and segments on disk,
    records and commits, and every fdatasync counted and timed (monotonic
    clock) into a latency histogram. Counting costs two clock reads per
    sync and nothing per record beyond an increment.

    A journal_t is not thread-safe: one thread (the broker actor) owns it.
*/
#ifndef BROKER_JOURNAL_H_INCLUDED
#define BROKER_JOURNAL_H_INCLUDED

#include "prom.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct _journal_t journal_t;

//  Largest type+body of one record; larger appends are refused.
#define JOURNAL_MAX_RECORD (512u << 20)

//  File operations, replaceable for fault injection. NULL members take
//  the libc call of the same name. fdatasync is also used on the
//  directory (after creating or renaming a segment) and on a compaction's
//  new segment, so one hook covers every sync.
typedef struct {
    ssize_t (*writev) (int fd, const struct iovec *iov, int iovcnt);
    int (*fdatasync) (int fd);
    int (*ftruncate) (int fd, off_t length);
} journal_io_t;

//  Called for each valid record during replay, in order. body points into
//  a read-only mapping of the file: valid only during the call, and not
//  aligned. Return 0 to go on, -1 to stop replay with an error (the callee
//  may write its reason into the why buffer it was given through arg;
//  if it leaves why empty, replay names the file and offset instead).
typedef int (journal_record_fn) (uint8_t type, const uint8_t *body, size_t size, void *arg);

//  Opens (creating dir and its first segment if needed) the journal in dir.
//  io may be NULL; it is copied. Checks every segment header, removes
//  left-overs of interrupted compactions. Returns NULL with a reason in
//  why (a bad header is reported as corruption, with file and offset).
journal_t *journal_open (const char *dir, const journal_io_t *io, char *why, size_t why_size);

//  Closes the journal; records not yet committed are dropped, a compaction
//  in progress is abandoned. Sets *self_p to NULL; harmless on NULL.
void journal_close (journal_t **self_p);

//  Replays every record, oldest first. Returns 0, or -1 with why naming the
//  file and offset of a corrupt record (or the callback's error). Cuts a
//  torn tail off the last segment, logging file, offset and bytes cut.
//  Must be called once, after open and before any append (asserted).
int journal_replay (journal_t *self, journal_record_fn *fn, void *arg, char *why, size_t why_size);

//  Adds a record to the current batch. The body is given in up to two
//  parts (a header the caller built and, say, a payload) so payloads need
//  not be copied into a temporary first. Both are copied: the caller's
//  buffers may be reused at once. Returns 0, or -1 when out of memory or
//  the record exceeds JOURNAL_MAX_RECORD (errno ENOMEM or EMSGSIZE).
int journal_append (journal_t *self, uint8_t type, const void *head, size_t head_size,
                    const void *tail, size_t tail_size);

//  True if records were appended since the last commit.
bool journal_pending (journal_t *self);

//  Writes the batch and waits for it to be durable. Returns 0, or -1 when
//  the write or the sync failed (why says which; the batch is discarded
//  and the file is cut back to its last durable length, so the journal
//  stays consistent and can be appended to again). Records that failed to
//  commit were never acknowledged, so a copy of them that did reach the
//  disk may reappear after a crash; replay of a submit must be idempotent
//  by job id. A commit with nothing pending returns 0 at once.
int journal_commit (journal_t *self, char *why, size_t why_size);

//  Bytes on disk over all segments (committed records and headers).
uint64_t journal_size (journal_t *self);

//  True when the journal exceeds factor x live_bytes (and a minimum size),
//  i.e. it is time to compact.
bool journal_should_compact (journal_t *self, uint64_t live_bytes, unsigned factor);

//  Sets the minimum size below which compaction is never suggested
//  (default 4 MiB; tests lower it).
void journal_set_compact_min (journal_t *self, uint64_t bytes);

//  Compaction: begin a new segment, append the live records, end. Between
//  begin and end the caller must not call journal_append/commit. On any
//  failure the old segments stay as they were and appends go on to them.
//  Each returns 0 or -1. begin fails if records are pending (commit them
//  first). After a failed compact_append, call journal_compact_end (which
//  then returns -1 with the reason) or journal_compact_abort. On success,
//  end leaves one segment holding exactly the compacted records, and later
//  appends follow them.
int journal_compact_begin (journal_t *self, char *why, size_t why_size);
int journal_compact_append (journal_t *self, uint8_t type, const void *head, size_t head_size,
                            const void *tail, size_t tail_size);
int journal_compact_end (journal_t *self, char *why, size_t why_size);
//  Gives up a compaction after a failed compact_append: the temporary
//  segment is removed, the old segments stay in use. No-op when no
//  compaction is in progress.
void journal_compact_abort (journal_t *self);

//  Latency of the last commit's sync, in microseconds (for metrics).
uint64_t journal_last_sync_us (journal_t *self);

//  Counters for metrics. "Since open" counts restart with the process.
typedef struct {
    uint64_t bytes;             //  bytes on disk over all segments (as journal_size)
    uint64_t segments;          //  segment files in use
    uint64_t records;           //  records made durable by journal_commit since open
    uint64_t commits;           //  successful journal_commit calls that wrote a batch
    uint64_t commit_failures;   //  journal_commit calls that failed
    uint64_t compactions;       //  successful compactions since open
    uint64_t fsyncs;            //  fdatasync calls since open (commits, directories, compactions)
    uint64_t fsync_failures;    //  of those, the ones that failed
    prom_histogram_t fsync_seconds; //  latency of each fdatasync (monotonic clock)
} journal_stats_t;

//  Copies the journal's counters into *stats.
void journal_stats (journal_t *self, journal_stats_t *stats);

//  CRC-32C (Castagnoli) of data, continuing from crc (0 to start), as used
//  in the record framing. Uses SSE4.2 when the CPU has it (unless the
//  environment sets DROVER_CRC32C=sw), else slicing-by-8 tables.
uint32_t journal_crc32c (uint32_t crc, const void *data, size_t size);

#endif
