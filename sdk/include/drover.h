/*  drover.h - public API of libdrover, the Drover job queue SDK.

    Drover moves jobs from producers (clients) through a broker (droverd) to
    pull-based workers and brings the results back. This header is the only
    interface: handles are opaque, no ZeroMQ or protobuf type appears here.

    Conventions
    - Functions returning int return 0 (DROVER_OK) or a drover_err_t value;
      drover_strerror() gives its text.
    - drover_x_new() returns a handle or NULL; drover_x_destroy(&p) frees it,
      sets *p to NULL and is harmless on NULL.
    - Strings and buffers passed in are copied unless a comment says
      otherwise; pointers returned stay owned by the handle they came from
      and are valid until that handle is destroyed, unless stated.
    - Thread safety is stated per type.
*/
#ifndef DROVER_H_INCLUDED
#define DROVER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DROVER_VERSION_MAJOR 0
#define DROVER_VERSION_MINOR 1
#define DROVER_VERSION_PATCH 0

//  Length of a job id in bytes, and of its text form (hex, no NUL).
#define DROVER_ID_SIZE 16
#define DROVER_ID_TEXT 32

typedef enum {
    DROVER_OK = 0,
    DROVER_EINVAL,        //  bad argument or bad usage
    DROVER_ENOMEM,        //  out of memory
    DROVER_ETIMEDOUT,     //  the wait ran out; the operation may still complete
    DROVER_EUNREACHABLE,  //  cannot reach the broker
    DROVER_EUNAUTH,       //  the broker refused our key, or CURVE mismatch
    DROVER_EDENIED,       //  our key's role may not do this
    DROVER_EINTR,         //  interrupted by a signal
    DROVER_ECLOSED,       //  the handle was closed or is shutting down
    DROVER_EPROTO,        //  protocol error or unsupported protocol version
    DROVER_ETOOLARGE,     //  payload or batch over the broker's limit
    DROVER_ENOQUEUE,      //  queue name missing or invalid
    DROVER_ENOTFOUND,     //  no such job (never existed, or its result expired)
    DROVER_EFAILED,       //  the job failed: attempts exhausted or not retryable
    DROVER_ECANCELLED,    //  the job was cancelled
    DROVER_ELIMIT,        //  a broker limit was reached; retry later
    DROVER_EUNAVAILABLE,  //  the broker cannot accept work now
    DROVER_EKEY,          //  a certificate file is missing or unreadable
    DROVER_ESTATE,        //  the job's (or lock's, barrier's) state does not allow this
    DROVER_EINTERNAL,     //  unexpected internal error
    DROVER_ECONFLICT      //  compare-and-set: the value's version differs
} drover_err_t;

//  Text for an error code. Never NULL; static storage.
const char *drover_strerror (int err);

//  Job states, as reported by drover_client_status().
typedef enum {
    DROVER_JOB_UNKNOWN = 0,
    DROVER_JOB_QUEUED,
    DROVER_JOB_SCHEDULED,
    DROVER_JOB_RUNNING,
    DROVER_JOB_DONE,
    DROVER_JOB_FAILED,
    DROVER_JOB_CANCELLED
} drover_job_state_t;

//  Lower-case name of a state ("queued", "done", ...). Static storage.
const char *drover_job_state_name (drover_job_state_t state);

//  True if name is a valid queue name: 1 to 128 bytes of A-Z a-z 0-9 . _ - :
bool drover_queue_name_valid (const char *name);

//  Writes the 32-character hex form of a 16-byte id plus a NUL into text.
void drover_id_format (const uint8_t id [DROVER_ID_SIZE], char text [DROVER_ID_TEXT + 1]);
//  Parses 32 hex characters into id. Returns 0 or DROVER_EINVAL.
int drover_id_parse (const char *text, uint8_t id [DROVER_ID_SIZE]);

//  ---------------------------------------------------------------------
//  Connection settings, shared by clients and workers.
//  Zero-initialise, then fill in what you need. Strings are copied by the
//  function that takes the struct.

typedef struct {
    const char *endpoint;     //  broker endpoint, e.g. "tcp://127.0.0.1:5555"
    const char *server_key;   //  path of the broker's public certificate
    const char *cert;         //  path of our secret certificate (public+secret)
    bool insecure;            //  plaintext, no CURVE (broker must run --insecure)
    int timeout_ms;           //  connect and handshake timeout; 0 = 5000
    const char *name;         //  label shown in broker logs; NULL = "host:pid"
} drover_connect_t;

