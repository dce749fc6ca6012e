/*  options.c - drover-worker's command line (internal).
*/
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum {
    S_OPT_BROKER = 256, S_OPT_SERVER_KEY, S_OPT_CERT, S_OPT_INSECURE, S_OPT_EXEC,
    S_OPT_PLUGIN, S_OPT_PROCESSES, S_OPT_CONCURRENCY, S_OPT_PREFETCH, S_OPT_NAME,
    S_OPT_LOG_LEVEL, S_OPT_LOG_JSON, S_OPT_VERSION
};

static const struct option s_options [] = {
    {"broker", required_argument, NULL, S_OPT_BROKER},
    {"server-key", required_argument, NULL, S_OPT_SERVER_KEY},
    {"cert", required_argument, NULL, S_OPT_CERT},
    {"insecure", no_argument, NULL, S_OPT_INSECURE},
    {"queue", required_argument, NULL, 'q'},
    {"exec", required_argument, NULL, S_OPT_EXEC},
    {"plugin", required_argument, NULL, S_OPT_PLUGIN},
    {"processes", required_argument, NULL, S_OPT_PROCESSES},
    {"concurrency", required_argument, NULL, S_OPT_CONCURRENCY},
    {"prefetch", required_argument, NULL, S_OPT_PREFETCH},
    {"name", required_argument, NULL, S_OPT_NAME},
    {"log-level", required_argument, NULL, S_OPT_LOG_LEVEL},
    {"log-json", no_argument, NULL, S_OPT_LOG_JSON},
    {"version", no_argument, NULL, S_OPT_VERSION},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}
};

void
options_usage (FILE *out)
{
    fputs (
"usage: drover-worker --broker EP --server-key PUBLIC_CERT --cert SECRET_CERT\n"
"                     --queue NAME (--exec CMD | --plugin LIB:SYMBOL) [options]\n"
"\n"
"Serves queues of a Drover broker with a pool of worker processes.\n"
"\n"
"  --broker EP           broker worker endpoint, e.g. tcp://host:5556 (DROVER_BROKER)\n"
"  --server-key PATH     broker's public certificate (DROVER_SERVER_KEY)\n"
"  --cert PATH           our secret certificate (DROVER_CERT)\n"
"  --insecure            plaintext, for a broker run with --insecure (DROVER_INSECURE=1)\n"
"  -q, --queue NAME      queue to serve; repeat for several (same handler)\n"
"  --exec CMD            run `/bin/sh -c CMD` per job: payload on stdin, result\n"
"                        from stdout; non-zero exit fails the job with stderr;\n"
"                        DROVER_JOB_ID, DROVER_QUEUE, DROVER_ATTEMPT and\n"
"                        DROVER_SUBMITTER (the submitting key) are set\n"
"  --plugin LIB:SYMBOL   dlopen LIB and call SYMBOL (a drover_handler_fn) per job\n"
"  --processes N         worker processes (default: one per CPU); 0 = serve in\n"
"                        this process, without a supervisor\n"
"  --concurrency N       handler threads per process (default 1)\n"
"  --prefetch N          jobs each process holds beyond those running (default\n"
"                        2 x concurrency; 0 for long jobs: take one when free)\n"
"  --name LABEL          worker label in broker logs (default host:pid)\n"
"  --log-level LEVEL     debug, info, warn or error (default info)\n"
"  --log-json            log one JSON object per line\n"
"  --version, -h --help\n"
"\n"
"SIGTERM or SIGINT drains: in-flight jobs finish, no new ones are taken;\n"
"a second signal kills the workers. Exit status: 0 drained, 1 error,\n"
"2 bad usage, 3 cannot reach or authenticate to the broker.\n", out);
}

//  Strict decimal in [min, max]; "12x", "" and overflow are refused.
static int
s_parse_int (const char *text, int min, int max, int *value)
{
    if (!text || !*text)
        return -1;
    char *end;
    errno = 0;
    long parsed = strtol (text, &end, 10);
    if (errno || *end || parsed < min || parsed > max)
        return -1;
    *value = (int) parsed;
    return 0;
}

static int
s_number (const char *option, const char *text, int min, int *value, char *why, size_t why_size)
{
    if (s_parse_int (text, min, 1000000, value) == 0)
        return 0;
    snprintf (why, why_size, "--%s wants a whole number >= %d, got '%s'", option, min, text);
    return -1;
}

