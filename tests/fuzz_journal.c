/*  fuzz_journal.c - libFuzzer target for the journal reader.

    Each input becomes the segment file(s) of a fresh journal directory,
    which is opened and replayed. Beyond "no crash, no leak, no UB", it
    checks the promise replay makes: once replay succeeds (cutting a torn
    tail if it must), the journal takes a new record, and a second open
    replays exactly the same records plus that one.

    The first input byte picks a mode, so the fuzzer gets past the parts
    it cannot guess: bit 0 prepends a valid base header, bit 1 rewrites
    every record checksum to be right, bit 2 splits the rest over two
    segments (the second with a valid non-base header when bit 0 is set).
*/
#include "journal.h"
#include "util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static char s_dir [300];                //  the journal directory, reused
static char s_root [256];               //  its parent, made once

static void
s_cleanup (void)
{
    DIR *dir = opendir (s_dir);
    if (dir) {
        struct dirent *entry;
        char path [600];
        while ((entry = readdir (dir)))
            if (entry->d_name [0] != '.') {
                snprintf (path, sizeof path, "%s/%s", s_dir, entry->d_name);
                unlink (path);
            }
        closedir (dir);
    }
}

static void
s_at_exit (void)
{
    s_cleanup ();
    rmdir (s_dir);
    rmdir (s_root);
}

static void
s_setup (void)
{
    if (s_root [0])
        return;
    const char *base = getenv ("TMPDIR");
    snprintf (s_root, sizeof s_root, "%s/drover-fuzz-XXXXXX", base && *base? base: "/tmp");
    if (!mkdtemp (s_root))
        abort ();
    snprintf (s_dir, sizeof s_dir, "%s/j", s_root);
    atexit (s_at_exit);
    //  Torn-tail warnings are expected by the thousand
    drv_log_setup (DRV_LOG_ERROR, false);
}

//  Syncing a temporary file per input would only slow the fuzzer down
static int
s_no_sync (int fd)
{
    (void) fd;
    return 0;
}

static const journal_io_t s_io = {NULL, s_no_sync, NULL};

static void
s_put_u32 (uint8_t *p, uint32_t value)
{
    for (int i = 0; i < 4; i++)
        p [i] = (uint8_t) (value >> (8 * i));
}

static uint32_t
s_get_u32 (const uint8_t *p)
{
    return (uint32_t) p [0] | (uint32_t) p [1] << 8 | (uint32_t) p [2] << 16
         | (uint32_t) p [3] << 24;
}

static void
s_header (uint8_t *header, uint32_t flags)
{
    memcpy (header, "DRVJ", 4);
    s_put_u32 (header + 4, 1);
    s_put_u32 (header + 8, flags);
    s_put_u32 (header + 12, journal_crc32c (0, header, 12));
}

//  Makes each record's checksum right, as far as the lengths allow.
static void
s_fix_crcs (uint8_t *p, size_t size)
{
    size_t offset = 0;
    while (size - offset >= 8) {
        uint32_t length = s_get_u32 (p + offset);
        if (length == 0 || length > size - offset - 8)
            break;
        s_put_u32 (p + offset + 4, journal_crc32c (0, p + offset + 8, length));
        offset += 8 + (size_t) length;
    }
}

static int
s_write (uint32_t seq, const uint8_t *header, const uint8_t *data, size_t size)
{
    char path [600];
    snprintf (path, sizeof path, "%s/journal-%06u.log", s_dir, (unsigned) seq);
    FILE *file = fopen (path, "wb");
    if (!file)
        return -1;
    if (header)
        fwrite (header, 1, 16, file);
    if (size)
        fwrite (data, 1, size, file);
    return fclose (file);
}

typedef struct {
    size_t count;                       //  records seen
    uint64_t digest;                    //  over types and bodies, to compare replays
} tally_t;

static int
s_tally (uint8_t type, const uint8_t *body, size_t size, void *arg)
{
    tally_t *tally = arg;
    uint64_t h = tally->digest ^ type ^ ((uint64_t) size << 8);
    for (size_t i = 0; i < size; i++)       //  touches every byte: ASan checks the bounds
        h = (h ^ body [i]) * 0x100000001b3ULL;
    tally->digest = h;
    tally->count++;
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_setup ();
    s_cleanup ();
    rmdir (s_dir);
    if (size == 0)
        return 0;
    uint8_t mode = data [0];
    data++;
    size--;
    uint8_t *copy = malloc (size? size: 1);
    if (!copy)
        abort ();
    if (size)
        memcpy (copy, data, size);

    uint8_t base [16], plain [16];
    s_header (base, 1);
    s_header (plain, 0);
    bool headers = mode & 1;
    //  Two segments: copy [0..1] say where the second starts, in [2, size]
    bool two = (mode & 4) && size >= 2;
    size_t start = two? 2: 0;
    size_t split = two? 2 + (size_t) (copy [0] | copy [1] << 8) % (size - 1): size;
    if (mode & 2) {
        s_fix_crcs (copy + start, split - start);
        s_fix_crcs (copy + split, size - split);
    }
    if (mkdir (s_dir, 0700) != 0)
        abort ();
    if (s_write (1, headers? base: NULL, copy + start, split - start))
        abort ();
    if (two && s_write (2, headers? plain: NULL, copy + split, size - split))
        abort ();
    free (copy);

    char why [256];
    journal_t *journal = journal_open (s_dir, &s_io, why, sizeof why);
    if (!journal)
        return 0;
    tally_t first = {0, 0};
    int rc = journal_replay (journal, s_tally, &first, why, sizeof why);
    if (rc == 0) {
        static const char extra [] = "one more record";
        if (journal_append (journal, 7, extra, 4, extra + 4, sizeof extra - 4) != 0
        ||  journal_commit (journal, why, sizeof why) != 0)
            abort ();
        s_tally (7, (const uint8_t *) extra, sizeof extra, &first);
        journal_close (&journal);
        journal = journal_open (s_dir, &s_io, why, sizeof why);
        if (!journal)
            abort ();
        tally_t second = {0, 0};
        if (journal_replay (journal, s_tally, &second, why, sizeof why) != 0
        ||  second.count != first.count || second.digest != first.digest) {
            fprintf (stderr, "journal changed across reopen: %s\n", why);
            abort ();
        }
    }
    journal_close (&journal);
    return 0;
}