//  Fills in unset fields of cfg from DROVER_BROKER, DROVER_SERVER_KEY,
//  DROVER_CERT and DROVER_INSECURE (1/true). The pointers point into the
//  environment and stay valid while it is unchanged.
void drover_connect_from_env (drover_connect_t *cfg);

//  ---------------------------------------------------------------------
//  Job options. Zero-initialise (or use DROVER_JOB_OPTS_INIT); a zero field
//  takes the broker's default.

typedef struct {
    int priority;             //  0..9, higher runs first
    uint32_t timeout_ms;      //  per attempt; the job is retried after it
    uint32_t max_attempts;    //  then the job fails
    uint64_t delay_ms;        //  run no earlier than now + delay
    uint64_t run_at_ms;       //  or no earlier than this Unix time (ms)
    uint32_t backoff_ms;      //  base of exponential backoff between attempts
    uint32_t result_ttl_s;    //  how long the broker keeps the result
} drover_job_opts_t;

#define DROVER_JOB_OPTS_INIT {0, 0, 0, 0, 0, 0, 0}

//  ---------------------------------------------------------------------
//  Client: submits jobs and collects results.
//  Thread safety: every drover_client_* and drover_future_* function may be
//  called from any thread. A background thread owned by the client does the
//  I/O, heartbeats, batching and reconnection.

typedef struct _drover_client_t drover_client_t;
typedef struct _drover_future_t drover_future_t;

//  Connects to the broker and completes the handshake, waiting at most
//  cfg->timeout_ms. On success stores a new client in *client_p and returns
//  0; otherwise returns DROVER_EUNREACHABLE, DROVER_EUNAUTH, DROVER_EDENIED
//  (our key's role may not connect as a client), DROVER_EKEY, DROVER_EPROTO
//  or DROVER_EINVAL, and *client_p is untouched.
int drover_client_connect (const drover_connect_t *cfg, drover_client_t **client_p);

//  Says goodbye to the broker and frees the client. Outstanding futures stay
//  valid (they resolve with DROVER_ECLOSED if unfinished) until destroyed.
void drover_client_destroy (drover_client_t **client_p);

//  Submits one job. Copies data. Returns at once; the broker's acceptance
//  and the result both arrive later through the future, which the caller
//  owns and destroys. Returns 0, DROVER_EINVAL, DROVER_ETOOLARGE (over the
//  broker's payload limit) or DROVER_ECLOSED.
int drover_submit (drover_client_t *client, const char *queue,
                   const void *data, size_t size,
                   const drover_job_opts_t *opts, drover_future_t **future_p);

//  Submits count jobs at once (one batch on the wire where possible).
//  data[i] / size[i] is job i's payload; futures[i] receives its future.
//  On error no future is returned and nothing is submitted.
int drover_submit_many (drover_client_t *client, const char *queue,
                        const void *const *data, const size_t *size, size_t count,
                        const drover_job_opts_t *opts, drover_future_t **futures);

//  Returns a future for an existing job by id (32 hex chars), for example
//  one submitted by another process. It resolves when the job ends, or at
//  once if it already has; DROVER_ENOTFOUND if the broker does not know it.
int drover_fetch (drover_client_t *client, const char *id, drover_future_t **future_p);

typedef struct {
    char id [DROVER_ID_TEXT + 1];
    drover_job_state_t state;
    char queue [128];
    uint32_t attempts;
    char error [256];         //  last error text, "" if none
    uint64_t created_ms;      //  Unix ms
    uint64_t finished_ms;     //  Unix ms, 0 while unfinished
    int priority;
    uint32_t payload_size;
    uint32_t progress;        //  percent last reported by the worker (0..100)
    char progress_message [128];  //  its text, "" if none
    char submitter [41];      //  Z85 public key that submitted the job; the broker
                              //  tells it to admins and to that key only, else ""
} drover_job_info_t;

