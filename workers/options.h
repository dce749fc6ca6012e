/*  options.h - drover-worker's settings (internal).

        drover-worker --broker EP --server-key PUBLIC_CERT --cert SECRET_CERT
                      --queue NAME [--queue NAME ...]
                      (--exec CMD | --plugin LIB:SYMBOL)
                      [--processes N] [--concurrency N] [--prefetch N]
                      [--name LABEL] [--insecure] [--log-level LEVEL]
                      [--log-format text|json] [--config FILE] [--print-config]

    Every setting also comes from a DROVER_* environment variable
    (DROVER_BROKER, DROVER_SERVER_KEY, DROVER_CERT, DROVER_INSECURE,
    DROVER_QUEUE, ...) or a config file (--config FILE or DROVER_CONFIG);
    flags win over the environment, which wins over the file.
*/
#ifndef OPTIONS_H_INCLUDED
#define OPTIONS_H_INCLUDED

#include "conf.h"
#include "drover.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct {
    drover_connect_t connect;   //  broker and keys; strings owned by conf, argv or environ
    const char **queues;        //  queue names, owned by conf
    size_t queue_count;         //  entries in queues
    const char *exec_cmd;       //  --exec command line, or NULL
    const char *plugin_spec;    //  --plugin LIB:SYMBOL, or NULL
    int processes;              //  worker processes; -1 = one per CPU; 0 = no supervisor
    int concurrency;            //  handler threads per process
    int prefetch;               //  jobs held ahead per process; -1 = SDK default
    drv_log_level_t log_level;  //  lines below it are dropped
    bool log_json;              //  one JSON object per log line
    bool help;                  //  --help: print usage, do nothing else
    bool version;               //  --version: print the version, do nothing else
    bool print_config;          //  --print-config: print the settings, do nothing else
    drv_conf_t *conf;           //  the loader; holds the strings above
    drv_conf_option_t *table;   //  the settings' table the loader reads (heap)
} options_t;

//  Reads and checks the settings from argv, the environment and the config
//  file. Returns 0, or -1 with a one-line reason in why (bad usage: exit
//  status 2). Call options_free afterwards in both cases.
int options_parse (options_t *self, int argc, char *argv [], char *why, size_t why_size);
void options_free (options_t *self);

//  Prints the usage text.
void options_usage (options_t *self, FILE *out);

//  Prints the settings in effect as config-file lines.
void options_print (options_t *self, FILE *out);

#endif
