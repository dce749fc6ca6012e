/*  exec_run.h - runs one shell command with a payload on stdin (internal).

    The --exec handler's engine, kept free of the SDK so it can be tested
    without a broker. The command runs as /bin/sh -c CMD in a process group
    of its own; stdin is fed and stdout/stderr are read concurrently with
    poll(), so payloads of any size cannot deadlock against a command that
    writes before it has read everything. When the time limit passes, the
    cancel check says so, or stdout grows past its bound, the whole group
    gets SIGTERM and, after a grace period, SIGKILL.

    Thread safety: exec_run may run on several threads at once; it blocks
    SIGPIPE on the calling thread while it runs, touches no global state
    and reaps only its own child.
*/
#ifndef EXEC_RUN_H_INCLUDED
#define EXEC_RUN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Returns true when the run should be abandoned (job cancelled).
typedef bool (exec_cancel_fn) (void *arg);

typedef struct {
    uint32_t timeout_ms;        //  wall-clock limit; 0 = none
    uint32_t kill_grace_ms;     //  SIGTERM to SIGKILL delay; 0 = 1000
    size_t max_output;          //  stdout bound in bytes; 0 = none
    size_t max_error;           //  stderr bytes kept (the tail); 0 = 4096
    const char *const *env;     //  extra "NAME=value" entries, NULL-ended, or NULL
    exec_cancel_fn *cancelled;  //  polled while the command runs, or NULL
    void *cancel_arg;           //  argument for cancelled
} exec_opts_t;

typedef struct {
    int exit_code;              //  exit status if the command exited, else -1
    int signal;                 //  signal that ended it, else 0
    bool timed_out;             //  we killed it: the time limit passed
    bool cancelled;             //  we killed it: the cancel check said so
    bool overflow;              //  we killed it: stdout passed max_output
    bool stdin_closed;          //  it closed stdin before taking all input
    char *out;                  //  stdout, malloc'd, NUL-terminated (or NULL)
    size_t out_size;            //  bytes in out, without the NUL
    char *err;                  //  tail of stderr, malloc'd, NUL-terminated (or NULL)
    size_t err_size;            //  bytes in err, without the NUL
    bool err_truncated;         //  stderr was longer than max_error
    uint64_t elapsed_ms;        //  from start until reaped
} exec_result_t;

//  Runs cmd with in/in_size on its stdin and fills result (which the caller
//  releases with exec_result_free). opts may be NULL for the defaults.
//  Returns 0 once the command has run, whatever its outcome, or -1 with
//  errno set when it could not be started (result is then empty).
int exec_run (const char *cmd, const void *in, size_t in_size,
              const exec_opts_t *opts, exec_result_t *result);

//  True when the command exited with status 0 and was not killed by us.
bool exec_result_ok (const exec_result_t *result);

//  Writes an account of a failed run into text ("exit status 2:
//  <stderr>", "timed out after 500 ms", ...), followed by stderr trimmed of
//  surrounding white space (inner newlines kept). Returns text.
const char *exec_result_describe (const exec_result_t *result, const exec_opts_t *opts,
                                  char *text, size_t size);

//  Frees out and err and zeroes result. Harmless on a zeroed result.
void exec_result_free (exec_result_t *result);

//  Hands out the stdout buffer to the caller (who frees it) and clears it
//  from result; *size_p receives its size.
char *exec_result_take_output (exec_result_t *result, size_t *size_p);

#endif