//  Asks the broker for a job's state. Blocks up to timeout_ms.
//  Returns 0 (info filled; state DROVER_JOB_UNKNOWN when the broker does
//  not know the id), DROVER_EINVAL, DROVER_ETIMEDOUT or DROVER_ECLOSED.
int drover_status (drover_client_t *client, const char *id,
                   drover_job_info_t *info, int timeout_ms);

//  Cancels a job that has not finished. Blocks up to timeout_ms. Returns 0
//  when the job is now cancelled, DROVER_ENOTFOUND, DROVER_ESTATE (already
//  finished), DROVER_ETIMEDOUT or DROVER_ECLOSED.
int drover_cancel (drover_client_t *client, const char *id, int timeout_ms);

typedef struct {
    char name [128];
    uint64_t queued, scheduled, running;
    uint64_t submitted, done, failed, retried;
    uint32_t workers;
    bool paused;              //  dispatch stopped by an admin
    uint64_t dead;            //  jobs in the dead-letter list
    double submit_rate;       //  accepted per second (about a minute's average)
    double done_rate;         //  finished per second (likewise)
} drover_queue_stats_t;

typedef enum {
    DROVER_PEER_CLIENT = 1,   //  a producer or other client
    DROVER_PEER_WORKER = 2    //  a worker
} drover_peer_kind_t;

//  One peer connected to the broker. Strings are NUL-terminated (cut if
//  longer); queues and its strings belong to the drover_stats_t.
typedef struct {
    drover_peer_kind_t kind;  //  client or worker
    char name [128];          //  label it gave (host:pid by default)
    char key [41];            //  Z85 public key, "" on an insecure broker
    char role [16];           //  its key's role: producer, worker or admin
    const char **queues;      //  worker: names of the queues it serves
    size_t queue_count;       //  entries in queues
    uint32_t credit;          //  worker: jobs it will still accept
    uint32_t inflight;        //  worker: jobs it holds now
    uint64_t connected_ms;    //  Unix ms of its hello
    uint64_t idle_ms;         //  since its last message
} drover_peer_info_t;

typedef struct {
    uint32_t workers;
    uint32_t clients;
    uint64_t uptime_ms;
    uint64_t jobs_stored;
    size_t queue_count;
    drover_queue_stats_t *queues;   //  array of queue_count entries
    size_t peer_count;              //  entries in peers
    drover_peer_info_t *peers;      //  connected peers the broker lists: every
                                    //  worker, and the clients too when our
                                    //  key is an admin's; NULL when none
} drover_stats_t;

//  Fetches broker statistics into a new drover_stats_t that the caller frees
//  with drover_stats_destroy(), which frees the queues and peers arrays (and
//  every string they hold) with it. Blocks up to timeout_ms.
int drover_stats (drover_client_t *client, drover_stats_t **stats_p, int timeout_ms);
void drover_stats_destroy (drover_stats_t **stats_p);

//  Pauses (paused = true) or resumes a queue: a paused queue keeps
//  accepting jobs but dispatches none. Needs an admin key. Blocks up to
//  timeout_ms. Returns 0, DROVER_EDENIED, DROVER_ENOQUEUE (invalid name),
//  DROVER_ETIMEDOUT or DROVER_ECLOSED.
int drover_queue_pause (drover_client_t *client, const char *queue, bool paused, int timeout_ms);

typedef enum {
    DROVER_DEAD_LIST = 1,     //  describe dead jobs, oldest first
    DROVER_DEAD_RETRY,        //  queue them again with fresh attempts
    DROVER_DEAD_PURGE         //  forget them
} drover_dead_action_t;

//  Works on the dead-letter list of a queue (jobs that ended failed).
//  ids (32 hex chars each) select jobs; id_count 0 means all dead jobs of
//  the queue. limit bounds LIST (0 = 100). On success *infos_p receives a
//  malloc'd array of *count_p entries (the jobs concerned, state after the
//  action) that the caller frees with free(). Needs an admin key.
//  Returns 0, DROVER_EINVAL, DROVER_ENOQUEUE, DROVER_ETOOLARGE, DROVER_EDENIED,
//  DROVER_ETIMEDOUT or DROVER_ECLOSED.
int drover_dead (drover_client_t *client, const char *queue, drover_dead_action_t action,
                 const char *const *ids, size_t id_count, size_t limit,
                 drover_job_info_t **infos_p, size_t *count_p, int timeout_ms);

