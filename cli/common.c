/*  common.c - option parsing, connecting, requests, exit codes, signals,
    child processes and local workers for the drover CLI. See common.h.
*/
#include "common.h"

#include <assert.h>
#include <czmq.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

//  Errors and exit codes -------------------------------------------------

void
cli_error (const char *format, ...)
{
    //  One line, built first, so that lines from several processes sharing
    //  a terminal (demo, up) do not interleave mid-line.
    char line [1024];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    fflush (stdout);
    fprintf (stderr, "drover: %s\n", line);
}

int
cli_usage (const char *cmd, const char *format, ...)
{
    char line [768];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    cli_error ("%s: %s (see 'drover %s --help')", cmd, line, cmd);
    return CLI_EXIT_USAGE;
}

int
cli_exit_code (int err)
{
    switch (err) {
        case DROVER_OK:
            return CLI_EXIT_OK;
        case DROVER_EINVAL:
            return CLI_EXIT_USAGE;
        //  All of these mean "fix how you connect", not "the job failed".
        case DROVER_EUNREACHABLE:
        case DROVER_EUNAUTH:
        case DROVER_EKEY:
        case DROVER_EDENIED:
        case DROVER_EPROTO:
            return CLI_EXIT_CONNECT;
        default:
            return CLI_EXIT_FAILED;
    }
}

//  Option parsing --------------------------------------------------------

int
cli_getopt (int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    assert (shortopts && shortopts [0] == ':');
    opterr = 0;                 //  we print our own, prefixed messages
    int opt = getopt_long (argc, argv, shortopts, longopts, NULL);
    if (opt != '?' && opt != ':')
        return opt;

    //  getopt leaves the offending word at optind - 1, except for an unknown
    //  short option inside a cluster such as -qx, which only optopt names.
    const char *word = optind > 0 && optind <= argc? argv [optind - 1]: "";
    char shown [64];
    if (strncmp (word, "--", 2) == 0) {
        snprintf (shown, sizeof shown, "%s", word);
        char *equals = strchr (shown, '=');
        if (equals)
            *equals = 0;
    }
    else
    if (optopt > 0 && optopt < 128 && isprint (optopt))
        snprintf (shown, sizeof shown, "-%c", optopt);
    else
        snprintf (shown, sizeof shown, "%s", word);

    //  "--wait=3" also lands here: name the real mistake.
    bool takes_no_value = false;
    if (opt == '?' && strchr (word, '=') && strncmp (word, "--", 2) == 0)
        for (const struct option *option = longopts; option->name; option++)
            if (streq (option->name, shown + 2) && option->has_arg == no_argument)
                takes_no_value = true;
    if (opt == ':')
        cli_usage (argv [0], "option '%s' needs a value", shown);
    else
    if (takes_no_value)
        cli_usage (argv [0], "option '%s' takes no value", shown);
    else
        cli_usage (argv [0], "unknown option '%s'", shown);
    return '?';
}

int
cli_parse_seconds (const char *text, int64_t *ms_p)
{
    if (!text || !*text || isspace ((unsigned char) *text))
        return -1;
    char *end = NULL;
    errno = 0;
    double seconds = strtod (text, &end);
    //  The range check also rejects nan; a year is a generous upper bound
    //  that keeps every later int conversion safe.
    if (errno || *end || !(seconds >= 0 && seconds <= 366.0 * 24 * 3600))
        return -1;
    *ms_p = (int64_t) (seconds * 1000.0 + 0.5);
    return 0;
}

int
cli_parse_long (const char *text, long min, long max, long *value_p)
{
    if (!text || !*text || isspace ((unsigned char) *text))
        return -1;
    char *end = NULL;
    errno = 0;
    long value = strtol (text, &end, 10);
    if (errno || *end || value < min || value > max)
        return -1;
    *value_p = value;
    return 0;
}

//  Reads exactly count digits at *text into *value; advances text.
static bool
s_digits (const char **text, int count, int *value)
{
    *value = 0;
    for (int index = 0; index < count; index++, (*text)++) {
        if (!isdigit ((unsigned char) **text))
            return false;
        *value = *value * 10 + (**text - '0');
    }
    return true;
}

