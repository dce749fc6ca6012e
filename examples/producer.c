/*  producer.c - submit a batch of jobs and print their results in order.

    Usage: producer QUEUE WORD...
    Connects with DROVER_BROKER, DROVER_SERVER_KEY and DROVER_CERT, submits
    one job per WORD in one batch, and prints each result as it comes.
*/
#include <drover.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main (int argc, char *argv [])
{
    if (argc < 3) {
        fprintf (stderr, "usage: producer QUEUE WORD...\n");
        return 2;
    }
    drover_connect_t cfg = {0};
    drover_connect_from_env (&cfg);
    drover_client_t *client;
    int rc = drover_client_connect (&cfg, &client);
    if (rc) {
        fprintf (stderr, "producer: cannot connect: %s\n", drover_strerror (rc));
        return 3;
    }
    size_t count = (size_t) argc - 2;
    const void **data = calloc (count, sizeof *data);
    size_t *size = calloc (count, sizeof *size);
    drover_future_t **futures = calloc (count, sizeof *futures);
    for (size_t i = 0; i < count; i++) {
        data [i] = argv [i + 2];
        size [i] = strlen (argv [i + 2]);
    }
    drover_job_opts_t opts = DROVER_JOB_OPTS_INIT;
    opts.max_attempts = 5;
    rc = drover_submit_many (client, argv [1], data, size, count, &opts, futures);
    int failed = rc != 0;
    if (rc)
        fprintf (stderr, "producer: submit: %s\n", drover_strerror (rc));
    for (size_t i = 0; !rc && i < count; i++) {
        int job_rc = drover_future_wait (futures [i], 30000);
        if (job_rc == 0) {
            size_t result_size;
            const char *result = drover_future_result (futures [i], &result_size);
            printf ("%s -> %.*s\n", argv [i + 2], (int) result_size, result);
        }
        else {
            const char *why = drover_future_error (futures [i]);
            fprintf (stderr, "producer: job %s: %s%s%s\n", drover_future_id (futures [i]),
                     drover_strerror (job_rc), why? ": ": "", why? why: "");
            failed = 1;
        }
        drover_future_destroy (&futures [i]);
    }
    free (futures);
    free (size);
    free (data);
    drover_client_destroy (&client);
    return failed;
}
