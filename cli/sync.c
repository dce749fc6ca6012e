/*  sync.c - `drover lock`, `drover event` and `drover barrier`: the
    broker's cluster-wide sync primitives from the shell.

    `lock` is flock(1) across hosts: it takes the named lock, runs CMD in a
    child while holding it (the SDK's heartbeats are the lease), and gives
    it back when CMD ends; if drover dies the broker frees it after three
    missed heartbeats. SIGINT and SIGTERM while waiting end drover at once
    (exit 128 + signal); while CMD runs they are passed on to CMD.
*/
#include "common.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *s_lock_usage =
    "Usage: drover lock NAME [--timeout S] [OPTIONS] -- CMD [ARGS...]\n"
    "\n"
    "Runs CMD while holding the cluster-wide lock NAME (named like queues),\n"
    "like flock(1) across hosts: only one `drover lock NAME` at a time, on any\n"
    "host, runs its command. The lock is released when CMD ends, and by the\n"
    "broker within three heartbeats if drover dies. CMD's environment gets\n"
    "DROVER_LOCK_FENCE, a number that grows with every grant (a fencing token).\n"
    "\n"
    "Options:\n"
    "  -t, --timeout S       give up if the lock is not had within S seconds\n"
    "                        (0: try once; default: wait as long as it takes)\n"
    CLI_CONNECT_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Exit: CMD's status (128 + signal if it was killed), 1 if the lock could\n"
    "not be had in time, 2 bad usage, 3 cannot reach the broker or our key may\n"
    "not do this, 127 if CMD cannot be started.\n";

static const char *s_event_usage =
    "Usage: drover event set NAME\n"
    "       drover event clear NAME\n"
    "       drover event wait NAME [--timeout S]\n"
    "\n"
    "Cluster-wide events (named like queues): set wakes every waiter and\n"
    "stays set until cleared; wait returns at once if the event is set.\n"
    "\n"
    "Options:\n"
    "  -t, --timeout S       wait: give up after S seconds (0: just check;\n"
    "                        default: wait as long as it takes)\n"
    CLI_CONNECT_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Exit: 0 done (wait: the event is set), 1 timed out or refused, 2 bad\n"
    "usage, 3 cannot reach the broker or our key may not do this.\n";