int
cli_parse_time (const char *text, uint64_t *ms_p)
{
    if (!text || !*text)
        return -1;
    //  Unix seconds
    const char *next = text;
    while (isdigit ((unsigned char) *next))
        next++;
    if (next > text && (*next == 0 || *next == '.')) {
        char *end = NULL;
        errno = 0;
        double seconds = strtod (text, &end);
        if (errno || *end || !(seconds >= 0 && seconds < 253402300800.0))
            return -1;
        *ms_p = (uint64_t) (seconds * 1000.0 + 0.5);
        return 0;
    }
    //  ISO 8601
    int year, month, day, hour, minute, second = 0, ms = 0;
    next = text;
    if (!s_digits (&next, 4, &year) || *next++ != '-'
    ||  !s_digits (&next, 2, &month) || *next++ != '-'
    ||  !s_digits (&next, 2, &day)
    ||  (*next != 'T' && *next != 't' && *next != ' '))
        return -1;
    next++;
    if (!s_digits (&next, 2, &hour) || *next++ != ':' || !s_digits (&next, 2, &minute))
        return -1;
    if (*next == ':') {
        next++;
        if (!s_digits (&next, 2, &second))
            return -1;
        if (*next == '.' || *next == ',') {
            next++;
            if (!isdigit ((unsigned char) *next))
                return -1;
            for (int scale = 100; isdigit ((unsigned char) *next); next++, scale /= 10)
                ms += (*next - '0') * scale;
        }
    }
    bool utc = false;
    int offset = 0;                 //  seconds east of UTC
    if (*next == 'Z' || *next == 'z') {
        utc = true;
        next++;
    }
    else
    if (*next == '+' || *next == '-') {
        int sign = *next++ == '-'? -1: 1;
        int off_hour, off_minute = 0;
        if (!s_digits (&next, 2, &off_hour))
            return -1;
        if (*next == ':')
            next++;
        if (*next && !s_digits (&next, 2, &off_minute))
            return -1;
        if (off_hour > 23 || off_minute > 59)
            return -1;
        utc = true;
        offset = sign * (off_hour * 3600 + off_minute * 60);
    }
    if (*next)
        return -1;
    if (year < 1970 || month < 1 || month > 12 || day < 1 || day > 31
    ||  hour > 23 || minute > 59 || second > 59)
        return -1;
    //  A calendar check: the date must come back unchanged (no 31 April)
    struct tm wanted = {0};
    wanted.tm_year = year - 1900;
    wanted.tm_mon = month - 1;
    wanted.tm_mday = day;
    wanted.tm_hour = hour;
    wanted.tm_min = minute;
    wanted.tm_sec = second;
    struct tm fields = wanted;
    time_t as_utc = timegm (&fields);
    if (fields.tm_mday != day || fields.tm_mon != month - 1)
        return -1;
    time_t when;
    if (utc)
        when = as_utc - offset;
    else {
        fields = wanted;
        fields.tm_isdst = -1;
        when = mktime (&fields);
    }
    if (when < 0)
        return -1;
    *ms_p = (uint64_t) when * 1000 + (uint64_t) ms;
    return 0;
}

void
cli_format_time (uint64_t ms, char *text, size_t size)
{
    time_t seconds = (time_t) (ms / 1000);
    struct tm fields;
    if (!gmtime_r (&seconds, &fields) || !strftime (text, size, "%Y-%m-%dT%H:%M:%SZ", &fields))
        snprintf (text, size, "-");
}

bool
cli_valid_queue (const char *name)
{
    return drover_queue_name_valid (name);
}

//  Connecting --------------------------------------------------------------

int
cli_connect_option (drover_connect_t *cfg, const char *cmd, int opt, const char *arg)
{
    switch (opt) {
        case CLI_OPT_BROKER:
            if (!*arg) {
                cli_usage (cmd, "--broker needs an endpoint such as %s", CLI_DEFAULT_BROKER);
                return -1;
            }
            cfg->endpoint = arg;
            return 1;
        case CLI_OPT_SERVER_KEY:
            cfg->server_key = arg;
            return 1;
        case CLI_OPT_CERT:
            cfg->cert = arg;
            return 1;
        case CLI_OPT_INSECURE:
            cfg->insecure = true;
            return 1;
        case CLI_OPT_CONNECT_TIMEOUT: {
            int64_t ms;
            if (cli_parse_seconds (arg, &ms) || ms < 1 || ms > INT_MAX) {
                cli_usage (cmd, "--connect-timeout wants seconds > 0, not '%s'", arg);
                return -1;
            }
            cfg->timeout_ms = (int) ms;
            return 1;
        }
        default:
            return 0;
    }
}

