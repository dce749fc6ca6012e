/*  example_plugin.c - handlers to load with drover-worker --plugin.

    Build: the drover_example_plugin module target. Use:

        drover-worker --queue upper --plugin ./drover_example_plugin.so:upper

    A plugin is any shared library exporting functions of the type
    drover_handler_fn. It links nothing: drover_job_* come from the process
    that loads it (drover-worker, or any program linked with libdrover).
    These handlers double as fixtures for the integration tests:

        upper   result = payload in upper case
        echo    result = payload
        fail    fails every attempt, with the payload as the error text
        fatal   fails permanently (no retry), with the payload as the error
        flaky   fails the first attempt, succeeds after (result = "attempt N")
        sleep   sleeps payload seconds (e.g. "0.5"), giving up when cancelled
        progress  reports 10%, 20%, ... 100% over about a second ("step N of
                10"), giving up when cancelled; result = "progressed"
        crash   abort()s the worker process
*/
#include "drover.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int upper (drover_job_t *job, void *arg);
int echo (drover_job_t *job, void *arg);
int fail (drover_job_t *job, void *arg);
int fatal (drover_job_t *job, void *arg);
int flaky (drover_job_t *job, void *arg);
int sleep_handler (drover_job_t *job, void *arg) __asm__ ("sleep");
int progress (drover_job_t *job, void *arg);
int crash (drover_job_t *job, void *arg);

//  The payload as a NUL-terminated string (payloads need not be text).
static char *
s_payload_text (drover_job_t *job, const char *fallback)
{
    size_t size;
    const char *data = drover_job_payload (job, &size);
    if (!size)
        return strdup (fallback);
    char *text = malloc (size + 1);
    if (text) {
        memcpy (text, data, size);
        text [size] = 0;
    }
    return text;
}

int
upper (drover_job_t *job, void *arg)
{
    (void) arg;
    size_t size;
    const unsigned char *data = drover_job_payload (job, &size);
    unsigned char *out = malloc (size ? size : 1);
    if (!out) {
        drover_job_set_error (job, "out of memory", false);
        return -1;
    }
    for (size_t i = 0; i < size; i++)
        out [i] = (unsigned char) toupper (data [i]);
    if (drover_job_take_result (job, out, size)) {
        free (out);
        return -1;
    }
    return 0;
}

int
echo (drover_job_t *job, void *arg)
{
    (void) arg;
    size_t size;
    const void *data = drover_job_payload (job, &size);
    return drover_job_set_result (job, data, size) ? -1 : 0;
}

int
fail (drover_job_t *job, void *arg)
{
    (void) arg;
    char *text = s_payload_text (job, "failed on purpose");
    drover_job_set_error (job, text ? text : "failed on purpose", false);
    free (text);
    return -1;
}

int
fatal (drover_job_t *job, void *arg)
{
    (void) arg;
    char *text = s_payload_text (job, "failed permanently on purpose");
    drover_job_set_error (job, text ? text : "failed permanently on purpose", true);
    free (text);
    return -1;
}

int
flaky (drover_job_t *job, void *arg)
{
    (void) arg;
    uint32_t attempt = drover_job_attempt (job);
    if (attempt < 2) {
        drover_job_set_error (job, "first attempt fails on purpose", false);
        return -1;
    }
    char text [32];
    int len = snprintf (text, sizeof text, "attempt %u", (unsigned) attempt);
    return drover_job_set_result (job, text, (size_t) len) ? -1 : 0;
}

//  Exported as "sleep"; the C name differs so as not to clash with
//  sleep(3) for anyone who includes <unistd.h> here later.
int
sleep_handler (drover_job_t *job, void *arg)
{
    (void) arg;
    char *text = s_payload_text (job, "1");
    double seconds = text ? strtod (text, NULL) : 1;
    free (text);
    struct timespec start, now;
    clock_gettime (CLOCK_MONOTONIC, &start);
    while (true) {
        //  A long handler checks for cancellation (or the attempt's
        //  timeout) now and then, so the worker can take other jobs.
        if (drover_job_cancelled (job)) {
            drover_job_set_error (job, "cancelled", false);
            return -1;
        }
        clock_gettime (CLOCK_MONOTONIC, &now);
        double elapsed = (double) (now.tv_sec - start.tv_sec)
                       + (double) (now.tv_nsec - start.tv_nsec) / 1e9;
        if (elapsed >= seconds)
            break;
        double left = seconds - elapsed;
        struct timespec nap = {0, left < 0.01 ? (long) (left * 1e9) : 10000000};
        nanosleep (&nap, NULL);
    }
    char out [64];
    int len = snprintf (out, sizeof out, "slept %g", seconds);
    return drover_job_set_result (job, out, (size_t) len) ? -1 : 0;
}

int
progress (drover_job_t *job, void *arg)
{
    (void) arg;
    for (unsigned step = 1; step <= 10; step++) {
        //  A tenth of a second per step, in short naps so a cancel is
        //  noticed quickly
        for (int nap = 0; nap < 10; nap++) {
            if (drover_job_cancelled (job)) {
                drover_job_set_error (job, "cancelled", false);
                return -1;
            }
            struct timespec pause = {0, 10000000};
            nanosleep (&pause, NULL);
        }
        char text [32];
        snprintf (text, sizeof text, "step %u of 10", step);
        drover_job_progress (job, step * 10, text);
    }
    return drover_job_set_result (job, "progressed", 10) ? -1 : 0;
}

int
crash (drover_job_t *job, void *arg)
{
    (void) job;
    (void) arg;
    abort ();
}
