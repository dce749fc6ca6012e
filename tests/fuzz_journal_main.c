/*  fuzz_journal_main.c - runs the journal fuzz target without libFuzzer.

    For compilers without -fsanitize=fuzzer: feeds LLVMFuzzerTestOneInput
    the files named on the command line (a saved corpus or crash), or,
    with no arguments, generated inputs: valid journals, every truncation
    of one, single-byte flips, and random bytes, in every mode.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static uint64_t s_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
s_rand (void)
{
    s_state ^= s_state << 13;
    s_state ^= s_state >> 7;
    s_state ^= s_state << 17;
    return s_state;
}

static void
s_put_u32 (uint8_t *p, uint32_t value)
{
    for (int i = 0; i < 4; i++)
        p [i] = (uint8_t) (value >> (8 * i));
}

//  A mode byte followed by count records with random small bodies (the
//  checksums are left zero: mode bit 1 makes the target fill them in).
static size_t
s_journal (uint8_t *out, uint8_t mode, int count)
{
    size_t size = 0;
    out [size++] = mode;
    if (mode & 4) {
        out [size++] = 0;               //  split point, patched below
        out [size++] = 0;
    }
    for (int i = 0; i < count; i++) {
        uint32_t length = 1 + (uint32_t) (s_rand () % 40);
        s_put_u32 (out + size, length);
        s_put_u32 (out + size + 4, 0);
        for (uint32_t k = 0; k < length; k++)
            out [size + 8 + k] = (uint8_t) s_rand ();
        size += 8 + length;
        if ((mode & 4) && i == count / 2) {
            out [1] = (uint8_t) (size - 1);
            out [2] = (uint8_t) ((size - 1) >> 8);
        }
    }
    return size;
}

static int
s_run_file (const char *path)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        perror (path);
        return 1;
    }
    static uint8_t data [1 << 20];
    size_t size = fread (data, 1, sizeof data, file);
    fclose (file);
    LLVMFuzzerTestOneInput (data, size);
    return 0;
}

int
main (int argc, char *argv [])
{
    if (argc > 1) {
        int rc = 0;
        for (int i = 1; i < argc; i++)
            rc |= s_run_file (argv [i]);
        printf ("%d inputs: ok\n", argc - 1);
        return rc;
    }
    static uint8_t input [8192], mutated [8192];
    int runs = 0;
    for (uint8_t mode = 0; mode < 8; mode++) {
        size_t size = s_journal (input, mode, 20);
        LLVMFuzzerTestOneInput (input, size);
        //  Every truncation
        for (size_t cut = 0; cut < size; cut++, runs++)
            LLVMFuzzerTestOneInput (input, cut);
        //  Single-byte changes at every offset
        for (size_t at = 1; at < size; at++, runs++) {
            memcpy (mutated, input, size);
            mutated [at] ^= (uint8_t) (1 + s_rand () % 255);
            LLVMFuzzerTestOneInput (mutated, size);
        }
        //  Random bytes
        for (int i = 0; i < 50; i++, runs++) {
            size_t length = 1 + s_rand () % 600;
            for (size_t k = 0; k < length; k++)
                mutated [k] = (uint8_t) s_rand ();
            mutated [0] = mode;
            LLVMFuzzerTestOneInput (mutated, length);
        }
    }
    printf ("%d generated inputs: ok\n", runs);
    return 0;
}