int
cli_getopt_connect (int argc, char **argv, const char *shortopts,
                    const struct option *longopts, drover_connect_t *cfg)
{
    int opt;
    while ((opt = cli_getopt (argc, argv, shortopts, longopts)) != -1 && opt != '?') {
        int rc = cli_connect_option (cfg, argv [0], opt, optarg);
        if (rc < 0)
            return '?';
        if (rc == 0)
            return opt;
    }
    return opt;
}

//  Checks that a certificate file can be read, so a typo in a path gets a
//  message naming the path rather than a generic key error.
static int
s_check_key_file (const char *what, const char *path)
{
    if (access (path, R_OK) == 0)
        return 0;
    cli_error ("cannot read %s '%s': %s", what, path, strerror (errno));
    return CLI_EXIT_CONNECT;
}

int
cli_connect_resolve (drover_connect_t *cfg, const char *cmd)
{
    drover_connect_from_env (cfg);
    if (!cfg->endpoint || !*cfg->endpoint)
        cfg->endpoint = CLI_DEFAULT_BROKER;
    if (cfg->timeout_ms <= 0)
        cfg->timeout_ms = CLI_DEFAULT_CONNECT_MS;
    if (cfg->insecure)
        return 0;
    if (!cfg->server_key || !*cfg->server_key || !cfg->cert || !*cfg->cert)
        return cli_usage (cmd, "no keys: give --server-key and --cert "
                          "(or DROVER_SERVER_KEY and DROVER_CERT), or --insecure");
    int rc = s_check_key_file ("the broker's public certificate", cfg->server_key);
    if (rc == 0)
        rc = s_check_key_file ("our secret certificate", cfg->cert);
    return rc;
}

int
cli_connect (drover_connect_t *cfg, const char *cmd, drover_client_t **client_p)
{
    int rc = cli_connect_resolve (cfg, cmd);
    if (rc)
        return rc;
    rc = drover_client_connect (cfg, client_p);
    if (rc == DROVER_OK)
        return CLI_EXIT_OK;

    switch (rc) {
        case DROVER_EUNREACHABLE:
            cli_error ("cannot reach the broker at %s (no answer within %.1f s)",
                       cfg->endpoint, cfg->timeout_ms / 1000.0);
            break;
        case DROVER_EUNAUTH:
            cli_error ("the broker at %s did not accept us: not authorised "
                       "(is our key in its allow list, and is the server key right?)",
                       cfg->endpoint);
            break;
        case DROVER_EKEY:
            cli_error ("cannot use the certificates: server key '%s', cert '%s' "
                       "(a secret certificate is needed for --cert)",
                       cfg->server_key, cfg->cert);
            break;
        case DROVER_EDENIED:
            cli_error ("the broker at %s refused us: our key's role may not act "
                       "as a client (use a producer or admin key)", cfg->endpoint);
            break;
        default:
            cli_error ("cannot connect to the broker at %s: %s",
                       cfg->endpoint, drover_strerror (rc));
            break;
    }
    //  Whatever the SDK said, a failed connect is a connection problem.
    return rc == DROVER_EINVAL? CLI_EXIT_USAGE: CLI_EXIT_CONNECT;
}

//  Requests --------------------------------------------------------------

enum {
    OPT_LIMIT = 0x1100,
    OPT_JSON
};

//  Whether the command being parsed takes --json (stats and workers do).
static bool s_json_allowed = false;

