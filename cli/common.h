/*  common.h - helpers shared by the drover command-line client.

    Each command group lives in its own file (keygen.c, jobs.c, admin.c,
    state.c, sync.c, up.c, demo.c, bench.c) and exports one cli_<command> function
    per command; main.c dispatches to them through a table. This header holds what they
    share: error output and exit codes, option parsing, connection options
    and the connect step, the request commands' options, waiting on futures
    with interrupt checks, the key ring that `up`, `demo` and `bench`
    generate, and the worker processes they start.

    Exit codes (the contract scripts rely on):
        0   success
        1   a job or an operation failed
        2   bad usage (message on stderr)
        3   cannot reach or authenticate to the broker, or a key is unusable
*/
#ifndef CLI_COMMON_H_INCLUDED
#define CLI_COMMON_H_INCLUDED

#include <drover.h>
#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_EXIT_OK       0
#define CLI_EXIT_FAILED   1
#define CLI_EXIT_USAGE    2
#define CLI_EXIT_CONNECT  3

#define CLI_DEFAULT_BROKER      "tcp://127.0.0.1:5555"
#define CLI_DEFAULT_CONNECT_MS  5000
//  How long status, cancel and stats wait for the broker's answer.
#define CLI_DEFAULT_REQUEST_MS  5000

//  Every command has this shape; argv [0] is the command name.
typedef int (cli_command_fn) (int argc, char **argv);

//  Commands, one file per group ------------------------------------------

int cli_keygen (int argc, char **argv);         //  keygen.c
int cli_submit (int argc, char **argv);         //  jobs.c
int cli_map (int argc, char **argv);
int cli_result (int argc, char **argv);
int cli_status (int argc, char **argv);
int cli_cancel (int argc, char **argv);
int cli_stats (int argc, char **argv);
int cli_workers (int argc, char **argv);        //  ops.c
int cli_health (int argc, char **argv);
int cli_queues (int argc, char **argv);         //  admin.c
int cli_pause (int argc, char **argv);
int cli_resume (int argc, char **argv);
int cli_dead (int argc, char **argv);
int cli_state (int argc, char **argv);         //  state.c
int cli_lock (int argc, char **argv);           //  sync.c
int cli_event (int argc, char **argv);
int cli_barrier (int argc, char **argv);
int cli_up (int argc, char **argv);             //  up.c
int cli_demo (int argc, char **argv);           //  demo.c
int cli_demo_worker (int argc, char **argv);
int cli_bench (int argc, char **argv);          //  bench.c
int cli_bench_worker (int argc, char **argv);

//  Errors and exit codes -------------------------------------------------

