/*  up.c - `drover up`: a broker and local workers in one command.

    The broker runs as an actor inside this process (the same actor droverd
    runs); the workers are a drover-worker supervisor started with exec, so
    nothing forks a process that already has ZeroMQ threads.
*/
#include "common.h"

#ifdef DROVER_CLI_NO_BROKER

#include <stdio.h>

int
cli_up (int argc, char **argv)
{
    (void) argc;
    (void) argv;
    cli_error ("up: this drover was built without the broker library");
    return CLI_EXIT_FAILED;
}

#else

#include "broker.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WORKER_PROGRAM "drover-worker"

enum {
    OPT_PLUGIN = 0x3000,
    OPT_PRODUCERS,
    OPT_WORKERS,
    OPT_DATA_DIR,
    OPT_KEYS
};

static const char *s_usage =
    "Usage: drover up --queue QUEUE (--exec CMD | --plugin LIB:SYM) [options]\n"
    "\n"
    "Runs a broker and local workers in one command, for a laptop or a single\n"
    "host. Creates keys in --keys (once; later runs reuse them), starts the\n"
    "broker in this process, starts " WORKER_PROGRAM " with N processes serving\n"
    "QUEUE, and prints what to export in another shell to submit jobs. Runs\n"
    "until Ctrl-C or SIGTERM; then the workers finish the jobs they hold (Ctrl-C\n"
    "again to stop them at once) and the broker stops.\n"
    "\n"
    "Options:\n"
    "  -q, --queue QUEUE     queue the workers serve (required)\n"
    "  -x, --exec CMD        handler: run CMD per job, payload on its stdin, result\n"
    "                        from its stdout; non-zero exit fails the job\n"
    "      --plugin LIB:SYM  handler: function SYM of shared library LIB\n"
    "  -n, --processes N     worker processes (default: number of CPUs)\n"
    "      --producers EP    endpoint for clients (default tcp://*:5555)\n"
    "      --workers EP      endpoint for workers (default tcp://*:5556)\n"
    "      --data-dir DIR    broker journal (default ./drover-data)\n"
    "      --keys DIR        key directory (default ./drover-up-keys)\n"
    "  -h, --help            show this help\n";

//  The worker runtime: next to us (installed), then in the build tree
//  (cli/../workers/), then on PATH. A new string, or NULL.
static char *
s_find_worker (void)
{
    return cli_find_program (WORKER_PROGRAM, "workers");
}

//  How a user runs us: "drover" when that is what PATH finds, else our path.
static char *
s_self_command (void)
{
    char *self = cli_self_exe ();
    char *on_path = cli_which ("drover");
    char *command = NULL;
    if (self && on_path && streq (self, on_path))
        command = strdup ("drover");
    else
        command = self? strdup (self): strdup ("drover");
    free (self);
    free (on_path);
    return command;
}

//  The endpoint to connect to for a bound one: a wildcard address becomes
//  the loopback address. A new string.
static char *
s_connect_endpoint (const char *bound)
{
    static const struct { const char *wildcard, *local; } map [] = {
        { "tcp://*:",       "tcp://127.0.0.1:" },
        { "tcp://0.0.0.0:", "tcp://127.0.0.1:" },
        { "tcp://[::]:",    "tcp://[::1]:" },
    };
    for (size_t index = 0; index < sizeof map / sizeof map [0]; index++) {
        size_t length = strlen (map [index].wildcard);
        if (strncmp (bound, map [index].wildcard, length) == 0)
            return zsys_sprintf ("%s%s", map [index].local, bound + length);
    }
    return strdup (bound);
}