int
cli_parse_request (int argc, char **argv, const char *usage, cli_limit_t limit,
                   cli_request_args_t *args)
{
    //  Two tables, so that a command without --limit treats it as any
    //  unknown option, and one that refuses it names it
    static const struct option options [] = {
        { "timeout", required_argument, NULL, 't' },
        { "json",    no_argument,       NULL, OPT_JSON },
        { "help",    no_argument,       NULL, 'h' },
        CLI_CONNECT_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    static const struct option limit_options [] = {
        { "timeout", required_argument, NULL, 't' },
        { "json",    no_argument,       NULL, OPT_JSON },
        { "limit",   required_argument, NULL, OPT_LIMIT },
        { "help",    no_argument,       NULL, 'h' },
        CLI_CONNECT_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    memset (args, 0, sizeof *args);
    args->timeout_ms = CLI_DEFAULT_REQUEST_MS;
    const char *cmd = argv [0];
    int64_t ms;
    int opt;
    while ((opt = cli_getopt_connect (argc, argv, ":t:h",
                                      limit == CLI_LIMIT_NONE? options: limit_options,
                                      &args->conn)) != -1) {
        switch (opt) {
            case 'h':
                fputs (usage, stdout);
                return CLI_EXIT_OK;
            case 't':
                if (cli_parse_seconds (optarg, &ms) || ms < 1 || ms > INT_MAX)
                    return cli_usage (cmd, "--timeout wants seconds > 0, not '%s'", optarg);
                args->timeout_ms = (int) ms;
                break;
            case OPT_LIMIT:
                if (limit != CLI_LIMIT_TAKEN)
                    return cli_usage (cmd, "unknown option '--limit'");
                if (cli_parse_long (optarg, 1, 1000000, &args->limit))
                    return cli_usage (cmd, "--limit must be a number >= 1, not '%s'", optarg);
                args->limit_given = true;
                break;
            case OPT_JSON:
                if (!s_json_allowed)
                    return cli_usage (cmd, "unknown option '--json'");
                args->json = true;
                break;
            default:
                return CLI_EXIT_USAGE;
        }
    }
    args->words = argv + optind;
    args->word_count = argc - optind;
    return -1;
}

int
cli_request_failed (const char *what, int rc, int timeout_ms)
{
    if (rc == DROVER_ETIMEDOUT)
        cli_error ("%s: no answer from the broker within %.3g s", what, timeout_ms / 1000.0);
    else
        cli_error ("%s: %s", what, drover_strerror (rc));
    int code = cli_exit_code (rc);
    return code == CLI_EXIT_USAGE? CLI_EXIT_FAILED: code;
}

int
cli_request_stats (int argc, char **argv, const char *usage, cli_limit_t limit,
                   cli_failed_fn *failed, drover_stats_t **stats_p, bool *json_p)
{
    cli_request_args_t args;
    s_json_allowed = json_p != NULL;
    int exit_code = cli_parse_request (argc, argv, usage, limit, &args);
    s_json_allowed = false;
    if (exit_code >= 0)
        return exit_code;
    const char *cmd = argv [0];
    if (json_p)
        *json_p = args.json;
    if (args.word_count)
        return cli_usage (cmd, "unexpected argument '%s'", args.words [0]);

    drover_client_t *client = NULL;
    exit_code = cli_connect (&args.conn, cmd, &client);
    if (exit_code)
        return exit_code;
    int rc = drover_stats (client, stats_p, args.timeout_ms);
    drover_client_destroy (&client);
    return rc? failed (cmd, rc, args.timeout_ms): -1;
}

void
cli_json_string (const char *text)
{
    putchar ('"');
    for (const unsigned char *c = (const unsigned char *) text; *c; c++) {
        if (*c == '"' || *c == '\\')
            printf ("\\%c", *c);
        else
        if (*c < 0x20)
            printf ("\\u%04x", *c);
        else
            putchar (*c);
    }
    putchar ('"');
}

int
cli_check_ids (const char *cmd, const char *const *ids, size_t count)
{
    for (size_t index = 0; index < count; index++) {
        uint8_t id [DROVER_ID_SIZE];
        if (drover_id_parse (ids [index], id))
            return cli_usage (cmd, "'%s' is not a job id (32 hex digits)", ids [index]);
    }
    return CLI_EXIT_OK;
}

void
cli_one_line (char *text)
{
    for (; *text; text++)
        if ((unsigned char) *text < 0x20)
            *text = ' ';
}

int
cli_queue_width (const drover_stats_t *stats)
{
    int width = 5;
    for (size_t index = 0; index < stats->queue_count; index++) {
        int length = (int) strnlen (stats->queues [index].name, sizeof stats->queues [index].name);
        if (length > width)
            width = length;
    }
    return width;
}

//  Signals and waiting ---------------------------------------------------

static volatile sig_atomic_t s_signal_number = 0;
static volatile sig_atomic_t s_signal_count = 0;

static void
s_on_signal (int signal_number)
{
    s_signal_number = signal_number;
    s_signal_count++;
}

void
cli_signals_init (void)
{
    //  CZMQ installs its own SIGINT/SIGTERM handler the first time anything
    //  creates a socket; that handler sets zsys_interrupted, which makes
    //  the broker actor and SDK threads stop on their own. Initialising
    //  CZMQ now and installing ours after it keeps ours in place, so the
    //  main thread decides the order of shutdown (workers drain before the
    //  broker stops).
    zsys_init ();
    //  CZMQ logs to stdout by default; stdout carries results and ids.
    zsys_set_logstream (stderr);

    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset (&action.sa_mask);
    action.sa_flags = 0;        //  no SA_RESTART: let poll() and read() return EINTR
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);
}

bool
cli_interrupted (void)
{
    return s_signal_number != 0 || zsys_interrupted;
}

int
cli_signal (void)
{
    return s_signal_number? s_signal_number: (zsys_interrupted? SIGINT: 0);
}

int64_t
cli_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int
cli_future_wait (drover_future_t *future, cli_wait_t what, int64_t deadline_ms)
{
    //  Short slices keep Ctrl-C responsive whatever the SDK does with
    //  signals, at the cost of a wake-up every 200 ms while waiting.
    for (;;) {
        if (cli_interrupted ())
            return DROVER_EINTR;
        int slice = 200;
        if (deadline_ms >= 0) {
            int64_t left = deadline_ms - cli_now_ms ();
            slice = left <= 0? 0: left < slice? (int) left: slice;
        }
        int rc = what == CLI_WAIT_ACCEPTED
               ? drover_future_accepted (future, slice)
               : drover_future_wait (future, slice);
        if (rc != DROVER_ETIMEDOUT)
            return rc;
        if (deadline_ms >= 0 && cli_now_ms () >= deadline_ms)
            return DROVER_ETIMEDOUT;
    }
}

int
cli_write_out (const void *data, size_t size, bool newline)
{
    if (size && fwrite (data, 1, size, stdout) != size)
        return -1;
    if (newline && (size == 0 || ((const char *) data) [size - 1] != '\n'))
        if (putchar ('\n') == EOF)
            return -1;
    return ferror (stdout)? -1: 0;
}

//  Child processes -------------------------------------------------------

int
cli_spawn (char *const argv [])
{
    posix_spawnattr_t attr;
    posix_spawnattr_init (&attr);
    //  The child must not inherit our handlers' effect or a blocked mask;
    //  default SIGPIPE too, in case a caller ignored it.
    sigset_t mask, defaults;
    sigemptyset (&mask);
    sigemptyset (&defaults);
    sigaddset (&defaults, SIGINT);
    sigaddset (&defaults, SIGTERM);
    sigaddset (&defaults, SIGPIPE);
    posix_spawnattr_setsigmask (&attr, &mask);
    posix_spawnattr_setsigdefault (&attr, &defaults);
    posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    fflush (NULL);              //  a child must not repeat our buffered output
    pid_t pid = 0;
    int rc = strchr (argv [0], '/')
           ? posix_spawn (&pid, argv [0], NULL, &attr, argv, environ)
           : posix_spawnp (&pid, argv [0], NULL, &attr, argv, environ);
    posix_spawnattr_destroy (&attr);
    if (rc) {
        cli_error ("cannot start %s: %s", argv [0], strerror (rc));
        return -1;
    }
    return (int) pid;
}

int
cli_spawn_many (char *const argv [], int *pids, size_t count)
{
    for (size_t index = 0; index < count; index++) {
        pids [index] = cli_spawn (argv);
        if (pids [index] < 0) {
            pids [index] = 0;
            return -1;
        }
    }
    return 0;
}

//  Reaps pid if it has ended; true when it is gone (*status_p set, 0 when
//  someone else reaped it).
static bool
s_reaped (int pid, int *status_p)
{
    int status = 0;
    pid_t rc = waitpid ((pid_t) pid, &status, WNOHANG);
    *status_p = status;
    return rc == (pid_t) pid || (rc < 0 && errno == ECHILD);
}

int
cli_child_ended (int *pids, size_t count, int *status_p)
{
    for (size_t index = 0; index < count; index++) {
        int status;
        if (pids [index] > 0 && s_reaped (pids [index], &status)) {
            int pid = pids [index];
            pids [index] = 0;
            if (status_p)
                *status_p = status;
            return pid;
        }
    }
    return 0;
}

void
cli_describe_status (int status, char *text, size_t size)
{
    if (WIFEXITED (status))
        snprintf (text, size, "exited with status %d", WEXITSTATUS (status));
    else
    if (WIFSIGNALED (status))
        snprintf (text, size, "was killed by signal %d", WTERMSIG (status));
    else
        snprintf (text, size, "ended (status %d)", status);
}

void
cli_stop_children (int *pids, size_t count, int grace_ms)
{
    for (size_t index = 0; index < count; index++)
        if (pids [index] > 0)
            kill ((pid_t) pids [index], SIGTERM);

    int64_t deadline = grace_ms < 0? -1: cli_now_ms () + grace_ms;
    int signals_before = s_signal_count;
    for (;;) {
        size_t left = 0;
        for (size_t index = 0; index < count; index++) {
            int status;
            if (pids [index] > 0 && s_reaped (pids [index], &status))
                pids [index] = 0;
            if (pids [index] > 0)
                left++;
        }
        if (left == 0)
            return;
        //  Out of patience, or the user pressed Ctrl-C again: no more drain.
        if ((deadline >= 0 && cli_now_ms () >= deadline)
        ||  s_signal_count != signals_before)
            break;
        usleep (20 * 1000);
    }
    for (size_t index = 0; index < count; index++)
        if (pids [index] > 0) {
            kill ((pid_t) pids [index], SIGKILL);
            waitpid ((pid_t) pids [index], NULL, 0);
            pids [index] = 0;
        }
}

char *
cli_self_exe (void)
{
    char path [PATH_MAX];
    ssize_t size = readlink ("/proc/self/exe", path, sizeof path - 1);
    if (size <= 0)
        return NULL;
    path [size] = 0;
    return strdup (path);
}

//  Returns dir/name as a new string if it is an executable file, else NULL.
static char *
s_executable (const char *dir, const char *name)
{
    char *path = zsys_sprintf ("%s/%s", dir, name);
    if (path && access (path, X_OK) == 0) {
        char absolute [PATH_MAX];
        if (realpath (path, absolute)) {
            zstr_free (&path);
            return strdup (absolute);
        }
    }
    zstr_free (&path);
    return NULL;
}

char *
cli_which (const char *name)
{
    const char *path = getenv ("PATH");
    if (!path)
        return NULL;
    char *copy = strdup (path);
    char *found = NULL;
    char *saveptr = NULL;
    for (char *dir = strtok_r (copy, ":", &saveptr); dir && !found;
         dir = strtok_r (NULL, ":", &saveptr))
        found = s_executable (*dir? dir: ".", name);
    free (copy);
    return found;
}

char *
cli_find_program (const char *name, const char *tree_dir)
{
    char *self = cli_self_exe ();
    char *found = NULL;
    if (self) {
        char *slash = strrchr (self, '/');
        if (slash) {
            *slash = 0;
            found = s_executable (self, name);
            if (!found) {
                char *tree = zsys_sprintf ("%s/../%s", self, tree_dir);
                found = tree? s_executable (tree, name): NULL;
                zstr_free (&tree);
            }
        }
        free (self);
    }
    return found? found: cli_which (name);
}

void
cli_remove_tree (const char *path)
{
    struct stat info;
    if (lstat (path, &info))
        return;
    if (S_ISDIR (info.st_mode)) {
        DIR *dir = opendir (path);
        struct dirent *entry;
        while (dir && (entry = readdir (dir))) {
            if (streq (entry->d_name, ".") || streq (entry->d_name, ".."))
                continue;
            char *child = zsys_sprintf ("%s/%s", path, entry->d_name);
            if (child)
                cli_remove_tree (child);
            zstr_free (&child);
        }
        if (dir)
            closedir (dir);
        rmdir (path);
    }
    else
        unlink (path);
}

char *
cli_temp_dir (const char *cmd)
{
    const char *root = getenv ("TMPDIR");
    char *dir = zsys_sprintf ("%s/drover-%s-XXXXXX", root && *root? root: "/tmp", cmd);
    if (!dir || !mkdtemp (dir)) {
        cli_error ("%s: cannot create a temporary directory: %s", cmd, strerror (errno));
        zstr_free (&dir);
    }
    return dir;
}

//  Local workers ---------------------------------------------------------

int
cli_worker_argv (char **argv, const char *program, const char *subcommand,
                 const char *endpoint, const cli_keyring_t *ring)
{
    int argc = 0;
    argv [argc++] = (char *) program;
    if (subcommand)
        argv [argc++] = (char *) subcommand;
    argv [argc++] = "--broker";
    argv [argc++] = (char *) endpoint;
    if (ring) {
        argv [argc++] = "--server-key";
        argv [argc++] = ring->server;
        argv [argc++] = "--cert";
        argv [argc++] = ring->worker_secret;
    }
    else
        argv [argc++] = "--insecure";
    assert (argc <= CLI_WORKER_ARGV_MAX);
    return argc;
}

int
cli_connect_local (const char *cmd, const char *endpoint, const cli_keyring_t *ring,
                   const char *name, drover_client_t **client_p)
{
    drover_connect_t cfg;
    memset (&cfg, 0, sizeof cfg);
    cfg.endpoint = endpoint;
    cfg.insecure = ring == NULL;
    if (ring) {
        cfg.server_key = ring->server;
        cfg.cert = ring->producer_secret;
    }
    cfg.timeout_ms = CLI_DEFAULT_CONNECT_MS;
    cfg.name = name;
    return cli_connect (&cfg, cmd, client_p);
}

int
cli_reap_worker (const char *cmd, int *pids, size_t count)
{
    int status = 0;
    int pid = cli_child_ended (pids, count, &status);
    if (pid) {
        char text [64];
        cli_describe_status (status, text, sizeof text);
        cli_error ("%s: worker process %d %s", cmd, pid, text);
    }
    return pid;
}

int
cli_wait_workers (const char *cmd, drover_client_t *client, const char *queue,
                  int *pids, size_t count, int timeout_ms)
{
    int64_t deadline = cli_now_ms () + timeout_ms;
    uint32_t joined = 0;
    while (cli_now_ms () < deadline) {
        if (cli_reap_worker (cmd, pids, count))
            return -1;
        if (cli_interrupted ()) {
            cli_error ("%s: interrupted", cmd);
            return -1;
        }
        drover_stats_t *stats = NULL;
        if (drover_stats (client, &stats, 1000) == DROVER_OK) {
            joined = 0;
            for (size_t index = 0; index < stats->queue_count; index++)
                if (streq (stats->queues [index].name, queue))
                    joined = stats->queues [index].workers;
            drover_stats_destroy (&stats);
            if (joined >= count)
                return 0;
        }
        usleep (20 * 1000);
    }
    cli_error ("%s: only %u of %zu workers joined the broker within %d s",
               cmd, joined, count, timeout_ms / 1000);
    return -1;
}

//  The worker the signal handler stops; set before handlers are installed.
static drover_worker_t *s_worker = NULL;

static void
s_stop_worker (int signal_number)
{
    (void) signal_number;
    if (s_worker)
        drover_worker_stop (s_worker);
}

int
cli_worker_serve (drover_connect_t *cfg, const char *cmd, const char *queue,
                  drover_handler_fn *handler, int concurrency, int prefetch)
{
    int rc = cli_connect_resolve (cfg, cmd);
    if (rc)
        return rc;
    //  If the command that started us dies without stopping us (kill -9),
    //  do not linger.
    prctl (PR_SET_PDEATHSIG, SIGTERM);

    s_worker = drover_worker_new (cfg);
    if (!s_worker) {
        cli_error ("%s: cannot create a worker", cmd);
        return CLI_EXIT_FAILED;
    }
    drover_worker_handle (s_worker, queue, handler, NULL);
    drover_worker_set_concurrency (s_worker, concurrency);
    if (prefetch >= 0)
        drover_worker_set_prefetch (s_worker, prefetch);

    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_stop_worker;
    sigemptyset (&action.sa_mask);
    sigaction (SIGTERM, &action, NULL);
    sigaction (SIGINT, &action, NULL);
    //  A stop requested before the handler was in place is not lost.
    if (cli_interrupted ())
        drover_worker_stop (s_worker);

    rc = drover_worker_run (s_worker);
    if (rc)
        cli_error ("%s: %s (broker %s)", cmd, drover_strerror (rc), cfg->endpoint);
    drover_worker_t *worker = s_worker;
    s_worker = NULL;
    drover_worker_destroy (&worker);
    return cli_exit_code (rc);
}
