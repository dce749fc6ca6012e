/*  fuzz_codec.c - the envelope decoder against arbitrary bytes.

    Whatever the input, decoding must not crash, leak or read out of
    bounds; and whatever decodes must encode again and decode to the same
    command. Under clang this is a libFuzzer target; elsewhere main()
    below feeds it valid envelopes of every command, their truncations,
    single-byte flips and random bytes.
*/
#include "codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static drv_codec_t *decoder = NULL, *encoder = NULL;
    if (!decoder) {
        decoder = drv_codec_new ();
        encoder = drv_codec_new ();
    }
    drv_msg_t msg;
    if (drv_codec_decode (decoder, data, size, &msg) != 0)
        return 0;
    zmq_msg_t frame;
    if (drv_codec_encode (encoder, &msg, &frame) != 0)
        abort ();           //  a decoded message must always encode
    drv_cmd_t cmd = msg.cmd;
    size_t count = msg.count;
    drv_msg_t again;
    if (drv_codec_decode (decoder, zmq_msg_data (&frame), zmq_msg_size (&frame), &again) != 0
    ||  again.cmd != cmd || again.count != count)
        abort ();
    zmq_msg_close (&frame);
    drv_codec_reset (encoder);
    return 0;
}

#ifndef DROVER_LIBFUZZER
static uint64_t s_state = 0x2545f4914f6cdd1dULL;

static uint64_t
s_rand (void)
{
    s_state ^= s_state << 13;
    s_state ^= s_state >> 7;
    s_state ^= s_state << 17;
    return s_state;
}

//  Runs the target on data, on every truncation, and on byte flips.
static void
s_mutate (const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc (size + 1);
    for (size_t cut = 0; cut <= size; cut++)
        LLVMFuzzerTestOneInput (data, cut);
    for (int round = 0; round < 200 && size; round++) {
        memcpy (copy, data, size);
        copy [s_rand () % size] ^= (uint8_t) (1 + s_rand () % 255);
        LLVMFuzzerTestOneInput (copy, size);
    }
    free (copy);
}

int
main (void)
{
    drv_codec_t *codec = drv_codec_new ();
    uint8_t ids [3][DRV_ID_SIZE] = {{1}, {2}, {3}};
    drv_jobspec_t specs [2];
    memset (specs, 0, sizeof specs);
    specs [0].queue = "q";
    specs [1].queue = "other";
    specs [1].priority = 9;
    drv_result_t results [2];
    memset (results, 0, sizeof results);
    results [0].error = "boom";
    results [1].state = DRV_JOB_DONE;
    results [1].error = "";
    const char *queues [2] = {"a", "b"};
    for (int cmd = DRV_CMD_HELLO; cmd < DRV_CMD_COUNT_; cmd++) {
        drv_msg_t msg;
        drv_msg_init (&msg, (drv_cmd_t) cmd, 7);
        memcpy (msg.hello.session, ids [0], DRV_ID_SIZE);
        msg.hello.name = "fuzz";
        msg.hello.queues = queues;
        msg.hello.queue_count = 2;
        msg.welcome.role = "admin";
        msg.error.message = "bad";
        msg.error.ids = ids;
        msg.error.id_count = 2;
        msg.specs = specs;
        msg.results = results;
        msg.ids = ids;
        msg.count = (cmd == DRV_CMD_SUBMIT || cmd == DRV_CMD_REPORT || cmd == DRV_CMD_DELIVER
                     || cmd == DRV_CMD_QUERY || cmd == DRV_CMD_CANCEL
                     || cmd == DRV_CMD_DEAD_LETTER)? 2: 0;
        msg.queue_control.queue = "q";
        msg.dead.queue = "q";
        zmq_msg_t frame;
        if (drv_codec_encode (codec, &msg, &frame) != 0) {
            fprintf (stderr, "cannot encode %s\n", drv_cmd_name ((drv_cmd_t) cmd));
            return 1;
        }
        s_mutate (zmq_msg_data (&frame), zmq_msg_size (&frame));
        zmq_msg_close (&frame);
        drv_codec_reset (codec);
    }
    uint8_t noise [512];
    for (int round = 0; round < 20000; round++) {
        size_t size = s_rand () % sizeof noise;
        for (size_t i = 0; i < size; i++)
            noise [i] = (uint8_t) s_rand ();
        LLVMFuzzerTestOneInput (noise, size);
    }
    drv_codec_destroy (&codec);
    printf ("fuzz_codec: generated inputs passed\n");
    return 0;
}
#endif
