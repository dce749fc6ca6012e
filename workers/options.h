/*  options.h - drover-worker's command line (internal).

        drover-worker --broker EP --server-key PUBLIC_CERT --cert SECRET_CERT
                      --queue NAME [--queue NAME ...]
                      (--exec CMD | --plugin LIB:SYMBOL)
                      [--processes N] [--concurrency N] [--prefetch N]
                      [--name LABEL] [--insecure] [--log-level LEVEL] [--log-json]

    Connection settings missing from the flags come from DROVER_BROKER,
    DROVER_SERVER_KEY, DROVER_CERT and DROVER_INSECURE.
*/
#ifndef OPTIONS_H_INCLUDED
#define OPTIONS_H_INCLUDED

#include "drover.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct {
    drover_connect_t connect;   //  broker and keys; strings point into argv or environ
    const char **queues;        //  queue names (into argv), malloc'd array
    size_t queue_count;         //  entries in queues
    const char *exec_cmd;       //  --exec command line, or NULL
    const char *plugin_spec;    //  --plugin LIB:SYMBOL, or NULL
    int processes;              //  worker processes; -1 = one per CPU; 0 = no supervisor
    int concurrency;            //  handler threads per process; 0 = SDK default
    int prefetch;               //  jobs held ahead per process; -1 = SDK default
    drv_log_level_t log_level;  //  lines below it are dropped
    bool log_json;              //  one JSON object per log line
    bool help;                  //  --help: print usage, do nothing else
    bool version;               //  --version: print the version, do nothing else
} options_t;

//  Parses and checks argv (then the environment). Returns 0, or -1 with a
//  one-line reason in why (bad usage: exit status 2). Call options_free
//  afterwards in both cases.
int options_parse (options_t *self, int argc, char *argv [], char *why, size_t why_size);
void options_free (options_t *self);

//  Prints the usage text.
void options_usage (FILE *out);

#endif