//  Futures ------------------------------------------------------------

//  Waits until the broker has accepted (or refused) the job. Returns 0 when
//  accepted, the refusal's error (DROVER_ETOOLARGE, DROVER_ENOQUEUE,
//  DROVER_EDENIED, ...), DROVER_ETIMEDOUT, or DROVER_ECLOSED.
//  timeout_ms < 0 waits forever.
int drover_future_accepted (drover_future_t *future, int timeout_ms);

//  Waits until the job has ended. Returns 0 when it finished successfully,
//  DROVER_EFAILED, DROVER_ECANCELLED, a refusal error, DROVER_ENOTFOUND,
//  DROVER_ETIMEDOUT (still running) or DROVER_ECLOSED.
int drover_future_wait (drover_future_t *future, int timeout_ms);

//  True once the job has ended (or was refused); never blocks.
bool drover_future_ready (drover_future_t *future);

//  The job's id as 32 hex characters. Owned by the future.
const char *drover_future_id (drover_future_t *future);

//  The result payload once the job is done, else NULL. *size_p receives its
//  size. Owned by the future; valid until the future is destroyed.
const void *drover_future_result (drover_future_t *future, size_t *size_p);

//  The failure text once the job failed or was refused, else NULL.
const char *drover_future_error (drover_future_t *future);

//  Attempts the broker reports for the finished job.
uint32_t drover_future_attempts (drover_future_t *future);

//  Callback run once when the future resolves, on the client's I/O thread
//  (keep it short; do not wait on other futures there). If the future has
//  already resolved, runs at once on the calling thread. Replaces any
//  earlier callback.
typedef void (drover_future_fn) (drover_future_t *future, void *arg);
void drover_future_on_done (drover_future_t *future, drover_future_fn *fn, void *arg);

//  Releases the future. The job itself goes on; its result stays on the
//  broker for its time-to-live.
void drover_future_destroy (drover_future_t **future_p);

//  ---------------------------------------------------------------------
//  Shared state: named namespaces of keys (C strings, at most 1024 bytes)
//  to values (bytes, at most the broker's limit, 1 MiB by default), each
//  value with a version (1 on creation, +1 on every change). Every change
//  is published to replicas. Namespace names follow the queue-name rule.
//  All calls block up to timeout_ms and may be made from any thread.
//  Returns 0 or: DROVER_EINVAL (bad name, key or argument), DROVER_ENOTFOUND
//  (no such key), DROVER_ECONFLICT (CAS), DROVER_ETOOLARGE (key or value),
//  DROVER_EDENIED, DROVER_EUNAVAILABLE, DROVER_ETIMEDOUT, DROVER_ECLOSED.

//  Reads a key. On success *value_p receives a malloc'd copy (the caller
//  frees it; NUL-terminated for convenience, the NUL not counted in size).
//  value_p, size_p and version_p may each be NULL.
int drover_state_get (drover_client_t *client, const char *ns, const char *key,
                      void **value_p, size_t *size_p, uint64_t *version_p, int timeout_ms);

//  Writes a key (creating it). *version_p (may be NULL) receives the new version.
int drover_state_set (drover_client_t *client, const char *ns, const char *key,
                      const void *value, size_t size, uint64_t *version_p, int timeout_ms);

//  Removes a key. DROVER_ENOTFOUND if it did not exist.
int drover_state_del (drover_client_t *client, const char *ns, const char *key, int timeout_ms);

//  Writes a key only if its version is expect_version (0: only if the key
//  does not exist). On DROVER_ECONFLICT, *version_p (may be NULL) receives
//  the current version (0 if the key is missing); on success, the new one.
int drover_state_cas (drover_client_t *client, const char *ns, const char *key,
                      uint64_t expect_version, const void *value, size_t size,
                      uint64_t *version_p, int timeout_ms);

//  Adds delta to a counter kept as decimal text (a missing key counts as
//  0), atomically on the broker. *value_p (may be NULL) receives the result.
//  DROVER_EINVAL if the current value is not a decimal integer.
int drover_state_incr (drover_client_t *client, const char *ns, const char *key,
                       int64_t delta, int64_t *value_p, int timeout_ms);

