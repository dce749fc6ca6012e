/*  jobs.c - the job commands: submit, map, result, status, cancel, stats.

    `submit --each-line` and `map` stream: they submit each input line as it
    arrives (they do not wait for the end of input), keep a bounded window
    of jobs in flight, and print in input order as the oldest job settles:
    its id once accepted, or its result once done.
*/
#include "common.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_WINDOW      1000
#define MAX_WINDOW          1000000
//  How long a submit without --timeout waits for the broker's acceptance.
#define DEFAULT_ACCEPT_MS   30000
//  Read size for streamed input.
#define CHUNK_SIZE          65536

//  Options that both submit and map take -------------------------------------

enum {
    OPT_PRIORITY = 0x2000,
    OPT_JOB_TIMEOUT,
    OPT_ATTEMPTS,
    OPT_DELAY,
    OPT_AT,
    OPT_BACKOFF,
    OPT_TTL,
    OPT_EACH_LINE,
    OPT_NO_WAIT,
    OPT_WINDOW
};

#define JOB_OPTIONS \
    { "queue",       required_argument, NULL, 'q' }, \
    { "timeout",     required_argument, NULL, 't' }, \
    { "priority",    required_argument, NULL, OPT_PRIORITY }, \
    { "job-timeout", required_argument, NULL, OPT_JOB_TIMEOUT }, \
    { "attempts",    required_argument, NULL, OPT_ATTEMPTS }, \
    { "delay",       required_argument, NULL, OPT_DELAY }, \
    { "at",          required_argument, NULL, OPT_AT }, \
    { "backoff",     required_argument, NULL, OPT_BACKOFF }, \
    { "ttl",         required_argument, NULL, OPT_TTL }, \
    { "window",      required_argument, NULL, OPT_WINDOW }, \
    { "help",        no_argument,       NULL, 'h' }

#define JOB_HELP \
    "Job options (unset = the broker's default):\n" \
    "  -p, --priority N      0..9, higher runs first\n" \
    "      --job-timeout S   seconds each attempt may run\n" \
    "      --attempts N      attempts before the job fails\n" \
    "      --delay S         run no earlier than S seconds from now\n" \
    "      --at TIME         run no earlier than TIME: Unix seconds, or ISO 8601\n" \
    "                        such as 2026-11-25T16:30:00Z (no zone = local time)\n" \
    "      --backoff S       base of the exponential wait between attempts\n" \
    "      --ttl S           how long the broker keeps the result\n"

static const char *s_submit_usage =
    "Usage: drover submit -q QUEUE [--data STR] [--wait] [--timeout S] [job options]\n"
    "       drover submit -q QUEUE --each-line [--no-wait | --wait] [options] < lines\n"
    "\n"
    "Submits a job whose payload is --data, or else all of standard input.\n"
    "Without --wait, prints the job id once the broker has accepted the job;\n"
    "with --wait, prints the job's result (the raw bytes) once it is done.\n"
    "\n"
    "With --each-line, every input line (without its newline) is a job,\n"
    "submitted as it is read. Prints one id per line, in input order, each once\n"
    "its job is accepted; with --wait, prints the results instead, as 'drover\n"
    "map' does.\n"
    "\n"
    "Options:\n"
    "  -q, --queue QUEUE     queue to submit to (required)\n"
    "  -d, --data STR        payload (default: standard input)\n"
    "  -w, --wait            wait for the result and print it\n"
    "      --no-wait         print ids (the default)\n"
    "  -e, --each-line       one job per input line\n"
    "  -t, --timeout S       give up waiting after S seconds (decimals allowed);\n"
    "                        default: 30 s for acceptance, forever for results\n"
    "      --window N        jobs in flight at most with --each-line (default 1000)\n"
    JOB_HELP
    CLI_CONNECT_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Exit: 0 done, 1 a job was refused, failed or timed out, 2 bad usage,\n"
    "3 cannot reach or authenticate to the broker.\n";

static const char *s_map_usage =
    "Usage: drover map -q QUEUE [--timeout S] [job options] < inputs\n"
    "\n"
    "Runs one job per input line (the line without its newline is the payload),\n"
    "all in flight at once up to --window, and prints the results one per line\n"
    "in input order; a result that does not end in a newline gets one. Lines are\n"
    "submitted as they are read, and results printed as soon as all earlier\n"
    "ones are. A job that fails is named on standard error (its id and error)\n"
    "and has no output line; the exit code is then 1.\n"
    "\n"
    "Options:\n"
    "  -q, --queue QUEUE     queue to submit to (required)\n"
    "  -t, --timeout S       give up after S seconds in all (default: never)\n"
    "      --window N        jobs in flight at most (default 1000)\n"
    JOB_HELP
    CLI_CONNECT_HELP
    "  -h, --help            show this help\n";

typedef struct {
    const char *cmd;            //  "submit" or "map", for messages
    drover_connect_t conn;      //  connection settings (strings borrowed from argv)
    drover_job_opts_t opts;     //  job options
    const char *queue;          //  -q
    const char *data;           //  --data, or NULL for standard input
    bool wait;                  //  --wait: results, not ids
    bool no_wait;               //  --no-wait given
    bool each_line;             //  one job per input line
    int64_t timeout_ms;         //  --timeout, or -1
    size_t window;              //  jobs in flight at most
    bool delay_given;           //  --delay seen
    bool at_given;              //  --at seen
} s_submit_args_t;

