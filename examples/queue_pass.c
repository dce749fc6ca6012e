/*  queue_pass.c - an object passed through a queue to another process.

    The spirit of the classic "put an object on a queue, get it in another
    process" listing. The sender encodes a small record as a job payload;
    the receiver, a worker in another process, decodes it, prints it and
    answers with a checksum the sender verifies.
        queue_pass receive       serve queue "objects" (DROVER_BROKER = worker endpoint)
        queue_pass send NAME V...   send {NAME, [V...]} and check the answer
*/
#include <drover.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The object: a name and up to 16 numbers, sent as fixed-width text so
//  any language could read it ("name;n;v1,v2,...")
typedef struct {
    char name [32];         //  label
    int count;              //  numbers in values
    int64_t values [16];    //  the numbers
} record_t;

static int64_t
s_sum (const record_t *record)
{
    int64_t sum = 0;
    for (int i = 0; i < record->count; i++)
        sum += record->values [i];
    return sum;
}

static int
s_encode (const record_t *record, char *out, size_t size)
{
    int len = snprintf (out, size, "%s;%d;", record->name, record->count);
    for (int i = 0; i < record->count && len < (int) size; i++)
        len += snprintf (out + len, size - (size_t) len, "%s%" PRId64, i? ",": "", record->values [i]);
    return len;
}

//  Returns 0 when text is a well-formed record.
static int
s_decode (const char *text, size_t size, record_t *record)
{
    char buffer [512];
    if (size >= sizeof buffer)
        return -1;
    memcpy (buffer, text, size);
    buffer [size] = 0;
    memset (record, 0, sizeof *record);
    char *name = strtok (buffer, ";");
    char *count = strtok (NULL, ";");
    char *values = strtok (NULL, ";");
    if (!name || !count || strlen (name) >= sizeof record->name)
        return -1;
    strcpy (record->name, name);
    record->count = atoi (count);
    if (record->count < 0 || record->count > 16)
        return -1;
    char *value = values? strtok (values, ","): NULL;
    for (int i = 0; i < record->count; i++, value = strtok (NULL, ",")) {
        if (!value)
            return -1;
        record->values [i] = strtoll (value, NULL, 10);
    }
    return 0;
}

static drover_worker_t *s_worker;

static void
s_stop (int signum)
{
    drover_worker_stop (s_worker);
}

static int
s_receive (drover_job_t *job, void *arg)
{
    size_t size;
    const char *payload = drover_job_payload (job, &size);
    record_t record;
    if (s_decode (payload, size, &record))
        return drover_job_set_error (job, "not a record", true), -1;
    printf ("received %s with %d values\n", record.name, record.count);
    fflush (stdout);
    char answer [64];
    int len = snprintf (answer, sizeof answer, "%s sum=%" PRId64, record.name, s_sum (&record));
    return drover_job_set_result (job, answer, (size_t) len);
}

int
main (int argc, char *argv [])
{
    drover_connect_t cfg = {0};
    drover_connect_from_env (&cfg);
    if (argc == 2 && strcmp (argv [1], "receive") == 0) {
        s_worker = drover_worker_new (&cfg);
        if (!s_worker || drover_worker_handle (s_worker, "objects", s_receive, NULL))
            return 2;
        signal (SIGINT, s_stop);
        signal (SIGTERM, s_stop);
        int rc = drover_worker_run (s_worker);
        drover_worker_destroy (&s_worker);
        return rc? 3: 0;
    }
    if (argc < 3 || strcmp (argv [1], "send") || argc - 3 > 16) {
        fprintf (stderr, "usage: queue_pass receive | queue_pass send NAME [V...] (up to 16)\n");
        return 2;
    }
    record_t record;
    memset (&record, 0, sizeof record);
    snprintf (record.name, sizeof record.name, "%s", argv [2]);
    for (int i = 3; i < argc; i++)
        record.values [record.count++] = strtoll (argv [i], NULL, 10);
    char payload [512];
    int len = s_encode (&record, payload, sizeof payload);

    drover_client_t *client;
    int rc = drover_client_connect (&cfg, &client);
    if (rc) {
        fprintf (stderr, "queue_pass: %s\n", drover_strerror (rc));
        return 3;
    }
    drover_future_t *future;
    rc = drover_submit (client, "objects", payload, (size_t) len, NULL, &future);
    if (rc == 0)
        rc = drover_future_wait (future, 30000);
    if (rc == 0) {
        size_t size;
        const char *answer = drover_future_result (future, &size);
        char expected [64];
        int elen = snprintf (expected, sizeof expected, "%s sum=%" PRId64, record.name, s_sum (&record));
        printf ("answer: %.*s (%s)\n", (int) size, answer,
                size == (size_t) elen && memcmp (answer, expected, size) == 0? "checked": "WRONG");
        if (size != (size_t) elen || memcmp (answer, expected, size))
            rc = 1;
    }
    else
        fprintf (stderr, "queue_pass: %s\n", drover_strerror (rc));
    drover_future_destroy (&future);
    drover_client_destroy (&client);
    return rc? 1: 0;
}