typedef struct {
    char *key;                //  NUL-terminated
    void *value;              //  NUL-terminated copy; size excludes the NUL
    size_t size;
    uint64_t version;
} drover_state_entry_t;

//  Lists the keys starting with prefix ("" for all), in key order, with
//  their values. *entries_p receives a malloc'd array of *count_p entries,
//  freed with drover_state_entries_free().
int drover_state_list (drover_client_t *client, const char *ns, const char *prefix,
                       drover_state_entry_t **entries_p, size_t *count_p, int timeout_ms);
void drover_state_entries_free (drover_state_entry_t *entries, size_t count);

//  Replica: a local, read-fast copy of namespaces, kept current from the
//  broker's update stream (subscribe, snapshot, apply updates after the
//  snapshot's sequence; on a gap or a broker restart it takes a fresh
//  snapshot by itself). Thread safety: all calls from any thread; watch
//  callbacks run on the replica's own thread.
typedef struct _drover_replica_t drover_replica_t;

//  Creates a replica that uses client for snapshots and connects its own
//  subscriber (with the client's keys) to the broker's state endpoint.
//  The client must outlive the replica. NULL on error (logged).
drover_replica_t *drover_replica_new (drover_client_t *client);
void drover_replica_destroy (drover_replica_t **replica_p);

//  Starts tracking a namespace and waits until the first snapshot is in.
int drover_replica_track (drover_replica_t *replica, const char *ns, int timeout_ms);

//  Reads a key from the local copy (no network). Same ownership as
//  drover_state_get. DROVER_ENOTFOUND if absent, DROVER_EINVAL if the
//  namespace is not tracked.
int drover_replica_get (drover_replica_t *replica, const char *ns, const char *key,
                        void **value_p, size_t *size_p, uint64_t *version_p);

//  Sequence number of the namespace's last applied change (0 if none).
uint64_t drover_replica_seq (drover_replica_t *replica, const char *ns);

//  Called for each change to a key starting with prefix in namespace ns,
//  in sequence order, after it is applied. value is NULL when deleted.
typedef void (drover_watch_fn) (const char *ns, const char *key, const void *value,
                                size_t size, uint64_t version, void *arg);
int drover_replica_watch (drover_replica_t *replica, const char *ns, const char *prefix,
                          drover_watch_fn *fn, void *arg);

//  ---------------------------------------------------------------------
//  Cluster-wide sync primitives, held by the broker and named like queues
//  (each kind has its own names). A lock or semaphore permit belongs to
//  the client that took it and is released by the broker when that client
//  goes away (closed, or silent for three heartbeats): the client's
//  heartbeats are its lease. Waiters are served in arrival order; waiting
//  costs no polling. timeout_ms 0 means try once; < 0 means wait forever
//  (while the client lives). The broker answers at its deadline; the call
//  waits about 2 s longer for that answer before it gives up itself, and
//  a lock or permit granted after the call gave up is released at once.
//  After a broker restart (a different broker answers the re-hello) waits
//  in progress are sent again for the time they have left, but locks and
//  permits held before it are gone: the new broker may grant them to
//  someone else (use the fencing token to tell). Release, set and clear
//  wait up to the connect timeout for the broker's answer.
//  Returns 0, DROVER_ETIMEDOUT (not granted in time), DROVER_ESTATE (see
//  each call), DROVER_EINVAL, DROVER_EDENIED or DROVER_ECLOSED.

//  Acquires a lock. *fence_p (may be NULL) receives a number that grows
//  with every grant of this lock (a fencing token). DROVER_ESTATE if this
//  client already holds it.
int drover_lock (drover_client_t *client, const char *name, int timeout_ms, uint64_t *fence_p);
//  Releases a lock. DROVER_ESTATE if this client does not hold it.
int drover_unlock (drover_client_t *client, const char *name);

//  Takes one permit of a counting semaphore created with initial permits
//  on first use (later values of initial are ignored).
int drover_sem_acquire (drover_client_t *client, const char *name, unsigned initial,
                        int timeout_ms);
//  Gives back one permit. DROVER_ESTATE if this client holds none.
int drover_sem_release (drover_client_t *client, const char *name);

//  Events: set wakes every waiter; wait returns at once if set.
int drover_event_set (drover_client_t *client, const char *name);
int drover_event_clear (drover_client_t *client, const char *name);
int drover_event_wait (drover_client_t *client, const char *name, int timeout_ms);