int
options_parse (options_t *self, int argc, char *argv [], char *why, size_t why_size)
{
    memset (self, 0, sizeof *self);
    self->processes = -1;
    self->prefetch = -1;
    self->log_level = DRV_LOG_INFO;
    drv_log_parse_level (getenv ("DROVER_LOG_LEVEL"), &self->log_level);
    self->log_json = getenv ("DROVER_LOG_FORMAT") && strcmp (getenv ("DROVER_LOG_FORMAT"), "json") == 0;
    why [0] = 0;
    self->queues = calloc ((size_t) argc + 1, sizeof (char *));
    if (!self->queues) {
        snprintf (why, why_size, "out of memory");
        return -1;
    }
    //  We print our own one-line errors; getopt's are two-line and vague.
    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long (argc, argv, ":q:h", s_options, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
            case S_OPT_BROKER:      self->connect.endpoint = optarg; break;
            case S_OPT_SERVER_KEY:  self->connect.server_key = optarg; break;
            case S_OPT_CERT:        self->connect.cert = optarg; break;
            case S_OPT_INSECURE:    self->connect.insecure = true; break;
            case 'q':               self->queues [self->queue_count++] = optarg; break;
            case S_OPT_NAME:        self->connect.name = optarg; break;
            case S_OPT_LOG_JSON:    self->log_json = true; break;
            case S_OPT_VERSION:     self->version = true; break;
            case 'h':               self->help = true; break;
            case S_OPT_EXEC:
                if (self->exec_cmd || !*optarg) {
                    snprintf (why, why_size, self->exec_cmd ? "--exec given twice"
                                                            : "--exec needs a command");
                    rc = -1;
                }
                self->exec_cmd = optarg;
                break;
            case S_OPT_PLUGIN:
                if (self->plugin_spec) {
                    snprintf (why, why_size, "--plugin given twice");
                    rc = -1;
                }
                self->plugin_spec = optarg;
                break;
            case S_OPT_PROCESSES:
                rc = s_number ("processes", optarg, 0, &self->processes, why, why_size);
                break;
            case S_OPT_CONCURRENCY:
                rc = s_number ("concurrency", optarg, 1, &self->concurrency, why, why_size);
                break;
            case S_OPT_PREFETCH:
                rc = s_number ("prefetch", optarg, 0, &self->prefetch, why, why_size);
                break;
            case S_OPT_LOG_LEVEL:
                if (drv_log_parse_level (optarg, &self->log_level)) {
                    snprintf (why, why_size, "--log-level wants debug, info, warn or error, got '%s'",
                              optarg);
                    rc = -1;
                }
                break;
            case ':':
                snprintf (why, why_size, "%s needs a value", argv [optind - 1]);
                rc = -1;
                break;
            default:
                if (optopt)
                    snprintf (why, why_size, "unknown option '-%c'", optopt);
                else
                    snprintf (why, why_size, "unknown option '%s'", argv [optind - 1]);
                rc = -1;
                break;
        }
        if (rc)
            return -1;
    }
    if (self->help || self->version)
        return 0;
    if (optind < argc) {
        snprintf (why, why_size, "unexpected argument '%s'", argv [optind]);
        return -1;
    }
    drover_connect_from_env (&self->connect);

    if (!self->connect.endpoint || !*self->connect.endpoint) {
        snprintf (why, why_size, "no broker: give --broker EP or set DROVER_BROKER");
        return -1;
    }
    if (!self->connect.insecure && (!self->connect.server_key || !self->connect.cert)) {
        snprintf (why, why_size, "no %s: give --server-key and --cert (or DROVER_SERVER_KEY "
                  "and DROVER_CERT), or --insecure for a plaintext broker",
                  self->connect.server_key ? "certificate" : "server key");
        return -1;
    }
    if (self->queue_count == 0) {
        snprintf (why, why_size, "no queue: give --queue NAME");
        return -1;
    }
    for (size_t i = 0; i < self->queue_count; i++) {
        if (!drover_queue_name_valid (self->queues [i])) {
            snprintf (why, why_size, "bad queue name '%.140s': use 1 to 128 of A-Z a-z 0-9 . _ - :",
                      self->queues [i]);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp (self->queues [i], self->queues [j]) == 0) {
                snprintf (why, why_size, "queue '%s' given twice", self->queues [i]);
                return -1;
            }
    }
    if (!self->exec_cmd == !self->plugin_spec) {
        snprintf (why, why_size, self->exec_cmd ? "give --exec or --plugin, not both"
                                                : "no handler: give --exec CMD or --plugin LIB:SYMBOL");
        return -1;
    }
    return 0;
}

void
options_free (options_t *self)
{
    free (self->queues);
    self->queues = NULL;
    self->queue_count = 0;
}
