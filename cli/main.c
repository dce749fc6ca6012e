/*  main.c - drover, the command-line client: dispatches to one function per
    command. To add a command, write cli_<name> in the file of its group,
    declare it in common.h and add a row to s_commands below.
*/
#include "common.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;           //  word after `drover`
    cli_command_fn *fn;         //  runs the command with argv [0] = name
    const char *summary;        //  one line for `drover --help`; NULL = hidden
} s_command_t;

static const s_command_t s_commands [] = {
    { "keygen",      cli_keygen,      "create a key pair for a producer, worker or admin" },
    { "submit",      cli_submit,      "submit a job (or one per input line); print its id or result" },
    { "map",         cli_map,         "run one job per input line; print the results in input order" },
    { "result",      cli_result,      "print the result of finished jobs (or wait for them)" },
    { "status",      cli_status,      "print the state of jobs" },
    { "cancel",      cli_cancel,      "cancel jobs that have not finished" },
    { "stats",       cli_stats,       "print per-queue counts and broker totals" },
    { "queues",      cli_queues,      "print each queue's depth, state, workers and rates" },
    { "workers",     cli_workers,     "list the connected workers: queues, credit, jobs in flight" },
    { "health",      cli_health,      "ask the broker's HTTP endpoint whether it is ready" },
    { "pause",       cli_pause,       "stop dispatching a queue's jobs (admin)" },
    { "resume",      cli_resume,      "dispatch a paused queue's jobs again (admin)" },
    { "dead",        cli_dead,        "list, retry or purge a queue's failed jobs (admin)" },
    { "state",       cli_state,       "get, set, delete, list, count or watch shared state" },
    { "lock",        cli_lock,        "run a command while holding a cluster-wide lock" },
    { "event",       cli_event,       "set, clear or wait for a cluster-wide event" },
    { "barrier",     cli_barrier,     "wait until N parties reach a cluster-wide barrier" },
    { "up",          cli_up,          "run a broker and local workers in one command" },
    { "demo",        cli_demo,        "count primes on local workers and compare with a serial run" },
    { "bench",       cli_bench,       "measure throughput and latency" },
    //  Hidden: the worker processes `drover demo` and `drover bench` start.
    { "demo-worker", cli_demo_worker, NULL },
    { "bench-worker", cli_bench_worker, NULL },
};
#define COMMANDS (sizeof s_commands / sizeof s_commands [0])

static void
s_print_usage (FILE *stream)
{
    fprintf (stream,
        "Usage: drover COMMAND [OPTIONS] [ARGS]\n"
        "\n"
        "Drover is a job queue: producers submit jobs to a broker, workers run them,\n"
        "results come back.\n"
        "\n"
        "Commands:\n");
    for (size_t index = 0; index < COMMANDS; index++)
        if (s_commands [index].summary)
            fprintf (stream, "  %-8s  %s\n", s_commands [index].name, s_commands [index].summary);
    fprintf (stream,
        "\n"
        "Run 'drover COMMAND --help' for the options of a command.\n"
        "Clients find the broker through --broker, --server-key and --cert, or\n"
        "DROVER_BROKER, DROVER_SERVER_KEY and DROVER_CERT.\n"
        "\n"
        "Exit codes: 0 success, 1 a job or operation failed, 2 bad usage,\n"
        "3 cannot reach or authenticate to the broker (or a key is unusable).\n");
}

static const s_command_t *
s_lookup (const char *name)
{
    for (size_t index = 0; index < COMMANDS; index++)
        if (strcmp (s_commands [index].name, name) == 0)
            return &s_commands [index];
    return NULL;
}

int
main (int argc, char **argv)
{
    if (argc < 2) {
        s_print_usage (stderr);
        return CLI_EXIT_USAGE;
    }
    const char *word = argv [1];
    if (strcmp (word, "--help") == 0 || strcmp (word, "-h") == 0) {
        s_print_usage (stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp (word, "--version") == 0 || strcmp (word, "-V") == 0) {
        printf ("drover %d.%d.%d\n",
                DROVER_VERSION_MAJOR, DROVER_VERSION_MINOR, DROVER_VERSION_PATCH);
        return CLI_EXIT_OK;
    }
    //  `drover help CMD` is `drover CMD --help`.
    if (strcmp (word, "help") == 0) {
        if (argc < 3) {
            s_print_usage (stdout);
            return CLI_EXIT_OK;
        }
        const s_command_t *command = s_lookup (argv [2]);
        if (!command) {
            cli_error ("unknown command '%s' (see 'drover --help')", argv [2]);
            return CLI_EXIT_USAGE;
        }
        char *help_argv [] = { (char *) command->name, "--help", NULL };
        return command->fn (2, help_argv);
    }
    if (word [0] == '-') {
        cli_error ("unknown option '%s' (see 'drover --help')", word);
        return CLI_EXIT_USAGE;
    }
    const s_command_t *command = s_lookup (word);
    if (!command) {
        cli_error ("unknown command '%s' (see 'drover --help')", word);
        return CLI_EXIT_USAGE;
    }
    cli_signals_init ();
    int rc = command->fn (argc - 1, argv + 1);
    //  A result that could not be written (full disk, closed pipe) is a
    //  failure even if the job succeeded.
    if (fflush (stdout) || ferror (stdout)) {
        cli_error ("cannot write to standard output");
        if (rc == CLI_EXIT_OK)
            rc = CLI_EXIT_FAILED;
    }
    return rc;
}
