/*  test_journal_stats.c - the journal's counters for metrics: bytes and
    segments match the files on disk, records and fsyncs grow with
    commits, failures are counted, and each fsync lands in the latency
    histogram.
*/
#define _GNU_SOURCE                     //  nftw
#include "journal.h"
#include "checks.h"
#include "prom.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


static int s_sync_calls;                //  fdatasync calls seen
static bool s_sync_fail;                //  fail every fdatasync while set
static int s_sync_delay_us;             //  a slow disk

static int
s_fdatasync (int fd)
{
    s_sync_calls++;
    if (s_sync_delay_us) {
        struct timespec ts = {0, (long) s_sync_delay_us * 1000};
        nanosleep (&ts, NULL);
    }
    if (s_sync_fail) {
        errno = EIO;
        return -1;
    }
    return fdatasync (fd);
}

static int
s_skip (uint8_t type, const uint8_t *body, size_t size, void *arg)
{
    (void) type, (void) body, (void) size, (void) arg;
    return 0;
}

//  Bytes and count of the journal-*.log files in dir.
static uint64_t
s_disk_bytes (const char *dir, uint64_t *files)
{
    uint64_t bytes = 0;
    *files = 0;
    DIR *d = opendir (dir);
    if (!d)
        return 0;
    struct dirent *entry;
    while ((entry = readdir (d))) {
        size_t len = strlen (entry->d_name);
        if (strncmp (entry->d_name, "journal-", 8) != 0 || len < 4
        ||  strcmp (entry->d_name + len - 4, ".log") != 0)
            continue;
        char path [600];
        snprintf (path, sizeof path, "%s/%s", dir, entry->d_name);
        struct stat st;
        if (stat (path, &st) == 0) {
            bytes += (uint64_t) st.st_size;
            (*files)++;
        }
    }
    closedir (d);
    return bytes;
}

static void
s_check_disk (journal_t *journal, const char *dir, const char *when)
{
    journal_stats_t stats;
    journal_stats (journal, &stats);
    uint64_t files;
    uint64_t bytes = s_disk_bytes (dir, &files);
    CHECK (stats.bytes == bytes, "%s: bytes %llu, on disk %llu", when,
           (unsigned long long) stats.bytes, (unsigned long long) bytes);
    CHECK (stats.segments == files, "%s: segments %llu, on disk %llu", when,
           (unsigned long long) stats.segments, (unsigned long long) files);
    CHECK (stats.bytes == journal_size (journal), "%s: bytes agree with journal_size", when);
    CHECK (stats.fsync_seconds.count == stats.fsyncs, "%s: one observation per fsync", when);
}

static int
s_rm (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st, (void) flag, (void) ftw;
    return remove (path);
}

