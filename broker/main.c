/*  main.c - droverd: parse options, start the broker actor, wait for a signal.  */
#include "broker.h"
#include "util.h"

#include <getopt.h>
#include <limits.h>
#include <stdlib.h>

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: droverd [options]\n"
        "  --producers EP      client endpoint (default tcp://*:5555)\n"
        "  --workers EP        worker endpoint (default tcp://*:5556)\n"
        "  --state EP          shared-state update (PUB) endpoint (default: the --producers\n"
        "                      host with its port + 2, i.e. tcp://*:5557)\n"
        "  --cert FILE         server secret certificate (default: DATA_DIR/server.cert,\n"
        "                      created on first start)\n"
        "  --allow DIR         allow-list directory of client public certificates\n"
        "  --data-dir DIR      data directory (default ./drover-data)\n"
        "  --insecure          no CURVE, no authentication (logs a warning)\n"
        "  --durability MODE   fsync (default: journal in DATA_DIR, acknowledged once on\n"
        "                      disk) or none (in memory, lost on stop)\n"
        "  --heartbeat MS      heartbeat interval (default 1000); peers die after 3 missed\n"
        "  --max-payload BYTES largest payload accepted (default 8388608)\n"
        "  --max-value BYTES   largest shared-state value (default 1048576)\n"
        "  --max-batch N       most jobs in one message (default 1000)\n"
        "  --job-timeout S     default per-attempt timeout (default 300)\n"
        "  --attempts N        default maximum attempts (default 3)\n"
        "  --backoff MS        default retry backoff base (default 1000)\n"
        "  --result-ttl S      default result retention (default 3600)\n"
        "  --dead-ttl S        how long failed jobs stay in the dead letters (default 604800)\n"
        "  --log-level L       debug|info|warn|error (default info)\n"
        "  --log-format F      text|json (default text)\n"
        "  --help              this text\n");
}

//  Parses an unsigned number in [min, max]; exits 2 with a message otherwise.
static uint32_t
s_number (const char *option, const char *text, uint64_t min, uint64_t max)
{
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull (text, &end, 10);
    if (errno || !end || *end || end == text || *text == '-' || value < min || value > max) {
        fprintf (stderr, "droverd: %s needs a whole number from %llu to %llu, not '%s'\n",
                 option, (unsigned long long) min, (unsigned long long) max, text);
        exit (2);
    }
    return (uint32_t) value;
}

