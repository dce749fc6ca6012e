/*  bench.c - `drover bench`: throughput and latency measurement.

    A stub for now; bench/ holds the raw-libzmq floor it will be compared
    with. Kept as its own file so the real command drops in here.
*/
#include "common.h"

#include <stdio.h>
#include <string.h>

int
cli_bench (int argc, char **argv)
{
    for (int index = 1; index < argc; index++)
        if (strcmp (argv [index], "--help") == 0 || strcmp (argv [index], "-h") == 0) {
            printf ("Usage: drover bench [options]\n"
                    "\n"
                    "Measures job throughput and latency against a broker (not implemented yet).\n");
            return CLI_EXIT_OK;
        }
    cli_error ("bench: not implemented yet");
    return CLI_EXIT_FAILED;
}