//  Prints "drover: <message>" and a newline on stderr.
void cli_error (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

//  Prints "drover: <cmd>: <message> (see 'drover <cmd> --help')" on stderr
//  and returns CLI_EXIT_USAGE, so a parser can `return cli_usage (...)`.
int cli_usage (const char *cmd, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

//  Maps an SDK error to the exit code of the contract above.
int cli_exit_code (int err);

//  Option parsing --------------------------------------------------------

//  getopt_long with our error messages. shortopts must start with ':' so
//  that a missing value is told apart from an unknown option. Returns the
//  option, -1 at the end, or '?' after printing a usage error (the caller
//  then returns CLI_EXIT_USAGE).
int cli_getopt (int argc, char **argv, const char *shortopts,
                const struct option *longopts);

//  Parses seconds, decimals allowed ("2", "0.5"), into milliseconds.
//  Returns 0, or -1 when text is not a non-negative number within range.
int cli_parse_seconds (const char *text, int64_t *ms_p);

//  Parses a whole decimal number within [min, max]. Returns 0 or -1.
int cli_parse_long (const char *text, long min, long max, long *value_p);

//  Parses an absolute time into Unix milliseconds: Unix seconds ("1795000000",
//  decimals allowed) or ISO 8601 "YYYY-MM-DDTHH:MM[:SS[.fff]]" followed by
//  "Z", "+HH:MM", "-HHMM" or nothing (local time); a space may stand for
//  the T. Returns 0, or -1 for anything else, an impossible date, or a
//  time before 1970 or after 9999.
int cli_parse_time (const char *text, uint64_t *ms_p);

//  Writes Unix milliseconds as ISO 8601 UTC, "2026-11-25T16:30:00Z".
void cli_format_time (uint64_t ms, char *text, size_t size);

//  True for a valid queue name: 1 to 128 bytes of A-Z a-z 0-9 . _ - :
//  (docs/PROTOCOL.md section 3). Checked here so a typo is a usage error
//  before any connection.
bool cli_valid_queue (const char *name);
#define CLI_QUEUE_RULE "1 to 128 characters of A-Z a-z 0-9 . _ - :"

//  Connection options shared by every client command --------------------

enum {
    CLI_OPT_BROKER = 0x1000,
    CLI_OPT_SERVER_KEY,
    CLI_OPT_CERT,
    CLI_OPT_INSECURE,
    CLI_OPT_CONNECT_TIMEOUT
};

//  Put this inside a command's struct option array.
#define CLI_CONNECT_OPTIONS \
    { "broker",          required_argument, NULL, CLI_OPT_BROKER }, \
    { "server-key",      required_argument, NULL, CLI_OPT_SERVER_KEY }, \
    { "cert",            required_argument, NULL, CLI_OPT_CERT }, \
    { "insecure",        no_argument,       NULL, CLI_OPT_INSECURE }, \
    { "connect-timeout", required_argument, NULL, CLI_OPT_CONNECT_TIMEOUT }

//  Help text for the options above, for each command's usage.
#define CLI_CONNECT_HELP \
    "Connection (flags win over DROVER_BROKER, DROVER_SERVER_KEY, DROVER_CERT\n" \
    "and DROVER_INSECURE=1):\n" \
    "      --broker EP       broker endpoint (default " CLI_DEFAULT_BROKER ")\n" \
    "      --server-key PATH the broker's public certificate\n" \
    "      --cert PATH       our secret certificate\n" \
    "      --insecure        plaintext, for a broker started with --insecure\n" \
    "      --connect-timeout S\n" \
    "                        give up connecting after S seconds (default 5)\n"

//  Handles one of the CLI_OPT_* options into cfg (strings are borrowed
//  from argv). Returns 1 when handled, 0 when opt is not a connection
//  option, or -1 after printing a usage error for a bad value.
int cli_connect_option (drover_connect_t *cfg, const char *cmd, int opt, const char *arg);

//  cli_getopt for a command that takes CLI_CONNECT_OPTIONS: handles those
//  into cfg itself and returns the next other option, -1 at the end, or
//  '?' after printing a usage error (the caller returns CLI_EXIT_USAGE).
int cli_getopt_connect (int argc, char **argv, const char *shortopts,
                        const struct option *longopts, drover_connect_t *cfg);

//  Completes cfg from the environment and defaults and checks it: a usage
//  error (missing keys without --insecure) returns CLI_EXIT_USAGE, an
//  unreadable key file CLI_EXIT_CONNECT; both print why. Returns 0 if usable.
int cli_connect_resolve (drover_connect_t *cfg, const char *cmd);

//  Resolves cfg, connects and reports any failure in one line. Returns 0
//  with *client_p set, or the exit code to return.
int cli_connect (drover_connect_t *cfg, const char *cmd, drover_client_t **client_p);

//  Requests: stats, queues, pause, resume and dead ask the broker one thing
//  and take --timeout S (seconds > 0, default 5), --help, the connection
//  options and, for dead, --limit N.

typedef struct {
    drover_connect_t conn;      //  connection settings (borrowed from argv)
    int timeout_ms;             //  per request
    long limit;                 //  --limit, 0 if not given
    bool limit_given;           //  --limit seen
    bool json;                  //  --json seen
    char **words;               //  arguments after the options
    int word_count;             //  how many
} cli_request_args_t;

typedef enum {
    CLI_LIMIT_NONE,             //  --limit is no option of the command
    CLI_LIMIT_REFUSED,          //  --limit is known, but a usage error here
    CLI_LIMIT_TAKEN             //  --limit N, N >= 1
} cli_limit_t;

//  Parses a request command's options into args; --help prints usage.
//  Returns -1 to go on, else the exit code to return (0 after --help).
int cli_parse_request (int argc, char **argv, const char *usage, cli_limit_t limit,
                       cli_request_args_t *args);

//  Reports a failed request about what: no answer within timeout_ms, or
//  the SDK's reason. Returns the exit code (EINVAL is the broker's verdict
//  here, not our usage: 1, not 2).
int cli_request_failed (const char *what, int rc, int timeout_ms);

//  How a command reports a failed request; returns the exit code.
typedef int (cli_failed_fn) (const char *what, int rc, int timeout_ms);

//  The start of stats, queues and workers: parses the options (no
//  arguments), connects and asks for the broker's stats; failed reports a
//  failed request under the command's name. json_p, when not NULL, takes
//  --json (NULL: --json is a usage error). Returns -1 with *stats_p set
//  (free it with drover_stats_destroy), else the exit code to return.
int cli_request_stats (int argc, char **argv, const char *usage, cli_limit_t limit,
                       cli_failed_fn *failed, drover_stats_t **stats_p, bool *json_p);

//  Writes text as a JSON string, quotes included, to stdout.
void cli_json_string (const char *text);

//  Checks that each of ids is a job id (32 hex digits), before connecting
//  so that a typo costs no round trip. Returns 0, or CLI_EXIT_USAGE after
//  printing the first bad one.
int cli_check_ids (const char *cmd, const char *const *ids, size_t count);

//  Replaces control characters with spaces so a text stays on its line.
void cli_one_line (char *text);

//  Width of a table's QUEUE column: the longest queue name, at least 5.
int cli_queue_width (const drover_stats_t *stats);

//  Signals and waiting ---------------------------------------------------

//  Installs the SIGINT/SIGTERM handler: it sets a flag (and CZMQ's
//  zsys_interrupted, which the SDK and the broker actor watch). Call once,
//  before any thread starts.
void cli_signals_init (void);

//  True once SIGINT or SIGTERM arrived; cli_signal() says which (0 if none).
bool cli_interrupted (void);
int cli_signal (void);

//  Monotonic clock in milliseconds.
int64_t cli_now_ms (void);

typedef enum {
    CLI_WAIT_ACCEPTED,          //  until the broker accepted (or refused) the job
    CLI_WAIT_DONE               //  until the job ended
} cli_wait_t;

//  Waits on a future until the event or the deadline (cli_now_ms based;
//  < 0 means none), checking for SIGINT between short slices so a blocked
//  CLI always reacts to Ctrl-C. Returns what the SDK wait returned, or
//  DROVER_EINTR.
int cli_future_wait (drover_future_t *future, cli_wait_t what, int64_t deadline_ms);

//  Writes size bytes to stdout; with newline, adds '\n' unless the data
//  already ends in one. Returns 0 or -1 (stdout closed).
int cli_write_out (const void *data, size_t size, bool newline);

//  Key ring for `up` and `demo` ------------------------------------------

//  Paths of the certificates in a key directory; heap strings owned by
//  the struct, freed by cli_keyring_close().
typedef struct {
    char *dir;                  //  the directory itself
    char *server;               //  broker public certificate
    char *server_secret;        //  broker secret certificate
    char *producer_secret;      //  producer secret certificate
    char *worker_secret;        //  worker secret certificate
    char *admin_secret;         //  admin secret certificate
    char *allow;                //  allow-list directory (public certs)
} cli_keyring_t;

//  Writes a new certificate pair PATH / PATH_secret (0600) with role
//  metadata (NULL = none). Refuses existing files unless force. Returns 0,
//  or -1 after printing why. If public_txt is not NULL it receives the
//  public key in Z85 (41 bytes).
int cli_cert_write (const char *path, const char *role, bool force, char *public_txt);

//  Fills ring with the paths under dir and makes sure the keys exist: an
//  absent or empty dir gets a fresh server, producer, worker and admin key
//  and an allow list; a complete one is reused (*reused set). An
//  incomplete one is an error. Paths are absolute. Returns 0 or -1 (printed);
//  call cli_keyring_close() afterwards in either case.
int cli_keyring_open (cli_keyring_t *ring, const char *dir, bool *reused);
void cli_keyring_close (cli_keyring_t *ring);

//  Child processes -------------------------------------------------------

//  Starts argv [0] (a path, or a name looked up in PATH when it has no
//  '/') with argv. Never forks without exec: safe once threads run.
//  Returns the pid or -1 (printed).
int cli_spawn (char *const argv []);

//  Starts count copies of argv with cli_spawn, their pids in pids. Returns
//  0, or -1 (printed) with the failed one and any after it 0: stop those
//  started with cli_stop_children in either case.
int cli_spawn_many (char *const argv [], int *pids, size_t count);

//  Sends SIGTERM to each pid > 0 and reaps them; after grace_ms sends
//  SIGKILL to those left. Sets each reaped pid to 0.
void cli_stop_children (int *pids, size_t count, int grace_ms);

//  Reaps the first of pids (those > 0) that has ended and sets it to 0;
//  *status_p gets its wait status unless status_p is NULL. Returns its pid,
//  or 0 while all run.
int cli_child_ended (int *pids, size_t count, int *status_p);

//  Describes a wait status: "exited with status N", "was killed by signal
//  N", else "ended (status N)".
void cli_describe_status (int status, char *text, size_t size);

//  Our own executable's path (/proc/self/exe), heap string or NULL.
char *cli_self_exe (void);

//  Looks name up in $PATH; a new absolute path, or NULL.
char *cli_which (const char *name);

//  Finds a companion program: next to us (installed), then in the build
//  tree (cli/../tree_dir/), then on PATH. A new absolute path, or NULL.
char *cli_find_program (const char *name, const char *tree_dir);

//  Removes path and, for a directory, everything under it (without
//  following symbolic links). Best effort: what cannot go stays.
void cli_remove_tree (const char *path);

//  Creates a fresh directory $TMPDIR/drover-CMD-XXXXXX (/tmp without
//  TMPDIR). Returns its path (free with zstr_free), or NULL (printed).
char *cli_temp_dir (const char *cmd);

//  Local workers: `demo` and `bench` start hidden worker commands of this
//  executable, `up` starts drover-worker -------------------------------

//  Most words cli_worker_argv writes.
#define CLI_WORKER_ARGV_MAX 8

//  Writes the start of a worker's command line into argv: program, the
//  subcommand unless NULL, --broker endpoint, and ring's worker
//  credentials (--insecure when ring is NULL). Returns how many words it
//  wrote; the caller adds the worker's own options and the final NULL.
int cli_worker_argv (char **argv, const char *program, const char *subcommand,
                     const char *endpoint, const cli_keyring_t *ring);

//  Connects to a local broker with ring's producer key (insecure when ring
//  is NULL), reporting any failure. Returns 0 with *client_p set, or the
//  exit code to return.
int cli_connect_local (const char *cmd, const char *endpoint, const cli_keyring_t *ring,
                       const char *name, drover_client_t **client_p);

//  Waits until count workers serve queue, so that timings cover the work,
//  not the workers' start. Watches pids, so a worker that cannot connect
//  is reported at once. Returns 0, or -1 when a worker died, on interrupt,
//  or after timeout_ms (all printed as "CMD: ...").
int cli_wait_workers (const char *cmd, drover_client_t *client, const char *queue,
                      int *pids, size_t count, int timeout_ms);

//  Reaps the first of pids that has ended, reports it on stderr as
//  "CMD: worker process PID exited with status N" (or killed by signal N),
//  and returns its pid; 0 while all run.
int cli_reap_worker (const char *cmd, int *pids, size_t count);

//  The body of a hidden worker command (demo-worker, bench-worker), after
//  its options: resolves cfg, asks to be stopped when the parent dies,
//  and serves queue with handler (concurrency threads; prefetch < 0 keeps
//  the SDK's default) until SIGTERM or SIGINT, which stop it after the
//  jobs it holds. Errors are reported as "CMD: ...". Returns the exit code.
int cli_worker_serve (drover_connect_t *cfg, const char *cmd, const char *queue,
                      drover_handler_fn *handler, int concurrency, int prefetch);

#endif
