/*  fuzz_codec_fields.c - every field the codec decodes, it encodes again.

    For any input that decodes, encoding the result and decoding that must
    give a message which encodes to exactly the same bytes: a field that
    the decoder reads but the encoder drops (or the other way round), or a
    value that changes on the way through, shows up as a difference. This
    is stricter than fuzz_codec, which compares the command and the list
    length only.

    Under clang this is a libFuzzer target started from the envelope seeds
    (one of every command, all fields set); elsewhere main() runs those
    seeds, every truncation and byte flips of them, and random bytes.
*/
#include "codec.h"
#include "hostile/seeds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static drv_codec_t *first, *second, *encoder;
    if (!first) {
        first = drv_codec_new ();
        second = drv_codec_new ();
        encoder = drv_codec_new ();
    }
    drv_msg_t msg;
    if (drv_codec_decode (first, data, size, &msg) != 0)
        return 0;
    zmq_msg_t once, twice;
    if (drv_codec_encode (encoder, &msg, &once) != 0)
        abort ();
    drv_msg_t again;
    if (drv_codec_decode (second, zmq_msg_data (&once), zmq_msg_size (&once), &again) != 0) {
        fprintf (stderr, "fuzz_codec_fields: %s re-encoded does not decode: %s\n",
                 drv_cmd_name (msg.cmd), drv_codec_error (second));
        abort ();
    }
    if (drv_codec_encode (encoder, &again, &twice) != 0)
        abort ();
    if (zmq_msg_size (&once) != zmq_msg_size (&twice)
    ||  memcmp (zmq_msg_data (&once), zmq_msg_data (&twice), zmq_msg_size (&once)) != 0) {
        fprintf (stderr, "fuzz_codec_fields: %s changes when encoded again (%zu then %zu bytes)\n",
                 drv_cmd_name (msg.cmd), zmq_msg_size (&once), zmq_msg_size (&twice));
        abort ();
    }
    zmq_msg_close (&once);
    zmq_msg_close (&twice);
    drv_codec_reset (encoder);
    return 0;
}

#ifndef DROVER_LIBFUZZER
static uint64_t s_state = 0xda942042e4dd58b5ULL;
static size_t s_runs;

static uint64_t
s_rand (void)
{
    s_state ^= s_state << 13;
    s_state ^= s_state >> 7;
    s_state ^= s_state << 17;
    return s_state;
}

static void
s_seed (const char *name, const uint8_t *data, size_t size, void *arg)
{
    uint8_t *copy = malloc (size + 1);
    LLVMFuzzerTestOneInput (data, size);
    for (size_t cut = 0; cut < size; cut++, s_runs++)
        LLVMFuzzerTestOneInput (data, cut);
    for (int round = 0; round < 2000; round++, s_runs++) {
        memcpy (copy, data, size);
        copy [s_rand () % size] ^= (uint8_t) (1 + s_rand () % 255);
        LLVMFuzzerTestOneInput (copy, size);
    }
    free (copy);
}

int
main (void)
{
    seeds_envelopes (s_seed, NULL);
    uint8_t noise [256];
    for (int round = 0; round < 50000; round++, s_runs++) {
        size_t size = s_rand () % sizeof noise;
        for (size_t i = 0; i < size; i++)
            noise [i] = (uint8_t) s_rand ();
        LLVMFuzzerTestOneInput (noise, size);
    }
    printf ("fuzz_codec_fields: %zu inputs, every decoded message encodes the same twice\n", s_runs);
    return 0;
}
#endif
