/*  options.c - drover-worker's settings (internal).

    One table declares every setting; sdk/src/conf.c reads it from the
    command line, the environment and the config file.
*/
#include "options.h"

#include <stdlib.h>
#include <string.h>

static const char *s_log_levels [] = {"debug", "info", "warn", "error", NULL};
static const char *s_log_formats [] = {"text", "json", NULL};

static int
s_check_command (const char *text, char **out, char *why, size_t why_size)
{
    (void) out;
    if (*text)
        return 0;
    snprintf (why, why_size, "needs a command");
    return -1;
}

//  Targets filled by the loader that are not options_t fields as they are.
typedef struct {
    drv_conf_list_t queues;     //  --queue, repeatable or comma-separated
    int log_level;              //  index into s_log_levels
    int log_format;             //  index into s_log_formats
    const char *config_file;    //  --config, read by the loader itself
    int connect_timeout;        //  --connect-timeout, seconds
} s_extra_t;

static s_extra_t s_extra;

void
options_usage (options_t *self, FILE *out)
{
    fputs (
"usage: drover-worker --broker EP --server-key PUBLIC_CERT --cert SECRET_CERT\n"
"                     --queue NAME (--exec CMD | --plugin LIB:SYMBOL) [options]\n"
"\n"
"Serves queues of a Drover broker with a pool of worker processes.\n"
"Settings come from flags, then DROVER_* environment variables, then the\n"
"config file (--config FILE or DROVER_CONFIG), then the defaults.\n"
"\n", out);
    if (self && self->conf)
        drv_conf_usage (self->conf, out);
    fputs (
"\n"
"--exec runs `/bin/sh -c CMD` per job: payload on stdin, result from stdout;\n"
"a non-zero exit fails the job with stderr. DROVER_JOB_ID, DROVER_QUEUE,\n"
"DROVER_ATTEMPT and DROVER_SUBMITTER (the submitting key) are set for it.\n"
"--plugin dlopens LIB and calls SYMBOL (a drover_handler_fn) per job.\n"
"\n"
"SIGTERM or SIGINT drains: in-flight jobs finish, no new ones are taken;\n"
"a second signal kills the workers. Exit status: 0 drained, 1 error,\n"
"2 bad usage, 3 cannot reach or authenticate to the broker.\n", out);
}

void
options_print (options_t *self, FILE *out)
{
    drv_conf_print (self->conf, out);
}