static const char *s_barrier_usage =
    "Usage: drover barrier NAME --parties N [--timeout S] [OPTIONS]\n"
    "\n"
    "Waits at the cluster-wide barrier NAME (named like queues) until N\n"
    "parties wait on it, then all go on together.\n"
    "\n"
    "Options:\n"
    "  -n, --parties N       how many parties the barrier waits for (>= 1)\n"
    "  -t, --timeout S       give up after S seconds (default: wait as long as\n"
    "                        it takes)\n"
    CLI_CONNECT_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Exit: 0 released, 1 timed out (or N differs from the other parties'),\n"
    "2 bad usage, 3 cannot reach the broker or our key may not do this.\n";

typedef struct {
    drover_connect_t conn;      //  connection settings (borrowed from argv)
    int timeout_ms;             //  longest wait, -1 = forever
    long parties;               //  barrier: --parties, 0 if not given
    char **words;               //  arguments after the options
    int word_count;             //  how many
} s_args_t;

//  Parses the options. Returns -1 to go on, else the exit code.
static int
s_parse (int argc, char **argv, const char *usage, bool parties, s_args_t *args)
{
    static const struct option options [] = {
        { "timeout", required_argument, NULL, 't' },
        { "help",    no_argument,       NULL, 'h' },
        CLI_CONNECT_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    static const struct option parties_options [] = {
        { "timeout", required_argument, NULL, 't' },
        { "parties", required_argument, NULL, 'n' },
        { "help",    no_argument,       NULL, 'h' },
        CLI_CONNECT_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    memset (args, 0, sizeof *args);
    args->timeout_ms = -1;
    const char *cmd = argv [0];
    optind = 0;                 //  full reset: a command may parse twice
    int64_t ms;
    int opt;
    while ((opt = cli_getopt_connect (argc, argv, parties? ":t:n:h": ":t:h",
                                      parties? parties_options: options, &args->conn)) != -1) {
        switch (opt) {
            case 'h':
                fputs (usage, stdout);
                return CLI_EXIT_OK;
            case 't':
                if (cli_parse_seconds (optarg, &ms) || ms < 0 || ms > INT_MAX - 10000)
                    return cli_usage (cmd, "--timeout wants seconds >= 0, not '%s'", optarg);
                args->timeout_ms = (int) ms;
                break;
            case 'n':
                if (cli_parse_long (optarg, 1, UINT32_MAX > LONG_MAX? LONG_MAX: (long) UINT32_MAX,
                                    &args->parties))
                    return cli_usage (cmd, "--parties wants a number >= 1, not '%s'", optarg);
                break;
            default:
                return CLI_EXIT_USAGE;
        }
    }
    args->words = argv + optind;
    args->word_count = argc - optind;
    return -1;
}

//  Checks NAME: exactly one word, a valid name. Returns 0 or CLI_EXIT_USAGE.
static int
s_check_name (const char *cmd, s_args_t *args, const char *shape)
{
    if (args->word_count < 1)
        return cli_usage (cmd, "missing NAME (want %s)", shape);
    if (args->word_count > 1)
        return cli_usage (cmd, "unexpected argument '%s' (want %s)", args->words [1], shape);
    if (!cli_valid_queue (args->words [0]))
        return cli_usage (cmd, "bad name '%s': use " CLI_QUEUE_RULE, args->words [0]);
    return 0;
}

//  While drover waits on the broker, SIGINT and SIGTERM end it at once:
//  the broker drops whatever it was waiting for when the session goes.
static void
s_die (int signal_number)
{
    _exit (128 + signal_number);
}

static void
s_die_on_signals (struct sigaction *saved)
{
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_die;
    sigemptyset (&action.sa_mask);
    sigaction (SIGINT, &action, saved? &saved [0]: NULL);
    sigaction (SIGTERM, &action, saved? &saved [1]: NULL);
}

//  Reports a failed sync call; returns the exit code.
static int
s_failed (const char *cmd, const char *name, int rc, int timeout_ms, const char *waiting_for)
{
    if (rc == DROVER_ETIMEDOUT && timeout_ms >= 0) {
        cli_error ("%s: %s '%s' within %.3g s", cmd, waiting_for, name, timeout_ms / 1000.0);
        return CLI_EXIT_FAILED;
    }
    if (rc == DROVER_EDENIED) {
        cli_error ("%s: refused: our key's role may not use '%s'", cmd, name);
        return cli_exit_code (rc);
    }
    char what [200];
    snprintf (what, sizeof what, "%s %s", cmd, name);
    return cli_request_failed (what, rc, timeout_ms);
}

//  lock --------------------------------------------------------------------

//  Runs argv in a child and waits for it, passing SIGINT and SIGTERM on.
//  Returns its exit status (128 + signal if killed), or 127.
static int
s_run (char **argv)
{
    int pid = cli_spawn (argv);
    if (pid < 0)
        return 127;
    int forwarded = 0;
    for (;;) {
        int status;
        pid_t rc = waitpid ((pid_t) pid, &status, 0);
        if (rc == (pid_t) pid) {
            if (WIFEXITED (status))
                return WEXITSTATUS (status);
            if (WIFSIGNALED (status))
                return 128 + WTERMSIG (status);
            continue;
        }
        if (rc < 0 && errno != EINTR)
            return 127;
        int signal_number = cli_signal ();
        if (signal_number && signal_number != forwarded) {
            kill ((pid_t) pid, signal_number);
            forwarded = signal_number;
        }
    }
}

int
cli_lock (int argc, char **argv)
{
    const char *cmd = "lock";
    //  Everything after "--" is CMD: the options end there
    int split = 1;
    while (split < argc && strcmp (argv [split], "--"))
        split++;
    char *saved_end = argv [split < argc? split: argc];
    if (split < argc)
        argv [split] = NULL;
    s_args_t args;
    int exit_code = s_parse (split, argv, s_lock_usage, false, &args);
    if (split < argc)
        argv [split] = saved_end;
    if (exit_code >= 0)
        return exit_code;
    int rc = s_check_name (cmd, &args, "NAME -- CMD [ARGS...]");
    if (rc)
        return rc;
    if (split >= argc || split + 1 >= argc)
        return cli_usage (cmd, "missing '-- CMD' (the command to run while holding the lock)");
    const char *name = args.words [0];
    char **child_argv = argv + split + 1;

    drover_client_t *client = NULL;
    exit_code = cli_connect (&args.conn, cmd, &client);
    if (exit_code)
        return exit_code;
    struct sigaction saved [2];
    s_die_on_signals (saved);
    uint64_t fence = 0;
    rc = drover_lock (client, name, args.timeout_ms, &fence);
    //  From here on signals go to CMD (through the handlers main() set)
    sigaction (SIGINT, &saved [0], NULL);
    sigaction (SIGTERM, &saved [1], NULL);
    if (rc) {
        exit_code = s_failed (cmd, name, rc, args.timeout_ms, "could not get the lock");
        drover_client_destroy (&client);
        return exit_code;
    }
    char text [32];
    snprintf (text, sizeof text, "%" PRIu64, fence);
    setenv ("DROVER_LOCK_FENCE", text, 1);
    exit_code = s_run (child_argv);
    rc = drover_unlock (client, name);
    if (rc)
        //  The broker frees it anyway when our session ends, just below
        cli_error ("%s: could not release '%s' (%s); the broker frees it when we disconnect",
                   cmd, name, drover_strerror (rc));
    drover_client_destroy (&client);
    return exit_code;
}

//  event -------------------------------------------------------------------

int
cli_event (int argc, char **argv)
{
    if (argc < 2)
        return cli_usage ("event", "missing subcommand (set, clear or wait)");
    if (strcmp (argv [1], "--help") == 0 || strcmp (argv [1], "-h") == 0) {
        fputs (s_event_usage, stdout);
        return CLI_EXIT_OK;
    }
    const char *sub = argv [1];
    if (strcmp (sub, "set") && strcmp (sub, "clear") && strcmp (sub, "wait"))
        return cli_usage ("event", "unknown subcommand '%s' (set, clear or wait)", sub);
    char cmd [32];
    snprintf (cmd, sizeof cmd, "event %s", sub);
    char **sub_argv = calloc ((size_t) argc, sizeof (char *));
    if (!sub_argv)
        return CLI_EXIT_FAILED;
    sub_argv [0] = cmd;
    for (int index = 2; index < argc; index++)
        sub_argv [index - 1] = argv [index];
    s_args_t args;
    int exit_code = s_parse (argc - 1, sub_argv, s_event_usage, false, &args);
    if (exit_code >= 0)
        goto done;
    bool waiting = strcmp (sub, "wait") == 0;
    exit_code = s_check_name (cmd, &args, "NAME");
    if (exit_code)
        goto done;
    if (!waiting && args.timeout_ms >= 0) {
        exit_code = cli_usage (cmd, "--timeout is for 'event wait' only");
        goto done;
    }
    const char *name = args.words [0];
    drover_client_t *client = NULL;
    exit_code = cli_connect (&args.conn, cmd, &client);
    if (exit_code)
        goto done;
    s_die_on_signals (NULL);
    int rc = waiting? drover_event_wait (client, name, args.timeout_ms):
             strcmp (sub, "set") == 0? drover_event_set (client, name):
                                       drover_event_clear (client, name);
    exit_code = rc? s_failed (cmd, name, rc, args.timeout_ms, "gave up waiting for event"): CLI_EXIT_OK;
    drover_client_destroy (&client);
done:
    free (sub_argv);
    return exit_code;
}

//  barrier -----------------------------------------------------------------

int
cli_barrier (int argc, char **argv)
{
    const char *cmd = "barrier";
    s_args_t args;
    int exit_code = s_parse (argc, argv, s_barrier_usage, true, &args);
    if (exit_code >= 0)
        return exit_code;
    exit_code = s_check_name (cmd, &args, "NAME --parties N");
    if (exit_code)
        return exit_code;
    if (args.parties < 1)
        return cli_usage (cmd, "missing --parties N");
    const char *name = args.words [0];
    drover_client_t *client = NULL;
    exit_code = cli_connect (&args.conn, cmd, &client);
    if (exit_code)
        return exit_code;
    s_die_on_signals (NULL);
    int rc = drover_barrier_wait (client, name, (unsigned) args.parties, args.timeout_ms);
    if (rc == DROVER_ESTATE) {
        cli_error ("%s: '%s' is waiting for a different number of parties than %ld",
                   cmd, name, args.parties);
        exit_code = CLI_EXIT_FAILED;
    }
    else
        exit_code = rc? s_failed (cmd, name, rc, args.timeout_ms, "gave up waiting at barrier"): CLI_EXIT_OK;
    drover_client_destroy (&client);
    return exit_code;
}