int
main (int argc, char *argv [])
{
    broker_config_t config;
    broker_config_defaults (&config);
    //  Environment first (DROVER_LOG_LEVEL, DROVER_LOG_FORMAT), flags override
    drv_log_level_t level = DRV_LOG_INFO;
    drv_log_parse_level (getenv ("DROVER_LOG_LEVEL"), &level);
    bool json = getenv ("DROVER_LOG_FORMAT") && strcmp (getenv ("DROVER_LOG_FORMAT"), "json") == 0;

    enum { O_PRODUCERS = 256, O_WORKERS, O_CERT, O_ALLOW, O_DATA, O_INSECURE, O_HEARTBEAT,
           O_MAXPAYLOAD, O_MAXBATCH, O_TIMEOUT, O_ATTEMPTS, O_BACKOFF, O_TTL, O_LEVEL,
           O_FORMAT, O_DURABILITY, O_DEADTTL, O_STATE, O_MAXVALUE, O_HELP };
    static struct option options [] = {
        {"producers", required_argument, 0, O_PRODUCERS},
        {"workers", required_argument, 0, O_WORKERS},
        {"cert", required_argument, 0, O_CERT},
        {"allow", required_argument, 0, O_ALLOW},
        {"data-dir", required_argument, 0, O_DATA},
        {"insecure", no_argument, 0, O_INSECURE},
        {"heartbeat", required_argument, 0, O_HEARTBEAT},
        {"max-payload", required_argument, 0, O_MAXPAYLOAD},
        {"max-batch", required_argument, 0, O_MAXBATCH},
        {"job-timeout", required_argument, 0, O_TIMEOUT},
        {"attempts", required_argument, 0, O_ATTEMPTS},
        {"backoff", required_argument, 0, O_BACKOFF},
        {"result-ttl", required_argument, 0, O_TTL},
        {"log-level", required_argument, 0, O_LEVEL},
        {"log-format", required_argument, 0, O_FORMAT},
        {"durability", required_argument, 0, O_DURABILITY},
        {"dead-ttl", required_argument, 0, O_DEADTTL},
        {"state", required_argument, 0, O_STATE},
        {"max-value", required_argument, 0, O_MAXVALUE},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0}
    };
    opterr = 0;
    int opt;
    while ((opt = getopt_long (argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
            case O_PRODUCERS: config.producers = optarg; break;
            case O_WORKERS: config.workers = optarg; break;
            case O_STATE: config.state = optarg; break;
            case O_MAXVALUE: config.max_value = s_number ("--max-value", optarg, 1, 256u << 20); break;
            case O_CERT: config.cert = optarg; break;
            case O_ALLOW: config.allow = optarg; break;
            case O_DATA: config.data_dir = optarg; break;
            case O_INSECURE: config.insecure = true; break;
            case O_HEARTBEAT: config.heartbeat_ms = s_number ("--heartbeat", optarg, 10, 600000); break;
            case O_MAXPAYLOAD: config.max_payload = s_number ("--max-payload", optarg, 0, 256u << 20); break;
            case O_MAXBATCH: config.max_batch = s_number ("--max-batch", optarg, 1, 100000); break;
            case O_TIMEOUT: config.default_timeout_ms = s_number ("--job-timeout", optarg, 1, 86400) * 1000; break;
            case O_ATTEMPTS: config.default_attempts = s_number ("--attempts", optarg, 1, 1000); break;
            case O_BACKOFF: config.default_backoff_ms = s_number ("--backoff", optarg, 0, 3600000); break;
            case O_TTL: config.default_result_ttl_s = s_number ("--result-ttl", optarg, 1, 30 * 86400); break;
            case O_LEVEL:
                if (drv_log_parse_level (optarg, &level)) {
                    fprintf (stderr, "droverd: --log-level must be debug, info, warn or error\n");
                    return 2;
                }
                break;
            case O_FORMAT:
                if (strcmp (optarg, "json") && strcmp (optarg, "text")) {
                    fprintf (stderr, "droverd: --log-format must be text or json\n");
                    return 2;
                }
                json = strcmp (optarg, "json") == 0;
                break;
            case O_DEADTTL: config.dead_ttl_s = s_number ("--dead-ttl", optarg, 1, 365 * 86400); break;
            case O_DURABILITY:
                if (strcmp (optarg, "fsync") && strcmp (optarg, "none")) {
                    fprintf (stderr, "droverd: --durability must be fsync or none\n");
                    return 2;
                }
                config.in_memory = strcmp (optarg, "none") == 0;
                break;
            case O_HELP:
                s_usage (stdout);
                return 0;
            default:
                if (optopt)
                    fprintf (stderr, "droverd: bad or incomplete option near '%s'\n", argv [optind - 1]);
                else
                    fprintf (stderr, "droverd: unknown option '%s'\n", argv [optind - 1]);
                fprintf (stderr, "droverd: try 'droverd --help'\n");
                return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "droverd: unexpected argument '%s'\n", argv [optind]);
        return 2;
    }
    drv_log_setup (level, json);
    //  CZMQ's own signal handling sets zsys_interrupted on SIGINT/SIGTERM
    zsys_init ();
    zsys_set_logstream (NULL);
    zactor_t *broker = broker_start (&config);
    if (!broker)
        return 1;
    zpoller_t *poller = zpoller_new (broker, NULL);
    while (!zsys_interrupted) {
        zpoller_wait (poller, 500);
        if (zpoller_terminated (poller))
            break;
    }
    zpoller_destroy (&poller);
    zactor_destroy (&broker);
    return 0;
}