int
cli_up (int argc, char **argv)
{
    static const struct option options [] = {
        { "queue",     required_argument, NULL, 'q' },
        { "exec",      required_argument, NULL, 'x' },
        { "plugin",    required_argument, NULL, OPT_PLUGIN },
        { "processes", required_argument, NULL, 'n' },
        { "producers", required_argument, NULL, OPT_PRODUCERS },
        { "workers",   required_argument, NULL, OPT_WORKERS },
        { "data-dir",  required_argument, NULL, OPT_DATA_DIR },
        { "keys",      required_argument, NULL, OPT_KEYS },
        { "help",      no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *cmd = argv [0];
    const char *queue = NULL, *exec_cmd = NULL, *plugin = NULL;
    const char *producers = "tcp://*:5555", *workers = "tcp://*:5556";
    const char *data_dir = "./drover-data", *keys_dir = "./drover-up-keys";
    long processes = sysconf (_SC_NPROCESSORS_ONLN);
    if (processes < 1)
        processes = 1;
    int opt;
    while ((opt = cli_getopt (argc, argv, ":q:x:n:h", options)) != -1) {
        switch (opt) {
            case 'q': queue = optarg; break;
            case 'x': exec_cmd = optarg; break;
            case OPT_PLUGIN: plugin = optarg; break;
            case OPT_PRODUCERS: producers = optarg; break;
            case OPT_WORKERS: workers = optarg; break;
            case OPT_DATA_DIR: data_dir = optarg; break;
            case OPT_KEYS: keys_dir = optarg; break;
            case 'n':
                if (cli_parse_long (optarg, 1, 4096, &processes))
                    return cli_usage (cmd, "--processes must be 1..4096, not '%s'", optarg);
                break;
            case 'h':
                fputs (s_usage, stdout);
                return CLI_EXIT_OK;
            default:
                return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage (cmd, "unexpected argument '%s'", argv [optind]);
    if (!queue || !*queue)
        return cli_usage (cmd, "missing --queue QUEUE");
    if (!cli_valid_queue (queue))
        return cli_usage (cmd, "bad queue name '%s': use " CLI_QUEUE_RULE, queue);
    if (!exec_cmd == !plugin)
        return cli_usage (cmd, "give one handler: --exec CMD or --plugin LIB:SYM");
    if (plugin && !strchr (plugin, ':'))
        return cli_usage (cmd, "--plugin wants LIB:SYMBOL, not '%s'", plugin);

    int exit_code = CLI_EXIT_FAILED;
    zactor_t *broker = NULL;
    char *worker_path = NULL, *bound_producers = NULL, *bound_workers = NULL;
    char *client_endpoint = NULL, *worker_endpoint = NULL, *self_command = NULL;
    int worker_pid = 0;
    cli_keyring_t ring;
    bool reused = false;
    if (cli_keyring_open (&ring, keys_dir, &reused))
        goto done;
    worker_path = s_find_worker ();
    if (!worker_path) {
        cli_error ("up: cannot find %s (looked next to drover, in ../workers, and on PATH)",
                   WORKER_PROGRAM);
        goto done;
    }

    broker_config_t config;
    broker_config_defaults (&config);
    config.producers = producers;
    config.workers = workers;
    config.cert = ring.server_secret;
    config.allow = ring.allow;
    config.data_dir = data_dir;
    broker = broker_start (&config);
    if (!broker) {
        cli_error ("up: the broker did not start (see the message above)");
        goto done;
    }
    if (broker_endpoints (broker, &bound_producers, &bound_workers)) {
        //  Older actor or a hiccup: the configured endpoints still work
        //  unless they asked for an ephemeral port.
        bound_producers = strdup (producers);
        bound_workers = strdup (workers);
    }
    client_endpoint = s_connect_endpoint (bound_producers);
    worker_endpoint = s_connect_endpoint (bound_workers);

    char processes_text [16];
    snprintf (processes_text, sizeof processes_text, "%ld", processes);
    char *worker_argv [CLI_WORKER_ARGV_MAX + 7];
    int worker_argc = cli_worker_argv (worker_argv, worker_path, NULL, worker_endpoint, &ring);
    worker_argv [worker_argc++] = "--queue";
    worker_argv [worker_argc++] = (char *) queue;
    worker_argv [worker_argc++] = exec_cmd? "--exec": "--plugin";
    worker_argv [worker_argc++] = (char *) (exec_cmd? exec_cmd: plugin);
    worker_argv [worker_argc++] = "--processes";
    worker_argv [worker_argc++] = processes_text;
    worker_argv [worker_argc] = NULL;
    if (cli_spawn_many (worker_argv, &worker_pid, 1))
        goto done;

    self_command = s_self_command ();
    printf ("drover up: broker on %s (clients) and %s (workers); "
            "%ld worker processes on queue '%s'\n",
            bound_producers, bound_workers, processes, queue);
    printf ("keys in %s%s; journal in %s\n", ring.dir,
            reused? " (reused)": " (new)", data_dir);
    printf ("\nTo submit jobs from another shell:\n\n");
    printf ("  export DROVER_BROKER=%s\n", client_endpoint);
    printf ("  export DROVER_SERVER_KEY=%s\n", ring.server);
    printf ("  export DROVER_CERT=%s\n", ring.producer_secret);
    printf ("  echo hello | %s submit -q %s --wait\n", self_command, queue);
    printf ("\n(an admin key is in %s; Ctrl-C here stops everything)\n", ring.admin_secret);
    fflush (stdout);

    while (!cli_interrupted ()) {
        int status;
        if (cli_child_ended (&worker_pid, 1, &status)) {
            char text [64];
            cli_describe_status (status, text, sizeof text);
            cli_error ("up: %s %s; stopping the broker", WORKER_PROGRAM, text);
            goto done;
        }
        usleep (100 * 1000);
    }
    printf ("\ndrover up: stopping; workers finish the jobs they hold "
            "(Ctrl-C again to stop them at once)\n");
    fflush (stdout);
    exit_code = CLI_EXIT_OK;

done:
    //  Workers first, while the broker still takes their last results.
    if (worker_pid > 0)
        cli_stop_children (&worker_pid, 1, -1);
    zactor_destroy (&broker);
    free (worker_path);
    zstr_free (&bound_producers);
    zstr_free (&bound_workers);
    zstr_free (&client_endpoint);
    zstr_free (&worker_endpoint);
    free (self_command);
    cli_keyring_close (&ring);
    return exit_code;
}

#endif