//  Waits until parties clients wait on the barrier, then all go on.
//  DROVER_ESTATE if parties differs from the barrier's current round.
int drover_barrier_wait (drover_client_t *client, const char *name, unsigned parties,
                         int timeout_ms);

//  ---------------------------------------------------------------------
//  Worker: serves queues with handlers.
//  Thread safety: configure and run from one thread; drover_worker_stop()
//  may be called from any thread or a signal handler.

typedef struct _drover_worker_t drover_worker_t;
typedef struct _drover_job_t drover_job_t;

//  A handler runs one job. It reads the payload with drover_job_payload()
//  and returns 0 after drover_job_set_result() (no result = empty), or
//  non-zero after drover_job_set_error() to fail this attempt (retried up to
//  the job's max attempts). Handlers run on the worker's handler threads;
//  with concurrency > 1 the same handler runs on several threads at once.
typedef int (drover_handler_fn) (drover_job_t *job, void *arg);

//  Creates a worker; nothing is sent until drover_worker_run(). Copies cfg.
//  Returns NULL on bad arguments (logged to stderr).
drover_worker_t *drover_worker_new (const drover_connect_t *cfg);
void drover_worker_destroy (drover_worker_t **worker_p);

//  Registers fn for queue (several queues may be served). Returns 0 or
//  DROVER_EINVAL (bad name, or already registered).
int drover_worker_handle (drover_worker_t *worker, const char *queue,
                          drover_handler_fn *fn, void *arg);

//  Number of handler threads (default 1) and credit: jobs the broker may
//  send ahead of the ones running (default: 2 x concurrency).
int drover_worker_set_concurrency (drover_worker_t *worker, int threads);
int drover_worker_set_prefetch (drover_worker_t *worker, int jobs);

//  Connects and serves until stopped. Reconnects and re-registers by itself
//  when the broker restarts. Returns 0 after a graceful stop (in-flight
//  jobs finished and reported), or DROVER_EUNAUTH / DROVER_EDENIED (role
//  may not serve) / DROVER_EKEY / DROVER_EUNREACHABLE / DROVER_EPROTO when
//  the first connection cannot be made.
int drover_worker_run (drover_worker_t *worker);

//  Asks a running worker to drain: stop taking jobs, finish the ones held,
//  report them, say goodbye, and return from drover_worker_run().
//  Async-signal-safe.
void drover_worker_stop (drover_worker_t *worker);

//  Inside a handler -----------------------------------------------------

//  The job's payload; owned by the job, valid during the handler.
const void *drover_job_payload (drover_job_t *job, size_t *size_p);
//  The job's id as 32 hex characters; owned by the job.
const char *drover_job_id (drover_job_t *job);
const char *drover_job_queue (drover_job_t *job);
//  1 for the first attempt.
uint32_t drover_job_attempt (drover_job_t *job);
//  Milliseconds the broker allows this attempt (0 = no limit).
uint32_t drover_job_timeout_ms (drover_job_t *job);
//  Z85 public key (40 chars) of the client key that submitted the job, for
//  auditing; "" when the broker runs without CURVE. Owned by the job.
const char *drover_job_submitter (drover_job_t *job);
//  Sets the result payload (copied). Returns 0 or DROVER_ENOMEM.
int drover_job_set_result (drover_job_t *job, const void *data, size_t size);
//  Takes ownership of a malloc'd buffer as the result (freed by the SDK).
int drover_job_take_result (drover_job_t *job, void *data, size_t size);
//  Sets the failure text (copied). With permanent, the job is not retried.
int drover_job_set_error (drover_job_t *job, const char *message, bool permanent);
//  Reports progress of a running job (percent 0..100 and a short text,
//  copied; NULL for none). Sent to the broker with the next batch; `drover
//  status` shows the latest. Returns 0, DROVER_EINVAL or DROVER_ENOMEM.
int drover_job_progress (drover_job_t *job, unsigned percent, const char *message);
//  True once the broker has cancelled this job or its attempt timed out; a
//  long handler should check it and give up early (its result is ignored).
bool drover_job_cancelled (drover_job_t *job);

#ifdef __cplusplus
}
#endif

#endif
