/*  main.c - droverd: read the settings, start the broker actor, wait for a signal.

    Every setting comes from a flag, a DROVER_* environment variable or a
    config file (--config FILE or DROVER_CONFIG), in that order of
    precedence (sdk/src/conf.c). SIGINT and SIGTERM stop the broker;
    SIGHUP makes it reread its allow-list.
*/
#define _GNU_SOURCE
#include "broker.h"
#include "conf.h"
#include "drover.h"
#include "util.h"

#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_durabilities [] = {"fsync", "none", NULL};
static const char *s_log_levels [] = {"debug", "info", "warn", "error", NULL};
static const char *s_log_formats [] = {"text", "json", NULL};

//  Set by the SIGHUP handler, cleared by the main loop.
static volatile sig_atomic_t s_hangup = 0;

static void
s_on_hangup (int signum)
{
    (void) signum;
    s_hangup = 1;
}

//  A TCP port: 0 to 65535, or '*' (any free port).
static bool
s_valid_port (const char *text)
{
    if (strcmp (text, "*") == 0)
        return true;
    if (!*text || strlen (text) > 5)
        return false;
    for (const char *c = text; *c; c++)
        if (!isdigit ((unsigned char) *c))
            return false;
    return atoi (text) <= 65535;
}

//  --metrics: "off", PORT, HOST:PORT or tcp://HOST:PORT, made into a
//  ZeroMQ tcp endpoint ("tcp://*:PORT" for a bare port).
static int
s_check_metrics (const char *text, char **out, char *why, size_t why_size)
{
    const char *wants = "wants PORT, HOST:PORT, tcp://HOST:PORT or off";
    if (strcmp (text, "off") == 0)
        return 0;
    if (s_valid_port (text)) {
        if (asprintf (out, "tcp://*:%s", text) < 0) {
            *out = NULL;
            snprintf (why, why_size, "(out of memory)");
            return -1;
        }
        return 0;
    }
    bool prefixed = strncmp (text, "tcp://", 6) == 0;
    const char *host = prefixed? text + 6: text;
    const char *colon = strrchr (host, ':');
    if (!colon || colon == host || !s_valid_port (colon + 1) || strchr (host, '/')) {
        snprintf (why, why_size, "%s", wants);
        return -1;
    }
    if (!prefixed && asprintf (out, "tcp://%s", text) < 0) {
        *out = NULL;
        snprintf (why, why_size, "(out of memory)");
        return -1;
    }
    return 0;
}