//  Converts seconds text into a uint32_t count of ms (or of s with
//  seconds_unit), rounding a partial second up so 0.5 s is not 0 = default.
static int
s_parse_u32 (const char *text, bool seconds_unit, uint32_t *value_p)
{
    int64_t ms;
    if (cli_parse_seconds (text, &ms))
        return -1;
    int64_t value = seconds_unit? (ms + 999) / 1000: ms;
    if (value > UINT32_MAX)
        return -1;
    *value_p = (uint32_t) value;
    return 0;
}

//  Handles one job option; 1 handled, 0 not ours, -1 usage error (printed).
static int
s_job_option (s_submit_args_t *args, const char *cmd, int opt, const char *arg)
{
    long number;
    int64_t ms;
    switch (opt) {
        case 'q':
            args->queue = arg;
            return 1;
        case 't':
            if (cli_parse_seconds (arg, &ms))
                return cli_usage (cmd, "--timeout wants seconds, not '%s'", arg), -1;
            args->timeout_ms = ms;
            return 1;
        case 'p':
        case OPT_PRIORITY:
            if (cli_parse_long (arg, 0, 9, &number))
                return cli_usage (cmd, "--priority must be 0..9, not '%s'", arg), -1;
            args->opts.priority = (int) number;
            return 1;
        case OPT_JOB_TIMEOUT:
            if (s_parse_u32 (arg, false, &args->opts.timeout_ms))
                return cli_usage (cmd, "--job-timeout wants seconds, not '%s'", arg), -1;
            return 1;
        case OPT_ATTEMPTS:
            if (cli_parse_long (arg, 1, 1000000, &number))
                return cli_usage (cmd, "--attempts must be a number >= 1, not '%s'", arg), -1;
            args->opts.max_attempts = (uint32_t) number;
            return 1;
        case OPT_DELAY:
            if (cli_parse_seconds (arg, &ms))
                return cli_usage (cmd, "--delay wants seconds, not '%s'", arg), -1;
            args->opts.delay_ms = (uint64_t) ms;
            args->delay_given = true;
            return 1;
        case OPT_AT:
            if (cli_parse_time (arg, &args->opts.run_at_ms))
                return cli_usage (cmd, "--at wants Unix seconds or an ISO 8601 time such as "
                                  "2026-11-25T16:30:00Z, not '%s'", arg), -1;
            args->at_given = true;
            return 1;
        case OPT_BACKOFF:
            if (s_parse_u32 (arg, false, &args->opts.backoff_ms))
                return cli_usage (cmd, "--backoff wants seconds, not '%s'", arg), -1;
            return 1;
        case OPT_TTL:
            if (s_parse_u32 (arg, true, &args->opts.result_ttl_s))
                return cli_usage (cmd, "--ttl wants seconds, not '%s'", arg), -1;
            return 1;
        case OPT_WINDOW:
            if (cli_parse_long (arg, 1, MAX_WINDOW, &number))
                return cli_usage (cmd, "--window must be 1..%d, not '%s'", MAX_WINDOW, arg), -1;
            args->window = (size_t) number;
            return 1;
        default:
            return 0;
    }
}

