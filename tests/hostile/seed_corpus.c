/*  seed_corpus.c - writes the fuzzers' seed corpora.

        seed_corpus CODEC_DIR BROKER_DIR

    CODEC_DIR gets one valid envelope of every command (for fuzz_codec),
    BROKER_DIR one conversation per command the broker handles (for
    fuzz_broker); see seeds.h. Existing files of the same names are
    replaced; other files (what the fuzzers found) are left alone.
*/
#include "seeds.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

static int s_failed;
static int s_written;

static void
s_write (const char *name, const uint8_t *data, size_t size, void *arg)
{
    char path [4096];
    snprintf (path, sizeof path, "%s/seed-%s", (const char *) arg, name);
    FILE *file = fopen (path, "wb");
    if (!file || fwrite (data, 1, size, file) != size) {
        perror (path);
        s_failed = 1;
    }
    else
        s_written++;
    if (file && fclose (file))
        s_failed = 1;
}

int
main (int argc, char *argv [])
{
    if (argc != 3) {
        fprintf (stderr, "usage: seed_corpus CODEC_DIR BROKER_DIR\n");
        return 2;
    }
    for (int i = 1; i < 3; i++)
        if (mkdir (argv [i], 0755) && errno != EEXIST) {
            perror (argv [i]);
            return 1;
        }
    seeds_envelopes (s_write, argv [1]);
    int envelopes = s_written;
    seeds_broker (s_write, argv [2]);
    printf ("seed_corpus: %d envelopes in %s, %d conversations in %s\n",
            envelopes, argv [1], s_written - envelopes, argv [2]);
    //  Every command must have its envelope seed
    if (envelopes != DRV_CMD_COUNT_ - DRV_CMD_HELLO) {
        fprintf (stderr, "seed_corpus: %d envelope seeds for %d commands\n",
                 envelopes, DRV_CMD_COUNT_ - DRV_CMD_HELLO);
        return 1;
    }
    return s_failed;
}
