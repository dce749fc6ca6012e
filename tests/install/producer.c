/*  producer.c - a program built outside the tree against an installed
    libdrover, the way a project embedding the SDK would build it.

    Usage: producer QUEUE COUNT LABEL
    Connects with DROVER_BROKER, DROVER_SERVER_KEY and DROVER_CERT, submits
    COUNT jobs to QUEUE in one batch (payload "LABEL job I mixed Case"),
    waits for every result and checks that it is the payload in upper case,
    as the example plugin's `upper` handler returns it. Prints one line:

        LABEL: COUNT of COUNT results correct

    Exit status: 0 all correct, 1 a job failed or a result was wrong,
    2 bad usage, 3 could not connect.
*/
#include <drover.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAYLOAD_MAX 128

int
main (int argc, char *argv [])
{
    if (argc != 4 || atoi (argv [2]) <= 0) {
        fprintf (stderr, "usage: producer QUEUE COUNT LABEL\n");
        return 2;
    }
    const char *queue = argv [1];
    size_t count = (size_t) atoi (argv [2]);
    const char *label = argv [3];

    drover_connect_t cfg = {0};
    drover_connect_from_env (&cfg);
    drover_client_t *client;
    int rc = drover_client_connect (&cfg, &client);
    if (rc) {
        fprintf (stderr, "%s: cannot connect: %s\n", label, drover_strerror (rc));
        return 3;
    }
    char (*payload) [PAYLOAD_MAX] = calloc (count, sizeof *payload);
    const void **data = calloc (count, sizeof *data);
    size_t *size = calloc (count, sizeof *size);
    drover_future_t **futures = calloc (count, sizeof *futures);
    if (!payload || !data || !size || !futures) {
        fprintf (stderr, "%s: out of memory\n", label);
        return 1;
    }
    for (size_t i = 0; i < count; i++) {
        snprintf (payload [i], PAYLOAD_MAX, "%s job %zu mixed Case", label, i);
        data [i] = payload [i];
        size [i] = strlen (payload [i]);
    }
    drover_job_opts_t opts = DROVER_JOB_OPTS_INIT;
    opts.max_attempts = 3;
    rc = drover_submit_many (client, queue, data, size, count, &opts, futures);
    if (rc) {
        fprintf (stderr, "%s: submit: %s\n", label, drover_strerror (rc));
        count = 0;              //  no futures to wait for or destroy
    }
    size_t correct = 0;
    for (size_t i = 0; i < count; i++) {
        int job_rc = drover_future_wait (futures [i], 20000);
        if (job_rc == 0) {
            size_t result_size;
            const char *result = drover_future_result (futures [i], &result_size);
            char expected [PAYLOAD_MAX];
            for (size_t at = 0; at <= size [i]; at++)
                expected [at] = (char) toupper ((unsigned char) payload [i][at]);
            if (result_size == size [i] && memcmp (result, expected, size [i]) == 0)
                correct++;
            else
                fprintf (stderr, "%s: job %zu: expected '%s', got '%.*s'\n",
                         label, i, expected, (int) result_size, result);
        }
        else {
            const char *why = drover_future_error (futures [i]);
            fprintf (stderr, "%s: job %zu (%s): %s%s%s\n", label, i,
                     drover_future_id (futures [i]), drover_strerror (job_rc),
                     why? ": ": "", why? why: "");
        }
        drover_future_destroy (&futures [i]);
    }
    if (rc == 0)
        printf ("%s: %zu of %zu results correct\n", label, correct, count);
    free (futures);
    free (size);
    free (data);
    free (payload);
    drover_client_destroy (&client);
    return rc == 0 && correct == count? 0: 1;
}