//  Parses submit's or map's arguments. Returns -1 to go on, else the exit
//  code to return at once (0 after --help).
static int
s_parse_submit (int argc, char **argv, s_submit_args_t *args, bool is_map)
{
    static const struct option submit_options [] = {
        JOB_OPTIONS,
        { "data",      required_argument, NULL, 'd' },
        { "wait",      no_argument,       NULL, 'w' },
        { "no-wait",   no_argument,       NULL, OPT_NO_WAIT },
        { "each-line", no_argument,       NULL, 'e' },
        CLI_CONNECT_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    static const struct option map_options [] = {
        JOB_OPTIONS,
        CLI_CONNECT_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    memset (args, 0, sizeof *args);
    args->timeout_ms = -1;
    args->window = DEFAULT_WINDOW;
    args->cmd = argv [0];
    const char *cmd = argv [0];
    int opt;
    while ((opt = cli_getopt_connect (argc, argv, is_map? ":q:t:p:h": ":q:t:p:d:weh",
                                      is_map? map_options: submit_options, &args->conn)) != -1) {
        switch (opt) {
            case 'h':
                fputs (is_map? s_map_usage: s_submit_usage, stdout);
                return CLI_EXIT_OK;
            case 'd':
                args->data = optarg;
                break;
            case 'w':
                args->wait = true;
                break;
            case OPT_NO_WAIT:
                args->no_wait = true;
                break;
            case 'e':
                args->each_line = true;
                break;
            case '?':
                return CLI_EXIT_USAGE;
            default: {
                int rc = s_job_option (args, cmd, opt, optarg);
                if (rc < 0)
                    return CLI_EXIT_USAGE;
                assert (rc == 1);   //  every option in the tables is handled
                break;
            }
        }
    }
    if (optind < argc)
        return cli_usage (cmd, "unexpected argument '%s'%s", argv [optind],
                          is_map? " (inputs come on standard input)": " (use --data)");
    if (!args->queue || !*args->queue)
        return cli_usage (cmd, "missing -q QUEUE");
    if (!cli_valid_queue (args->queue))
        return cli_usage (cmd, "bad queue name '%s': use " CLI_QUEUE_RULE, args->queue);
    if (args->delay_given && args->at_given)
        return cli_usage (cmd, "--delay and --at both say when to run; give one");
    if (args->wait && args->no_wait)
        return cli_usage (cmd, "--wait and --no-wait contradict each other");
    if (args->each_line && args->data)
        return cli_usage (cmd, "--each-line reads standard input; drop --data");
    if (is_map) {
        args->each_line = true;
        args->wait = true;
    }
    return -1;
}

//  Text for a job that ended badly or was refused.
static const char *
s_future_error (drover_future_t *future, int rc)
{
    const char *text = future? drover_future_error (future): NULL;
    return text && *text? text: drover_strerror (rc);
}

//  True for errors after which no further job or request can succeed (a
//  bad queue name fails every line of a stream alike).
static bool
s_fatal (int rc)
{
    return rc == DROVER_EINTR || rc == DROVER_ECLOSED || rc == DROVER_ETIMEDOUT
        || rc == DROVER_ENOQUEUE || rc == DROVER_EINVAL
        || cli_exit_code (rc) == CLI_EXIT_CONNECT;
}

//  One job --------------------------------------------------------------------

//  Reads all of standard input into a new buffer.
static char *
s_read_stdin (size_t *size_p)
{
    size_t size = 0, cap = 0;
    char *data = NULL;
    for (;;) {
        if (cap - size < CHUNK_SIZE) {
            cap = cap? cap * 2: CHUNK_SIZE * 2;
            char *bigger = realloc (data, cap);
            if (!bigger) {
                free (data);
                cli_error ("out of memory reading standard input");
                return NULL;
            }
            data = bigger;
        }
        ssize_t got = read (STDIN_FILENO, data + size, cap - size);
        if (got == 0)
            break;
        if (got < 0) {
            if (errno == EINTR && !cli_interrupted ())
                continue;
            cli_error ("cannot read standard input: %s",
                       errno == EINTR? "interrupted": strerror (errno));
            free (data);
            return NULL;
        }
        size += (size_t) got;
    }
    *size_p = size;
    return data;
}

static int
s_submit_one (s_submit_args_t *args)
{
    size_t size = 0;
    char *stdin_data = NULL;
    const void *data = args->data;
    if (args->data)
        size = strlen (args->data);
    else {
        stdin_data = s_read_stdin (&size);
        if (!stdin_data)
            return CLI_EXIT_FAILED;
        data = stdin_data;
    }
    drover_client_t *client = NULL;
    drover_future_t *future = NULL;
    int exit_code = cli_connect (&args->conn, args->cmd, &client);
    if (exit_code)
        goto done;

    int rc = drover_submit (client, args->queue, data, size, &args->opts, &future);
    if (rc) {
        cli_error ("cannot submit to queue '%s': %s", args->queue, drover_strerror (rc));
        exit_code = cli_exit_code (rc);
        goto done;
    }
    int64_t started = cli_now_ms ();
    int64_t deadline = args->timeout_ms >= 0? started + args->timeout_ms
                     : args->wait? -1: started + DEFAULT_ACCEPT_MS;
    const char *id = drover_future_id (future);

    rc = cli_future_wait (future, CLI_WAIT_ACCEPTED, deadline);
    if (rc == DROVER_OK && args->wait)
        rc = cli_future_wait (future, CLI_WAIT_DONE, deadline);
    exit_code = cli_exit_code (rc);
    switch (rc) {
        case DROVER_OK:
            if (args->wait) {
                size_t result_size = 0;
                const void *result = drover_future_result (future, &result_size);
                if (cli_write_out (result, result? result_size: 0, false))
                    exit_code = CLI_EXIT_FAILED;
            }
            else
                printf ("%s\n", id);
            break;
        case DROVER_ETIMEDOUT:
            if (drover_future_accepted (future, 0) == DROVER_OK)
                cli_error ("job %s not finished after %.3g s (it goes on; "
                           "'drover result --wait %s' fetches it later)",
                           id, (cli_now_ms () - started) / 1000.0, id);
            else
                cli_error ("job %s not accepted by the broker within %.3g s",
                           id, (cli_now_ms () - started) / 1000.0);
            exit_code = CLI_EXIT_FAILED;
            break;
        case DROVER_EINTR:
            cli_error ("interrupted; job %s may still run", id);
            exit_code = CLI_EXIT_FAILED;
            break;
        case DROVER_EFAILED:
            cli_error ("job %s failed: %s", id, s_future_error (future, rc));
            break;
        case DROVER_ECANCELLED:
            cli_error ("job %s was cancelled", id);
            break;
        default:
            cli_error ("job %s refused: %s", id, s_future_error (future, rc));
            if (exit_code == CLI_EXIT_USAGE)
                exit_code = CLI_EXIT_FAILED;    //  the broker's verdict, not our usage
            break;
    }
done:
    drover_future_destroy (&future);
    drover_client_destroy (&client);
    free (stdin_data);
    return exit_code;
}

//  A stream of jobs, one per input line ----------------------------------------

typedef struct {
    drover_future_t *future;    //  the job, or NULL when it was never submitted
    int error;                  //  why it was not submitted (future NULL)
    size_t line;                //  input line number, from 1
    int64_t submitted_ms;       //  when it was submitted (cli_now_ms)
} s_slot_t;

typedef struct {
    drover_client_t *client;    //  our connection
    s_submit_args_t *args;      //  parsed options
    cli_wait_t what;            //  print ids (ACCEPTED) or results (DONE)
    s_slot_t *ring;             //  jobs in flight, oldest at head
    size_t head;                //  index of the oldest
    size_t count;               //  jobs in the ring
    size_t lines;               //  lines read so far
    size_t failed;              //  jobs refused or failed
    int64_t started_ms;         //  start of the run, for --timeout
    int fatal;                  //  exit code once the stream must stop, else 0
} s_stream_t;

//  Deadline for the job in slot, or -1 for none.
static int64_t
s_slot_deadline (s_stream_t *self, s_slot_t *slot)
{
    if (self->args->timeout_ms >= 0)
        return self->started_ms + self->args->timeout_ms;
    if (self->what == CLI_WAIT_ACCEPTED)
        return slot->submitted_ms + DEFAULT_ACCEPT_MS;
    return -1;
}

//  Settles the oldest job: waits for it until its deadline when block is
//  set, else only if it is ready already. Prints its id or result, or
//  reports it on stderr. Returns true if it was taken off the ring.
static bool
s_stream_pop (s_stream_t *self, bool block)
{
    assert (self->count);
    s_slot_t *slot = &self->ring [self->head];
    int rc = slot->error;
    if (slot->future) {
        if (block)
            rc = cli_future_wait (slot->future, self->what, s_slot_deadline (self, slot));
        else
        if (self->what == CLI_WAIT_ACCEPTED)
            rc = drover_future_accepted (slot->future, 0);
        else
            rc = drover_future_ready (slot->future)
               ? drover_future_wait (slot->future, 0): DROVER_ETIMEDOUT;
        if (rc == DROVER_ETIMEDOUT && !block)
            return false;
    }
    const char *id = slot->future? drover_future_id (slot->future): NULL;
    if (rc == DROVER_OK) {
        if (self->what == CLI_WAIT_ACCEPTED)
            printf ("%s\n", id);
        else {
            size_t size = 0;
            const void *result = drover_future_result (slot->future, &size);
            if (cli_write_out (result, result? size: 0, true)) {
                cli_error ("cannot write to standard output");
                self->fatal = CLI_EXIT_FAILED;
            }
        }
    }
    else
    if (rc == DROVER_ETIMEDOUT) {
        if (self->what == CLI_WAIT_ACCEPTED)
            cli_error ("line %zu: job %s not accepted by the broker within %.3g s",
                       slot->line, id, (cli_now_ms () - slot->submitted_ms) / 1000.0);
        else
            cli_error ("line %zu: job %s not finished after %.3g s; %zu jobs left unfinished",
                       slot->line, id, (cli_now_ms () - self->started_ms) / 1000.0,
                       self->count);
        self->fatal = CLI_EXIT_FAILED;
    }
    else
    if (rc == DROVER_EINTR) {
        cli_error ("interrupted at line %zu; %zu submitted jobs not %s",
                   slot->line, self->count,
                   self->what == CLI_WAIT_ACCEPTED? "reported": "collected");
        self->fatal = CLI_EXIT_FAILED;
    }
    else
    if (rc == DROVER_EFAILED) {
        cli_error ("job %s (line %zu) failed: %s", id, slot->line, s_future_error (slot->future, rc));
        self->failed++;
    }
    else
    if (rc == DROVER_ECANCELLED) {
        cli_error ("job %s (line %zu) was cancelled", id, slot->line);
        self->failed++;
    }
    else {
        cli_error ("line %zu: job refused: %s", slot->line, s_future_error (slot->future, rc));
        self->failed++;
        if (s_fatal (rc)) {
            int code = cli_exit_code (rc);
            self->fatal = code == CLI_EXIT_CONNECT? code: CLI_EXIT_FAILED;
        }
    }
    drover_future_destroy (&slot->future);
    self->head = (self->head + 1) % self->args->window;
    self->count--;
    return true;
}

//  Settles every job at the head that is ready, without waiting.
static void
s_stream_drain_ready (s_stream_t *self)
{
    while (self->count && !self->fatal && s_stream_pop (self, false))
        ;
    fflush (stdout);            //  ids and results reach a pipe as they come
}

//  Submits one line as a job, after making room in the window.
static void
s_stream_submit (s_stream_t *self, const char *line, size_t size)
{
    while (self->count >= self->args->window && !self->fatal) {
        s_stream_pop (self, true);
        s_stream_drain_ready (self);
    }
    if (self->fatal)
        return;
    s_slot_t *slot = &self->ring [(self->head + self->count) % self->args->window];
    memset (slot, 0, sizeof *slot);
    slot->line = ++self->lines;
    slot->submitted_ms = cli_now_ms ();
    int rc = drover_submit (self->client, self->args->queue, line, size,
                            &self->args->opts, &slot->future);
    if (rc == DROVER_ETOOLARGE) {
        //  Only this line is at fault: reported in its turn, so messages
        //  keep input order.
        slot->future = NULL;
        slot->error = rc;
    }
    else
    if (rc) {
        //  Every later line would fail the same way: stop now.
        cli_error ("line %zu: cannot submit to queue '%s': %s",
                   slot->line, self->args->queue, drover_strerror (rc));
        int code = cli_exit_code (rc);
        self->fatal = code == CLI_EXIT_CONNECT? code: CLI_EXIT_FAILED;
        return;
    }
    self->count++;
}

//  Waits until standard input is readable, settling jobs meanwhile. Returns
//  true when input is ready (or at its end), false to re-check the loop.
static bool
s_stream_wait_input (s_stream_t *self)
{
    struct pollfd item = { .fd = STDIN_FILENO, .events = POLLIN };
    if (self->count == 0) {
        //  Nothing to report: sleep on input alone (a signal ends the wait).
        int rc = poll (&item, 1, -1);
        return rc > 0;
    }
    if (poll (&item, 1, 0) > 0)
        return true;
    //  Lines arrive slowly: wait on the oldest job a little, so its id or
    //  result is printed as soon as it is known, then look at input again.
    s_slot_t *slot = &self->ring [self->head];
    if (slot->future) {
        int64_t deadline = cli_now_ms () + 10;
        int64_t slot_deadline = s_slot_deadline (self, slot);
        if (slot_deadline >= 0 && slot_deadline < deadline)
            deadline = slot_deadline;
        cli_future_wait (slot->future, self->what, deadline);
    }
    if (self->args->timeout_ms >= 0
    &&  cli_now_ms () >= self->started_ms + self->args->timeout_ms)
        s_stream_pop (self, true);      //  reports the timeout
    return false;
}

static int
s_stream_run (s_submit_args_t *args)
{
    s_stream_t self;
    memset (&self, 0, sizeof self);
    self.args = args;
    self.what = args->wait? CLI_WAIT_DONE: CLI_WAIT_ACCEPTED;
    self.ring = calloc (args->window, sizeof (s_slot_t));
    char *buffer = malloc (CHUNK_SIZE);
    size_t size = 0, cap = CHUNK_SIZE;
    if (!self.ring || !buffer) {
        cli_error ("out of memory");
        free (self.ring);
        free (buffer);
        return CLI_EXIT_FAILED;
    }
    int exit_code = cli_connect (&args->conn, args->cmd, &self.client);
    if (exit_code)
        goto done;
    self.started_ms = cli_now_ms ();

    bool eof = false;
    while (!self.fatal) {
        s_stream_drain_ready (&self);
        if (self.fatal)
            break;
        if (cli_interrupted ()) {
            cli_error ("interrupted after %zu lines", self.lines);
            self.fatal = CLI_EXIT_FAILED;
            break;
        }
        if (eof) {
            if (self.count == 0)
                break;
            s_stream_pop (&self, true);
            continue;
        }
        if (!s_stream_wait_input (&self))
            continue;

        if (cap - size < CHUNK_SIZE / 2) {
            char *bigger = realloc (buffer, cap * 2);
            if (!bigger) {
                cli_error ("out of memory: input line longer than %zu bytes", size);
                self.fatal = CLI_EXIT_FAILED;
                break;
            }
            buffer = bigger;
            cap *= 2;
        }
        ssize_t got = read (STDIN_FILENO, buffer + size, cap - size);
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;       //  the loop checks for interrupts
            cli_error ("cannot read standard input: %s", strerror (errno));
            self.fatal = CLI_EXIT_FAILED;
            break;
        }
        if (got == 0) {
            eof = true;
            if (size)           //  a last line without its newline
                s_stream_submit (&self, buffer, size);
            size = 0;
            continue;
        }
        //  Submit every complete line; keep the partial one for later.
        size_t scanned = size, start = 0;
        size += (size_t) got;
        for (size_t index = scanned; index < size && !self.fatal; index++)
            if (buffer [index] == '\n') {
                s_stream_submit (&self, buffer + start, index - start);
                start = index + 1;
            }
        memmove (buffer, buffer + start, size - start);
        size -= start;
    }
    if (self.fatal)
        exit_code = self.fatal;
    else
    if (self.failed)
        exit_code = CLI_EXIT_FAILED;
    if (self.failed)
        cli_error ("%zu of %zu jobs %s", self.failed, self.lines,
                   self.what == CLI_WAIT_ACCEPTED? "refused": "failed or refused");
done:
    //  Jobs not reported go on at the broker; we only drop our futures.
    while (self.count) {
        drover_future_destroy (&self.ring [self.head].future);
        self.head = (self.head + 1) % args->window;
        self.count--;
    }
    fflush (stdout);
    drover_client_destroy (&self.client);
    free (self.ring);
    free (buffer);
    return exit_code;
}

int
cli_submit (int argc, char **argv)
{
    s_submit_args_t args;
    int rc = s_parse_submit (argc, argv, &args, false);
    if (rc >= 0)
        return rc;
    return args.each_line? s_stream_run (&args): s_submit_one (&args);
}

int
cli_map (int argc, char **argv)
{
    s_submit_args_t args;
    int rc = s_parse_submit (argc, argv, &args, true);
    if (rc >= 0)
        return rc;
    return s_stream_run (&args);
}

//  result, status, cancel: commands on job ids -----------------------------------

typedef struct {
    drover_connect_t conn;      //  connection settings
    bool wait;                  //  result --wait
    int64_t timeout_ms;         //  --timeout, or -1
    char **ids;                 //  the ids (into argv)
    int id_count;               //  how many
    int request_ms;             //  per-request timeout, once connected
    int64_t deadline_ms;        //  end of result --wait --timeout, or -1
} s_ids_args_t;

static const char *s_result_usage =
    "Usage: drover result ID... [--wait] [--timeout S]\n"
    "\n"
    "Prints the result of each job. With one ID the result is written as raw\n"
    "bytes; with several, one per line (a newline added where missing). A job\n"
    "that has not finished is an error ('not finished') unless --wait is given.\n"
    "\n"
    "Options:\n"
    "  -w, --wait            wait for jobs to finish\n"
    "  -t, --timeout S       with --wait: give up after S seconds in all (default:\n"
    "                        never); without: how long the broker may take to answer\n"
    CLI_CONNECT_HELP
    "  -h, --help            show this help\n";

static const char *s_status_usage =
    "Usage: drover status ID... [--timeout S]\n"
    "\n"
    "Prints a line per job: ID STATE attempts=N queue=Q [error=TEXT]\n"
    "[progress=N% \"TEXT\"]. STATE is queued, scheduled, running, done, failed,\n"
    "cancelled or unknown; progress is what the job's worker last reported.\n"
    "Exit 1 if a job is unknown.\n"
    "\n"
    "Options:\n"
    "  -t, --timeout S       how long the broker may take to answer (default 5)\n"
    CLI_CONNECT_HELP
    "  -h, --help            show this help\n";

static const char *s_cancel_usage =
    "Usage: drover cancel ID... [--timeout S]\n"
    "\n"
    "Cancels jobs that have not finished; prints 'ID cancelled' for each.\n"
    "Exit 1 if a job is unknown or had already finished.\n"
    "\n"
    "Options:\n"
    "  -t, --timeout S       how long the broker may take to answer (default 5)\n"
    CLI_CONNECT_HELP
    "  -h, --help            show this help\n";

//  Parses the options and ids of result, status and cancel. Returns -1 to
//  go on, else the exit code (0 after --help).
static int
s_parse_ids (int argc, char **argv, s_ids_args_t *args, const char *usage, bool takes_wait)
{
    static const struct option options [] = {
        { "wait",    no_argument,       NULL, 'w' },
        { "timeout", required_argument, NULL, 't' },
        { "help",    no_argument,       NULL, 'h' },
        CLI_CONNECT_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    memset (args, 0, sizeof *args);
    args->timeout_ms = -1;
    const char *cmd = argv [0];
    int opt;
    while ((opt = cli_getopt_connect (argc, argv, ":wt:h", options, &args->conn)) != -1) {
        switch (opt) {
            case 'h':
                fputs (usage, stdout);
                return CLI_EXIT_OK;
            case 'w':
                if (!takes_wait)
                    return cli_usage (cmd, "unknown option '--wait'");
                args->wait = true;
                break;
            case 't':
                if (cli_parse_seconds (optarg, &args->timeout_ms))
                    return cli_usage (cmd, "--timeout wants seconds, not '%s'", optarg);
                break;
            default:
                return CLI_EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage (cmd, "missing job ID");
    args->ids = argv + optind;
    args->id_count = argc - optind;
    if (cli_check_ids (cmd, (const char *const *) args->ids, (size_t) args->id_count))
        return CLI_EXIT_USAGE;
    return -1;
}

//  The per-request timeout: --timeout if given, else the default.
static int
s_request_ms (s_ids_args_t *args)
{
    if (args->timeout_ms < 0)
        return CLI_DEFAULT_REQUEST_MS;
    return args->timeout_ms > INT_MAX? INT_MAX: args->timeout_ms < 1? 1: (int) args->timeout_ms;
}

//  Reports a failed request about id; returns true if the command must stop
//  (the broker cannot be asked further), setting *exit_code.
static bool
s_request_failed (const char *id, int rc, int timeout_ms, int *exit_code)
{
    if (rc == DROVER_EINTR) {
        cli_error ("interrupted");
        *exit_code = CLI_EXIT_FAILED;
    }
    else
        *exit_code = cli_request_failed (id, rc, timeout_ms);
    return s_fatal (rc) || rc == DROVER_ECLOSED;
}

//  What result, status or cancel does with one id. Returns true when the
//  command must stop (the broker cannot be asked further); sets *exit_code
//  when the id failed.
typedef bool (s_id_fn) (drover_client_t *client, const char *id, s_ids_args_t *args,
                        int *exit_code);

//  Parses the options and ids, connects, and runs fn on each id in turn
//  until it says stop or an interrupt. Returns the exit code.
static int
s_each_id (int argc, char **argv, const char *usage, bool takes_wait, s_id_fn *fn)
{
    s_ids_args_t args;
    int exit_code = s_parse_ids (argc, argv, &args, usage, takes_wait);
    if (exit_code >= 0)
        return exit_code;
    drover_client_t *client = NULL;
    exit_code = cli_connect (&args.conn, argv [0], &client);
    if (exit_code)
        return exit_code;

    args.request_ms = s_request_ms (&args);
    args.deadline_ms = args.wait && args.timeout_ms >= 0? cli_now_ms () + args.timeout_ms: -1;
    for (int index = 0; index < args.id_count && !cli_interrupted (); index++)
        if (fn (client, args.ids [index], &args, &exit_code))
            break;
    drover_client_destroy (&client);
    return exit_code;
}

//  Prints one finished job's result, or reports why there is none.
//  Returns 0 or an exit code.
static int
s_print_result (const char *id, drover_future_t *future, int rc, bool several)
{
    switch (rc) {
        case DROVER_OK: {
            size_t size = 0;
            const void *result = drover_future_result (future, &size);
            if (cli_write_out (result, result? size: 0, several)) {
                cli_error ("cannot write to standard output");
                return CLI_EXIT_FAILED;
            }
            return CLI_EXIT_OK;
        }
        case DROVER_EFAILED:
            cli_error ("job %s failed: %s", id, s_future_error (future, rc));
            return CLI_EXIT_FAILED;
        case DROVER_ECANCELLED:
            cli_error ("job %s was cancelled", id);
            return CLI_EXIT_FAILED;
        case DROVER_ENOTFOUND:
            cli_error ("%s: no such job (or its result expired)", id);
            return CLI_EXIT_FAILED;
        case DROVER_ETIMEDOUT:
            cli_error ("%s: not finished", id);
            return CLI_EXIT_FAILED;
        case DROVER_EINTR:
            cli_error ("interrupted");
            return CLI_EXIT_FAILED;
        default: {
            int code = cli_exit_code (rc);
            cli_error ("%s: %s", id, s_future_error (future, rc));
            return code == CLI_EXIT_USAGE? CLI_EXIT_FAILED: code;
        }
    }
}

static bool
s_result_one (drover_client_t *client, const char *id, s_ids_args_t *args, int *exit_code)
{
    if (!args->wait) {
        //  Ask first: fetching an unfinished job would wait for it.
        drover_job_info_t info;
        int rc = drover_status (client, id, &info, args->request_ms);
        if (rc)
            return s_request_failed (id, rc, args->request_ms, exit_code);
        if (info.state == DROVER_JOB_UNKNOWN) {
            cli_error ("%s: no such job (or its result expired)", id);
            *exit_code = CLI_EXIT_FAILED;
            return false;
        }
        if (info.state == DROVER_JOB_FAILED) {
            cli_error ("job %s failed: %s", id, *info.error? info.error: "no reason given");
            *exit_code = CLI_EXIT_FAILED;
            return false;
        }
        if (info.state == DROVER_JOB_CANCELLED) {
            cli_error ("job %s was cancelled", id);
            *exit_code = CLI_EXIT_FAILED;
            return false;
        }
        if (info.state != DROVER_JOB_DONE) {
            cli_error ("%s: not finished (%s)", id, drover_job_state_name (info.state));
            *exit_code = CLI_EXIT_FAILED;
            return false;
        }
    }
    drover_future_t *future = NULL;
    int rc = drover_fetch (client, id, &future);
    if (rc == DROVER_OK)
        rc = cli_future_wait (future, CLI_WAIT_DONE,
                              args->wait? args->deadline_ms: cli_now_ms () + args->request_ms);
    int code = s_print_result (id, future, rc, args->id_count > 1);
    drover_future_destroy (&future);
    if (code)
        *exit_code = code;
    return code == CLI_EXIT_CONNECT || rc == DROVER_EINTR || rc == DROVER_ECLOSED;
}

int
cli_result (int argc, char **argv)
{
    return s_each_id (argc, argv, s_result_usage, true, s_result_one);
}

static bool
s_status_one (drover_client_t *client, const char *id, s_ids_args_t *args, int *exit_code)
{
    drover_job_info_t info;
    int rc = drover_status (client, id, &info, args->request_ms);
    if (rc)
        return s_request_failed (id, rc, args->request_ms, exit_code);
    if (info.state == DROVER_JOB_UNKNOWN) {
        printf ("%s unknown\n", id);
        cli_error ("%s: no such job (or its result expired)", id);
        *exit_code = CLI_EXIT_FAILED;
        return false;
    }
    //  Control characters would break the job's status line.
    cli_one_line (info.error);
    cli_one_line (info.queue);
    printf ("%s %s attempts=%u queue=%s", id, drover_job_state_name (info.state),
            info.attempts, info.queue);
    if (*info.error)
        printf (" error=%s", info.error);
    if (*info.submitter) {
        cli_one_line (info.submitter);
        printf (" submitter=%s", info.submitter);
    }
    if (info.progress || *info.progress_message) {
        printf (" progress=%u%%", (unsigned) info.progress);
        if (*info.progress_message) {
            cli_one_line (info.progress_message);
            for (char *quote = info.progress_message; (quote = strchr (quote, '"')); )
                *quote = '\'';
            printf (" \"%s\"", info.progress_message);
        }
    }
    putchar ('\n');
    return false;
}

int
cli_status (int argc, char **argv)
{
    return s_each_id (argc, argv, s_status_usage, false, s_status_one);
}

static bool
s_cancel_one (drover_client_t *client, const char *id, s_ids_args_t *args, int *exit_code)
{
    int rc = drover_cancel (client, id, args->request_ms);
    if (rc == DROVER_OK)
        printf ("%s cancelled\n", id);
    else
    if (rc == DROVER_ENOTFOUND) {
        cli_error ("%s: no such job (or its result expired)", id);
        *exit_code = CLI_EXIT_FAILED;
    }
    else
    if (rc == DROVER_ESTATE) {
        cli_error ("%s: already finished, not cancelled", id);
        *exit_code = CLI_EXIT_FAILED;
    }
    else
        return s_request_failed (id, rc, args->request_ms, exit_code);
    return false;
}

int
cli_cancel (int argc, char **argv)
{
    return s_each_id (argc, argv, s_cancel_usage, false, s_cancel_one);
}

//  stats ----------------------------------------------------------------------

static const char *s_stats_usage =
    "Usage: drover stats [--json] [--timeout S]\n"
    "\n"
    "Prints two tables with a row per queue and a total row. The first: jobs\n"
    "queued, scheduled and running now, done and failed since the broker\n"
    "started, workers serving the queue. The second: jobs submitted and retried\n"
    "since the start, dead letters, whether the queue is paused, and jobs\n"
    "submitted and done per second (about a minute's average). Then the\n"
    "broker's totals: uptime, workers, clients, jobs stored, queues. These are\n"
    "the numbers /metrics exports.\n"
    "\n"
    "Options:\n"
    "      --json            one JSON object instead of the table\n"
    "  -t, --timeout S       how long the broker may take to answer (default 5)\n"
    CLI_CONNECT_HELP
    "  -h, --help            show this help\n";

//  Formats a duration as e.g. "3d4h", "2h5m", "4m10s", "12s".
static void
s_format_uptime (uint64_t ms, char *text, size_t size)
{
    uint64_t s = ms / 1000;
    if (s >= 86400)
        snprintf (text, size, "%" PRIu64 "d%" PRIu64 "h", s / 86400, s % 86400 / 3600);
    else
    if (s >= 3600)
        snprintf (text, size, "%" PRIu64 "h%" PRIu64 "m", s / 3600, s % 3600 / 60);
    else
    if (s >= 60)
        snprintf (text, size, "%" PRIu64 "m%" PRIu64 "s", s / 60, s % 60);
    else
        snprintf (text, size, "%" PRIu64 "s", s);
}

//  Reports a failed stats request; returns the exit code.
static int
s_stats_failed (const char *what, int rc, int timeout_ms)
{
    int exit_code;
    s_request_failed (what, rc, timeout_ms, &exit_code);
    return exit_code;
}

//  The stats as one JSON object.
static void
s_stats_json (const drover_stats_t *stats)
{
    printf ("{\"uptime_ms\":%" PRIu64 ",\"workers\":%" PRIu32 ",\"clients\":%" PRIu32
            ",\"jobs_stored\":%" PRIu64 ",\"queues\":[",
            stats->uptime_ms, stats->workers, stats->clients, stats->jobs_stored);
    for (size_t index = 0; index < stats->queue_count; index++) {
        const drover_queue_stats_t *queue = &stats->queues [index];
        char name [sizeof queue->name + 1];
        snprintf (name, sizeof name, "%.*s", (int) sizeof queue->name, queue->name);
        printf ("%s{\"name\":", index? ",": "");
        cli_json_string (name);
        printf (",\"queued\":%" PRIu64 ",\"scheduled\":%" PRIu64 ",\"running\":%" PRIu64
                ",\"submitted\":%" PRIu64 ",\"done\":%" PRIu64 ",\"failed\":%" PRIu64
                ",\"retried\":%" PRIu64 ",\"dead\":%" PRIu64 ",\"workers\":%" PRIu32
                ",\"paused\":%s,\"submit_rate\":%.3f,\"done_rate\":%.3f}",
                queue->queued, queue->scheduled, queue->running, queue->submitted,
                queue->done, queue->failed, queue->retried, queue->dead, queue->workers,
                queue->paused? "true": "false", queue->submit_rate, queue->done_rate);
    }
    printf ("]}\n");
}

int
cli_stats (int argc, char **argv)
{
    drover_stats_t *stats = NULL;
    bool json = false;
    int exit_code = cli_request_stats (argc, argv, s_stats_usage, CLI_LIMIT_NONE,
                                       s_stats_failed, &stats, &json);
    if (exit_code >= 0)
        return exit_code;
    if (json) {
        s_stats_json (stats);
        drover_stats_destroy (&stats);
        return CLI_EXIT_OK;
    }

    //  Two tables: what the queues hold now, then what went through them
    //  since the broker started. The queue column is as wide as the
    //  longest name.
    int width = cli_queue_width (stats);
    printf ("%-*s %10s %10s %10s %12s %10s %8s\n", width, "QUEUE",
            "QUEUED", "SCHEDULED", "RUNNING", "DONE", "FAILED", "WORKERS");
    drover_queue_stats_t total;
    memset (&total, 0, sizeof total);
    for (size_t index = 0; index < stats->queue_count; index++) {
        drover_queue_stats_t *queue = &stats->queues [index];
        printf ("%-*.*s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %12" PRIu64
                " %10" PRIu64 " %8" PRIu32 "\n",
                width, (int) sizeof queue->name, queue->name, queue->queued,
                queue->scheduled, queue->running, queue->done, queue->failed, queue->workers);
        total.queued += queue->queued;
        total.scheduled += queue->scheduled;
        total.running += queue->running;
        total.submitted += queue->submitted;
        total.done += queue->done;
        total.failed += queue->failed;
        total.retried += queue->retried;
        total.dead += queue->dead;
        total.submit_rate += queue->submit_rate;
        total.done_rate += queue->done_rate;
    }
    //  Workers in the total row are distinct workers: one may serve
    //  several queues, so the column does not add up.
    printf ("%-*s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %12" PRIu64
            " %10" PRIu64 " %8" PRIu32 "\n",
            width, "TOTAL", total.queued, total.scheduled, total.running,
            total.done, total.failed, stats->workers);

    printf ("\n%-*s %12s %10s %10s %6s %10s %10s\n", width, "QUEUE",
            "SUBMITTED", "RETRIED", "DEAD", "PAUSED", "SUBMIT/S", "DONE/S");
    for (size_t index = 0; index < stats->queue_count; index++) {
        drover_queue_stats_t *queue = &stats->queues [index];
        printf ("%-*.*s %12" PRIu64 " %10" PRIu64 " %10" PRIu64 " %6s %10.2f %10.2f\n",
                width, (int) sizeof queue->name, queue->name, queue->submitted,
                queue->retried, queue->dead, queue->paused? "yes": "no",
                queue->submit_rate, queue->done_rate);
    }
    printf ("%-*s %12" PRIu64 " %10" PRIu64 " %10" PRIu64 " %6s %10.2f %10.2f\n",
            width, "TOTAL", total.submitted, total.retried, total.dead, "",
            total.submit_rate, total.done_rate);
    char uptime [32];
    s_format_uptime (stats->uptime_ms, uptime, sizeof uptime);
    printf ("\nbroker: up %s, %" PRIu32 " workers, %" PRIu32 " clients, %" PRIu64
            " jobs stored, %zu queues\n", uptime, stats->workers, stats->clients,
            stats->jobs_stored, stats->queue_count);
    drover_stats_destroy (&stats);
    return CLI_EXIT_OK;
}