int
options_parse (options_t *self, int argc, char *argv [], char *why, size_t why_size)
{
    memset (self, 0, sizeof *self);
    memset (&s_extra, 0, sizeof s_extra);
    why [0] = 0;
    const drv_conf_option_t table [] = {
        { .name = "config", .type = DRV_CONF_STRING, .target = &s_extra.config_file, .arg = "FILE",
          .flags = DRV_CONF_NO_FILE,
          .help = "read settings from FILE (lines `name = value`)" },
        { .name = "broker", .type = DRV_CONF_STRING, .target = &self->connect.endpoint,
          .arg = "EP", .help = "broker worker endpoint, e.g. tcp://host:5556" },
        { .name = "server-key", .type = DRV_CONF_STRING, .target = &self->connect.server_key,
          .arg = "PATH", .help = "broker's public certificate" },
        { .name = "cert", .type = DRV_CONF_STRING, .target = &self->connect.cert,
          .arg = "PATH", .help = "our secret certificate" },
        { .name = "insecure", .type = DRV_CONF_BOOL, .target = &self->connect.insecure,
          .help = "plaintext, for a broker run with --insecure" },
        { .name = "connect-timeout", .type = DRV_CONF_INT, .target = &s_extra.connect_timeout,
          .value = "5", .min = 1, .max = 3600, .arg = "SECONDS",
          .help = "give up (exit 3) when the first connection and\n"
                  "handshake take longer" },
        { .name = "queue", .letter = 'q', .type = DRV_CONF_LIST, .target = &s_extra.queues,
          .arg = "NAME", .help = "queue to serve; repeat (or separate with commas) for\n"
                                 "several, all with the same handler" },
        { .name = "exec", .type = DRV_CONF_STRING, .target = &self->exec_cmd, .arg = "CMD",
          .check = s_check_command, .help = "run CMD with /bin/sh per job (see below)" },
        { .name = "plugin", .type = DRV_CONF_STRING, .target = &self->plugin_spec,
          .arg = "LIB:SYMBOL", .help = "call SYMBOL of the library LIB per job" },
        { .name = "processes", .type = DRV_CONF_INT, .target = &self->processes,
          .value = "auto", .min = 0, .max = 1000000, .word = "auto", .word_value = -1,
          .arg = "N", .help = "worker processes (auto: one per CPU); 0 = serve in\n"
                              "this process, without a supervisor" },
        { .name = "concurrency", .type = DRV_CONF_INT, .target = &self->concurrency,
          .value = "1", .min = 1, .max = 1000000, .arg = "N",
          .help = "handler threads per process" },
        { .name = "prefetch", .type = DRV_CONF_INT, .target = &self->prefetch,
          .value = "auto", .min = 0, .max = 1000000, .word = "auto", .word_value = -1,
          .arg = "N", .help = "jobs each process holds beyond those running (auto:\n"
                              "2 x concurrency; 0 for long jobs: take one when free)" },
        { .name = "name", .type = DRV_CONF_STRING, .target = &self->connect.name,
          .arg = "LABEL", .help = "worker label in broker logs (default host:pid)" },
        { .name = "log-level", .type = DRV_CONF_CHOICE, .target = &s_extra.log_level,
          .value = "info", .choices = s_log_levels, .arg = "LEVEL",
          .help = "debug, info, warn or error" },
        { .name = "log-format", .type = DRV_CONF_CHOICE, .target = &s_extra.log_format,
          .value = "text", .choices = s_log_formats, .arg = "F", .help = "text or json" },
        { .name = "log-json", .type = DRV_CONF_ALIAS, .alias = "log-format", .value = "json",
          .help = "same as --log-format json" },
        { .name = "print-config", .type = DRV_CONF_BOOL, .target = &self->print_config,
          .flags = DRV_CONF_FLAG_ONLY,
          .help = "print the settings in effect as a config file, and exit" },
        { .name = "version", .type = DRV_CONF_BOOL, .target = &self->version,
          .flags = DRV_CONF_FLAG_ONLY, .help = "print the version and exit" },
        { .name = "help", .letter = 'h', .type = DRV_CONF_BOOL, .target = &self->help,
          .flags = DRV_CONF_FLAG_ONLY, .help = "this text" },
    };
    size_t count = sizeof table / sizeof table [0];
    self->table = malloc (sizeof table);
    if (self->table)
        memcpy (self->table, table, sizeof table);
    self->conf = self->table? drv_conf_new ("drover-worker", self->table, count): NULL;
    if (!self->conf) {
        snprintf (why, why_size, "out of memory");
        return -1;
    }
    if (drv_conf_load (self->conf, argc, argv, why, why_size))
        return -1;
    self->connect.timeout_ms = s_extra.connect_timeout * 1000;
    self->queues = s_extra.queues.items;
    self->queue_count = s_extra.queues.count;
    self->log_level = (drv_log_level_t) s_extra.log_level;
    self->log_json = s_extra.log_format == 1;
    if (self->help || self->version)
        return 0;

    //  One handler: a higher source's choice replaces a lower one's (a
    //  --plugin flag overrides exec in the file); from the same source
    //  both is an error.
    if (self->exec_cmd && self->plugin_spec) {
        drv_conf_source_t exec_from = drv_conf_source (self->conf, "exec");
        drv_conf_source_t plugin_from = drv_conf_source (self->conf, "plugin");
        if (exec_from > plugin_from)
            drv_conf_clear (self->conf, "plugin");
        else
        if (plugin_from > exec_from)
            drv_conf_clear (self->conf, "exec");
    }
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
    drv_conf_destroy (&self->conf);
    free (self->table);
    self->table = NULL;
    self->queues = NULL;
    self->queue_count = 0;
}