int
main (int argc, char *argv [])
{
    broker_config_t config;
    broker_config_defaults (&config);
    const char *config_file = NULL;
    const char *metrics = NULL;
    bool print_config = false, help = false, version = false;
    int durability = 0, log_level = 1, log_format = 0;
    uint32_t job_timeout_s = 300;

    //  Each setting once: name, type, target, default, range, help.
    //  Defaults are those of broker_config_defaults(), as text.
    const drv_conf_option_t options [] = {
        { .name = "config", .type = DRV_CONF_STRING, .target = &config_file, .arg = "FILE",
          .flags = DRV_CONF_NO_FILE,
          .help = "read settings from FILE (lines `name = value`); flags and\n"
                  "environment variables win over it" },
        { .name = "producers", .type = DRV_CONF_STRING, .target = &config.producers,
          .value = "tcp://*:5555", .arg = "EP", .help = "client endpoint" },
        { .name = "workers", .type = DRV_CONF_STRING, .target = &config.workers,
          .value = "tcp://*:5556", .arg = "EP", .help = "worker endpoint" },
        { .name = "state", .type = DRV_CONF_STRING, .target = &config.state, .arg = "EP",
          .help = "shared-state update (PUB) endpoint (default: the --producers\n"
                  "host with its port + 2, i.e. tcp://*:5557)" },
        { .name = "cert", .type = DRV_CONF_STRING, .target = &config.cert, .arg = "FILE",
          .env = "DROVER_SERVER_CERT",
          .help = "server secret certificate (default: DATA_DIR/server.cert,\n"
                  "created on first start)" },
        { .name = "allow", .type = DRV_CONF_STRING, .target = &config.allow, .arg = "DIR",
          .help = "allow-list directory of client public certificates\n"
                  "(default: DATA_DIR/allow); reread on SIGHUP" },
        { .name = "data-dir", .type = DRV_CONF_STRING, .target = &config.data_dir,
          .value = "./drover-data", .arg = "DIR", .help = "data directory" },
        { .name = "insecure", .type = DRV_CONF_BOOL, .target = &config.insecure,
          .help = "no CURVE, no authentication (logs a warning)" },
        { .name = "allow-open-key", .type = DRV_CONF_BOOL, .target = &config.open_key_ok,
          .help = "start even if the server secret certificate is readable\n"
                  "by other users" },
        { .name = "durability", .type = DRV_CONF_CHOICE, .target = &durability,
          .value = "fsync", .choices = s_durabilities, .arg = "MODE",
          .help = "fsync: journal in DATA_DIR, acknowledged once on disk;\n"
                  "none: in memory, lost on stop" },
        { .name = "heartbeat", .type = DRV_CONF_U32, .target = &config.heartbeat_ms,
          .value = "1000", .min = 10, .max = 600000, .arg = "MS",
          .help = "heartbeat interval; peers die after 3 missed" },
        { .name = "max-payload", .type = DRV_CONF_U32, .target = &config.max_payload,
          .value = "8388608", .min = 0, .max = 256u << 20, .arg = "BYTES",
          .help = "largest payload accepted" },
        { .name = "max-value", .type = DRV_CONF_U32, .target = &config.max_value,
          .value = "1048576", .min = 1, .max = 256u << 20, .arg = "BYTES",
          .help = "largest shared-state value" },
        { .name = "max-key", .type = DRV_CONF_U32, .target = &config.max_key,
          .value = "1024", .min = 1, .max = 65536, .arg = "BYTES",
          .help = "longest shared-state key" },
        { .name = "max-batch", .type = DRV_CONF_U32, .target = &config.max_batch,
          .value = "1000", .min = 1, .max = 100000, .arg = "N",
          .help = "most jobs in one message" },
        { .name = "max-queue-name", .type = DRV_CONF_U32, .target = &config.max_queue_name,
          .value = "128", .min = 1, .max = 128, .arg = "BYTES",
          .help = "longest queue name" },
        { .name = "max-queues", .type = DRV_CONF_U32, .target = &config.max_queues,
          .value = "10000", .min = 0, .max = UINT32_MAX, .arg = "N",
          .help = "queues that may exist at once (0: no limit)" },
        { .name = "max-inflight", .type = DRV_CONF_U32, .target = &config.max_inflight,
          .value = "1000000", .min = 0, .max = UINT32_MAX, .arg = "N",
          .help = "unfinished jobs per submitting key (0: no limit)" },
        { .name = "max-clients", .type = DRV_CONF_U32, .target = &config.max_clients,
          .value = "10000", .min = 0, .max = UINT32_MAX, .arg = "N",
          .help = "connected clients (0: no limit)" },
        { .name = "max-workers", .type = DRV_CONF_U32, .target = &config.max_workers,
          .value = "10000", .min = 0, .max = UINT32_MAX, .arg = "N",
          .help = "connected workers (0: no limit)" },
        { .name = "job-timeout", .type = DRV_CONF_U32, .target = &job_timeout_s,
          .value = "300", .min = 1, .max = 86400, .arg = "S",
          .help = "default per-attempt timeout" },
        { .name = "attempts", .type = DRV_CONF_U32, .target = &config.default_attempts,
          .value = "3", .min = 1, .max = 1000, .arg = "N",
          .help = "default maximum attempts" },
        { .name = "backoff", .type = DRV_CONF_U32, .target = &config.default_backoff_ms,
          .value = "1000", .min = 0, .max = 3600000, .arg = "MS",
          .help = "default retry backoff base" },
        { .name = "result-ttl", .type = DRV_CONF_U32, .target = &config.default_result_ttl_s,
          .value = "3600", .min = 1, .max = 30 * 86400, .arg = "S",
          .help = "default result retention" },
        { .name = "dead-ttl", .type = DRV_CONF_U32, .target = &config.dead_ttl_s,
          .value = "604800", .min = 1, .max = 365 * 86400, .arg = "S",
          .help = "how long failed jobs stay in the dead letters" },
        { .name = "metrics", .type = DRV_CONF_STRING, .target = &metrics,
          .value = "tcp://*:9090", .arg = "ADDR", .check = s_check_metrics,
          .help = "HTTP endpoint for /metrics, /healthz and /readyz: PORT,\n"
                  "HOST:PORT or tcp://HOST:PORT; off disables it" },
        { .name = "no-metrics", .type = DRV_CONF_ALIAS, .alias = "metrics", .value = "off",
          .help = "no HTTP endpoint (same as --metrics off)" },
        { .name = "log-level", .type = DRV_CONF_CHOICE, .target = &log_level,
          .value = "info", .choices = s_log_levels, .arg = "L",
          .help = "debug, info, warn or error" },
        { .name = "log-format", .type = DRV_CONF_CHOICE, .target = &log_format,
          .value = "text", .choices = s_log_formats, .arg = "F",
          .help = "text or json" },
        { .name = "print-config", .type = DRV_CONF_BOOL, .target = &print_config,
          .flags = DRV_CONF_FLAG_ONLY,
          .help = "print the settings in effect as a config file, and exit" },
        { .name = "version", .type = DRV_CONF_BOOL, .target = &version,
          .flags = DRV_CONF_FLAG_ONLY, .help = "print the version and exit" },
        { .name = "help", .letter = 'h', .type = DRV_CONF_BOOL, .target = &help,
          .flags = DRV_CONF_FLAG_ONLY, .help = "this text" },
    };
    drv_conf_t *conf = drv_conf_new ("droverd", options, sizeof options / sizeof options [0]);
    if (!conf) {
        fprintf (stderr, "droverd: out of memory\n");
        return 1;
    }
    char why [512];
    if (drv_conf_load (conf, argc, argv, why, sizeof why)) {
        fprintf (stderr, "droverd: %s\n", why);
        fprintf (stderr, "droverd: try 'droverd --help'\n");
        drv_conf_destroy (&conf);
        return 2;
    }
    if (help) {
        printf ("usage: droverd [options]\n\n"
                "Settings come from flags, then DROVER_* environment variables, then\n"
                "the config file, then the defaults.\n\n");
        drv_conf_usage (conf, stdout);
        printf ("\nSIGINT or SIGTERM stops the broker; SIGHUP rereads the allow-list.\n");
        drv_conf_destroy (&conf);
        return 0;
    }
    if (version) {
        printf ("droverd %d.%d.%d\n", DROVER_VERSION_MAJOR, DROVER_VERSION_MINOR,
                DROVER_VERSION_PATCH);
        drv_conf_destroy (&conf);
        return 0;
    }
    if (print_config) {
        drv_conf_print (conf, stdout);
        drv_conf_destroy (&conf);
        return fflush (stdout) == 0? 0: 1;
    }
    config.default_timeout_ms = job_timeout_s * 1000;
    config.in_memory = durability == 1;
    config.metrics = strcmp (metrics, "off") == 0? NULL: metrics;
    drv_log_setup ((drv_log_level_t) log_level, log_format == 1);

    //  Only this thread takes SIGHUP: the threads started below inherit a
    //  mask that blocks it, so the signal interrupts our poll at once.
    sigset_t hangup;
    sigemptyset (&hangup);
    sigaddset (&hangup, SIGHUP);
    pthread_sigmask (SIG_BLOCK, &hangup, NULL);
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_hangup;
    sigemptyset (&action.sa_mask);
    sigaction (SIGHUP, &action, NULL);

    //  CZMQ's own signal handling sets zsys_interrupted on SIGINT/SIGTERM
    zsys_init ();
    zsys_set_logstream (NULL);
    zactor_t *broker = broker_start (&config);
    pthread_sigmask (SIG_UNBLOCK, &hangup, NULL);
    if (!broker) {
        drv_conf_destroy (&conf);
        return 1;
    }
    zpoller_t *poller = zpoller_new (broker, NULL);
    while (!zsys_interrupted) {
        zpoller_wait (poller, 500);
        if (s_hangup) {
            //  A signal interrupts the poll, which then reads as terminated
            s_hangup = 0;
            drv_log (DRV_LOG_INFO, "broker", "SIGHUP: rereading the allow-list");
            broker_reload (broker);
            continue;
        }
        if (zpoller_terminated (poller))
            break;
    }
    zpoller_destroy (&poller);
    zactor_destroy (&broker);
    drv_conf_destroy (&conf);
    return 0;
}
