/*  exec_handler.c - the --exec handler: one shell command per job (internal).
*/
#include "exec_handler.h"
#include "exec_run.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Room for "exit status N (...): " plus 4 KiB of stderr.
#define S_ERROR_TEXT 4352

static bool
s_cancelled (void *arg)
{
    return drover_job_cancelled ((drover_job_t *) arg);
}

int
exec_handler (drover_job_t *job, void *arg)
{
    const char *cmd = (const char *) arg;
    size_t size;
    const void *payload = drover_job_payload (job, &size);

    char id_var [64], queue_var [160], attempt_var [40], submitter_var [64];
    snprintf (id_var, sizeof id_var, "DROVER_JOB_ID=%s", drover_job_id (job));
    snprintf (queue_var, sizeof queue_var, "DROVER_QUEUE=%s", drover_job_queue (job));
    snprintf (attempt_var, sizeof attempt_var, "DROVER_ATTEMPT=%" PRIu32,
              drover_job_attempt (job));
    snprintf (submitter_var, sizeof submitter_var, "DROVER_SUBMITTER=%s", drover_job_submitter (job));
    const char *env [] = {id_var, queue_var, attempt_var, submitter_var, NULL};

    exec_opts_t opts = {
        .timeout_ms = drover_job_timeout_ms (job),
        .max_output = EXEC_HANDLER_MAX_OUTPUT,
        .env = env,
        .cancelled = s_cancelled,
        .cancel_arg = job
    };
    exec_result_t result;
    if (exec_run (cmd, payload, size, &opts, &result)) {
        //  fork/pipe failures are the host's trouble (out of processes or
        //  descriptors): retryable, perhaps on another worker.
        char text [256];
        snprintf (text, sizeof text, "cannot run command: %s", strerror (errno));
        drv_log_job (DRV_LOG_ERROR, "worker", drover_job_id (job), "%s", text);
        drover_job_set_error (job, text, false);
        return -1;
    }
    int rc = 0;
    if (exec_result_ok (&result)) {
        size_t out_size;
        char *out = exec_result_take_output (&result, &out_size);
        if (out && drover_job_take_result (job, out, out_size) != 0) {
            free (out);
            drover_job_set_error (job, "out of memory storing the result", false);
            rc = -1;
        }
        drv_log_job (DRV_LOG_DEBUG, "worker", drover_job_id (job), "done in %" PRIu64 " ms (%zu bytes)",
                     result.elapsed_ms, out_size);
    }
    else {
        char text [S_ERROR_TEXT];
        exec_result_describe (&result, &opts, text, sizeof text);
        drover_job_set_error (job, text, false);
        drv_log_job (result.cancelled ? DRV_LOG_DEBUG : DRV_LOG_INFO, "worker", drover_job_id (job),
                     "attempt %" PRIu32 " failed: %.200s", drover_job_attempt (job), text);
        rc = -1;
    }
    exec_result_free (&result);
    return rc;
}