int
main (void)
{
    drv_log_setup (DRV_LOG_ERROR, false);
    char dir [] = "/tmp/drover-jstats-XXXXXX";
    if (!mkdtemp (dir)) {
        perror ("mkdtemp");
        return 1;
    }
    char jdir [64];
    snprintf (jdir, sizeof jdir, "%s/journal", dir);
    journal_io_t io = {.fdatasync = s_fdatasync};
    char why [256];
    journal_t *journal = journal_open (jdir, &io, why, sizeof why);
    CHECK (journal, "open: %s", why);
    if (!journal)
        return 1;
    CHECK (journal_replay (journal, s_skip, NULL, why, sizeof why) == 0, "replay: %s", why);

    journal_stats_t stats;
    journal_stats (journal, &stats);
    CHECK (stats.records == 0 && stats.commits == 0, "fresh journal: nothing committed");
    CHECK (stats.segments == 1, "fresh journal: one segment");
    CHECK (stats.fsyncs == (uint64_t) s_sync_calls && stats.fsyncs > 0,
           "creation syncs counted: %llu of %d", (unsigned long long) stats.fsyncs, s_sync_calls);
    CHECK (stats.fsync_seconds.bound_count > 0 && stats.fsync_seconds.bounds [0] == 0.00005,
           "fsync histogram has the fsync buckets");
    s_check_disk (journal, jdir, "fresh");

    //  Each commit: its records, one more fsync, bytes as on disk
    char payload [100];
    memset (payload, 'x', sizeof payload);
    for (int commit = 1; commit <= 10; commit++) {
        uint64_t fsyncs = stats.fsyncs;
        for (int i = 0; i < commit; i++)
            CHECK (journal_append (journal, 1, "head", 4, payload, (size_t) commit) == 0, "append");
        CHECK (journal_commit (journal, why, sizeof why) == 0, "commit: %s", why);
        journal_stats (journal, &stats);
        CHECK (stats.fsyncs == fsyncs + 1, "commit %d: fsyncs %llu", commit,
               (unsigned long long) stats.fsyncs);
        CHECK (stats.commits == (uint64_t) commit, "commits %llu", (unsigned long long) stats.commits);
        s_check_disk (journal, jdir, "after a commit");
    }
    CHECK (stats.records == 55, "records %llu", (unsigned long long) stats.records);

    //  An empty commit syncs nothing
    uint64_t fsyncs = stats.fsyncs;
    CHECK (journal_commit (journal, why, sizeof why) == 0, "empty commit");
    journal_stats (journal, &stats);
    CHECK (stats.fsyncs == fsyncs && stats.commits == 10, "empty commit counts nothing");

    //  A failed sync: counted as such, records not counted, bytes unchanged
    s_sync_fail = true;
    CHECK (journal_append (journal, 1, "lost", 4, NULL, 0) == 0, "append");
    CHECK (journal_commit (journal, why, sizeof why) == -1, "commit fails");
    s_sync_fail = false;
    journal_stats (journal, &stats);
    CHECK (stats.fsync_failures == 1, "fsync failures %llu", (unsigned long long) stats.fsync_failures);
    CHECK (stats.commit_failures == 1, "commit failures %llu", (unsigned long long) stats.commit_failures);
    CHECK (stats.records == 55 && stats.commits == 10, "failed commit adds no records");
    s_check_disk (journal, jdir, "after a failed commit");

    //  A slow disk shows in the latency histogram
    s_sync_delay_us = 3000;
    CHECK (journal_append (journal, 1, "slow", 4, NULL, 0) == 0, "append");
    CHECK (journal_commit (journal, why, sizeof why) == 0, "slow commit: %s", why);
    s_sync_delay_us = 0;
    journal_stats (journal, &stats);
    uint64_t at_least_2ms = 0;
    for (size_t i = 0; i <= stats.fsync_seconds.bound_count; i++)
        if (i == stats.fsync_seconds.bound_count || stats.fsync_seconds.bounds [i] > 0.0025)
            at_least_2ms += stats.fsync_seconds.counts [i];
    CHECK (at_least_2ms >= 1, "a 3 ms sync counted above 2.5 ms");
    CHECK (stats.fsync_seconds.sum >= 0.003, "sum includes it: %f", stats.fsync_seconds.sum);
    CHECK (journal_last_sync_us (journal) >= 3000, "last sync %llu us",
           (unsigned long long) journal_last_sync_us (journal));

    //  Compaction: one segment again, counted, bytes as on disk
    CHECK (journal_compact_begin (journal, why, sizeof why) == 0, "compact begin: %s", why);
    for (int i = 0; i < 5; i++)
        CHECK (journal_compact_append (journal, 1, "live", 4, NULL, 0) == 0, "compact append");
    CHECK (journal_compact_end (journal, why, sizeof why) == 0, "compact end: %s", why);
    journal_stats (journal, &stats);
    CHECK (stats.compactions == 1, "compactions %llu", (unsigned long long) stats.compactions);
    CHECK (stats.segments == 1, "one segment after compaction");
    CHECK (stats.records == 56, "compaction is not counted as committed records");
    s_check_disk (journal, jdir, "after compaction");

    //  And rendering it works with the writer
    prom_t *prom = prom_new ();
    prom_family (prom, "drover_journal_fsync_seconds", PROM_HISTOGRAM, "fsync latency.");
    prom_histogram (prom, "drover_journal_fsync_seconds", &stats.fsync_seconds, NULL);
    char count_line [64];
    snprintf (count_line, sizeof count_line, "drover_journal_fsync_seconds_count %llu\n",
              (unsigned long long) stats.fsyncs);
    CHECK (strstr (prom_data (prom), count_line) != NULL, "rendered count");
    prom_destroy (&prom);

    printf ("journal: %llu bytes in %llu segment(s), %llu records, %llu fsyncs (%.3f ms total)\n",
            (unsigned long long) stats.bytes, (unsigned long long) stats.segments,
            (unsigned long long) stats.records, (unsigned long long) stats.fsyncs,
            stats.fsync_seconds.sum * 1000);
    journal_close (&journal);
    nftw (dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    return CHECKS_RESULT ();
}
