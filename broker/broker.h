/*  broker.h - the Drover broker as a CZMQ actor.

    droverd's main() parses options into a broker_config_t and runs the
    actor; `drover up`, `drover demo` and the tests run the very same actor
    in process.

        broker_config_t config;
        broker_config_defaults (&config);
        config.producers = "tcp://127.0.0.1:*";
        ...
        zactor_t *broker = zactor_new (broker_actor, &config);
        //  zactor_new returns once the broker is serving; if it could not
        //  start (bad key, port in use), zactor_new still returns an actor
        //  whose first "STATUS" answer is an error: see broker_start().

    Commands on the actor pipe (zstr strings):
        "ENDPOINTS"  -> two strings: producer and worker endpoints bound
        "STATE_ENDPOINT" -> one string: the state PUB endpoint bound
        "METRICS_ENDPOINT" -> one string: the HTTP endpoint bound ("" if off)
        "RELOAD"     -> rereads the allow-list now (droverd sends it on SIGHUP)
        "$TERM"      -> stops; in-flight work is dropped (memory mode)
*/
#ifndef BROKER_H_INCLUDED
#define BROKER_H_INCLUDED

#include "journal.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *producers;      //  client endpoint, default "tcp://*:5555"
    const char *workers;        //  worker endpoint, default "tcp://*:5556"
    const char *state;          //  shared-state PUB endpoint; NULL (default): producers' host, port +2 (tcp://*:5557)
    const char *cert;           //  server secret certificate path, or NULL
    const char *allow;          //  allow-list directory of client certificates
    const char *data_dir;       //  data directory, default "./drover-data"
    bool insecure;              //  plaintext, no CURVE, everyone is admin
    uint32_t heartbeat_ms;      //  heartbeat interval, default 1000
    uint32_t max_payload;       //  bytes, default 8 MiB
    uint32_t max_batch;         //  list entries per message, default 1000
    uint32_t default_timeout_ms;    //  per attempt, default 300000
    uint32_t default_attempts;      //  default 3
    uint32_t default_backoff_ms;    //  default 1000
    uint32_t default_result_ttl_s;  //  default 3600
    uint32_t dead_ttl_s;            //  failed jobs stay in the dead letters this long; default 7 days
    bool in_memory;             //  --durability none: no journal
    const journal_io_t *io;     //  journal file operations (tests inject faults); NULL = libc
    uint32_t max_value;         //  largest shared-state value, bytes; default 1 MiB
    unsigned compact_factor;    //  compact when the journal passes factor x live data; default 4
    //  Limits on what peers may make the broker hold (0 = no limit where noted)
    uint32_t max_key;           //  largest shared-state key, bytes; default 1024
    uint32_t max_queue_name;    //  longest queue name, bytes (1..255); default 128
    uint32_t max_queues;        //  queues that may exist at once; default 10000
    uint32_t max_inflight;      //  unfinished jobs per submitting key; default 1000000
    uint32_t max_clients;       //  connected clients; default 10000
    uint32_t max_workers;       //  connected workers; default 10000
    //  Observability
    const char *metrics;        //  HTTP endpoint for /metrics, /healthz, /readyz as a
                                //  ZeroMQ tcp endpoint (default "tcp://*:9090"); NULL = off
    bool open_key_ok;           //  start even if the server secret is readable by others
} broker_config_t;

//  Fills config with the defaults above.
void broker_config_defaults (broker_config_t *config);

//  The actor body; args is a broker_config_t * (copied before signalling).
void broker_actor (zsock_t *pipe, void *args);

//  Starts the actor and checks it came up. Returns the actor, or NULL after
//  logging why (the actor is then already destroyed).
zactor_t *broker_start (const broker_config_t *config);

//  Asks a running broker actor for its bound endpoints; the strings are
//  freed by the caller (zstr_free). Returns 0 or -1.
int broker_endpoints (zactor_t *broker, char **producers, char **workers);

//  Asks a running broker actor for its bound state PUB endpoint; the
//  string is freed by the caller (zstr_free). Returns 0 or -1.
int broker_state_endpoint (zactor_t *broker, char **state);

//  Asks a running broker actor for its bound HTTP endpoint ("" when off);
//  the string is freed by the caller (zstr_free). Returns 0 or -1.
int broker_metrics_endpoint (zactor_t *broker, char **metrics);

//  Asks a running broker actor to reread its allow-list now (SIGHUP).
void broker_reload (zactor_t *broker);

#endif
