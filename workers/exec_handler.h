/*  exec_handler.h - the --exec handler: one shell command per job (internal).

    Adapts exec_run to drover_handler_fn: the payload goes to the command's
    stdin, its stdout becomes the result; a non-zero exit, a signal, the
    job's timeout or its cancellation fail the attempt with stderr's tail
    as the error text. The command sees DROVER_JOB_ID, DROVER_QUEUE and
    DROVER_ATTEMPT in its environment.
*/
#ifndef EXEC_HANDLER_H_INCLUDED
#define EXEC_HANDLER_H_INCLUDED

#include "drover.h"

//  Largest result we collect from a command's stdout. The broker's own
//  payload limit (8 MiB by default, configurable) may be lower; this bound
//  only keeps a runaway command from eating the worker's memory.
#define EXEC_HANDLER_MAX_OUTPUT  (256u * 1024 * 1024)

//  The handler; arg is the command line (a const char *, kept by the caller
//  for as long as the worker runs). Safe to run on several threads at once.
int exec_handler (drover_job_t *job, void *arg);

#endif
