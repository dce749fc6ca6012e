/*  codec.h - encode and decode Drover envelopes (internal).

    The only module that touches protobuf-c generated code. It turns an
    Envelope frame into a drv_msg_t (plain C structs) and back. Payload frames
    are not its business: they travel beside the envelope untouched.

    A decoded message lives in the codec's arena and stays valid until the
    next drv_codec_decode() on the same codec. A codec is used by one thread.
*/
#ifndef DRV_CODEC_H_INCLUDED
#define DRV_CODEC_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define DRV_PROTOCOL_VERSION 1
#define DRV_ID_SIZE 16

//  Codes and states mirror schemas/drover.proto.
typedef enum {
    DRV_CODE_OK = 0,
    DRV_CODE_BAD_REQUEST = 1,
    DRV_CODE_UNKNOWN_COMMAND = 2,
    DRV_CODE_BAD_VERSION = 3,
    DRV_CODE_REHELLO = 4,
    DRV_CODE_TOO_LARGE = 5,
    DRV_CODE_UNKNOWN_QUEUE = 6,
    DRV_CODE_UNKNOWN_JOB = 7,
    DRV_CODE_DENIED = 8,
    DRV_CODE_LIMIT = 9,
    DRV_CODE_UNAVAILABLE = 10,
    DRV_CODE_INTERNAL = 11,
    DRV_CODE_BAD_STATE = 12,
    DRV_CODE_NOT_FOUND = 13,
    DRV_CODE_CONFLICT = 14,
    DRV_CODE_TIMEOUT = 15
} drv_code_t;

typedef enum {
    DRV_JOB_UNKNOWN = 0,
    DRV_JOB_QUEUED = 1,
    DRV_JOB_SCHEDULED = 2,
    DRV_JOB_RUNNING = 3,
    DRV_JOB_DONE = 4,
    DRV_JOB_FAILED = 5,
    DRV_JOB_CANCELLED = 6
} drv_job_state_t;

typedef enum {
    DRV_PEER_UNSPECIFIED = 0,
    DRV_PEER_CLIENT = 1,
    DRV_PEER_WORKER = 2
} drv_peer_kind_t;

typedef enum {
    DRV_CMD_NONE = 0,
    DRV_CMD_HELLO,
    DRV_CMD_WELCOME,
    DRV_CMD_HEARTBEAT,
    DRV_CMD_ERROR,
    DRV_CMD_BYE,
    DRV_CMD_SUBMIT,
    DRV_CMD_SUBMIT_ACK,
    DRV_CMD_DISPATCH,
    DRV_CMD_REPORT,
    DRV_CMD_DELIVER,
    DRV_CMD_CREDIT,
    DRV_CMD_QUERY,
    DRV_CMD_QUERY_REPLY,
    DRV_CMD_CANCEL,
    DRV_CMD_STATS,
    DRV_CMD_STATS_REPLY,
    DRV_CMD_PROGRESS,
    DRV_CMD_QUEUE_CONTROL,
    DRV_CMD_DEAD_LETTER,
    DRV_CMD_STATE_REQUEST,
    DRV_CMD_STATE_REPLY,
    DRV_CMD_STATE_UPDATE,
    DRV_CMD_SYNC_REQUEST,
    DRV_CMD_SYNC_REPLY,
    DRV_CMD_COUNT_
} drv_cmd_t;

#define DRV_QUEUE_NAME_MAX 128

//  True if name is 1..128 bytes of [A-Za-z0-9._:-] (PROTOCOL.md section 3).
bool drv_queue_name_valid (const char *name);
//  Checks a queue-limit list (certificate metadata "queues": queue names,
//  each optionally ending in '*' for a prefix, "*" alone for every queue,
//  separated by commas) and returns it normalised (no blanks around the
//  entries) in a new string the caller frees; NULL with a reason in why
//  when the list is bad.
char *drv_queue_list_parse (const char *text, char *why, size_t why_size);

//  Whether a command is followed by one payload frame per list entry.
bool drv_cmd_has_payloads (drv_cmd_t cmd);
//  Upper-case command name for logs ("SUBMIT").
const char *drv_cmd_name (drv_cmd_t cmd);
const char *drv_code_name (drv_code_t code);

typedef struct {
    uint8_t id [DRV_ID_SIZE];   //  client-chosen job id
    const char *queue;          //  queue name (never NULL after decode)
    int32_t priority;           //  0..9
    uint32_t timeout_ms;        //  per attempt, 0 = default
    uint32_t max_attempts;      //  0 = default
    uint64_t delay_ms;          //  relative delay
    uint64_t run_at_ms;         //  absolute Unix ms
    uint32_t backoff_ms;        //  retry backoff base
    uint32_t result_ttl_s;      //  result retention, 0 = default
} drv_jobspec_t;

typedef struct {
    uint8_t id [DRV_ID_SIZE];   //  job acknowledged
    drv_code_t code;            //  OK or why refused
    const char *message;        //  refusal text ("" when OK)
    bool duplicate;             //  id already known
} drv_joback_t;

typedef struct {
    uint8_t id [DRV_ID_SIZE];   //  job to run
    const char *queue;          //  its queue
    uint32_t attempt;           //  1-based attempt number
    uint32_t timeout_ms;        //  allowed run time
    const char *submitter;      //  Z85 key that submitted it ("" if unknown)
} drv_job_t;

typedef struct {
    uint8_t id [DRV_ID_SIZE];   //  job concerned
    drv_job_state_t state;      //  DONE, FAILED or CANCELLED
    const char *error;          //  failure text ("" if none)
    uint32_t attempts;          //  attempts made
    bool no_retry;              //  worker: permanent failure
} drv_result_t;

typedef struct {
    uint8_t id [DRV_ID_SIZE];   //  job described
    drv_job_state_t state;      //  UNKNOWN if the broker lacks it
    const char *queue;          //  its queue ("" if unknown)
    uint32_t attempts;          //  attempts so far
    const char *error;          //  last error ("" if none)
    uint64_t created_ms;        //  Unix ms of acceptance
    uint64_t finished_ms;       //  Unix ms of the end, 0 if running
    int32_t priority;           //  its priority
    uint32_t payload_size;      //  input size in bytes
    uint32_t progress;          //  percent last reported
    const char *progress_message;   //  its text ("" if none)
    const char *submitter;      //  Z85 key that submitted it ("" if not told)
} drv_jobinfo_t;

typedef struct {
    uint8_t id [DRV_ID_SIZE];   //  running job
    uint32_t percent;           //  0..100
    const char *message;        //  short text ("" if none)
} drv_progress_t;

typedef enum {
    DRV_QUEUE_PAUSE = 1,
    DRV_QUEUE_RESUME = 2
} drv_queue_action_t;

typedef enum {
    DRV_STATE_GET = 1,
    DRV_STATE_SET = 2,
    DRV_STATE_DEL = 3,
    DRV_STATE_CAS = 4,
    DRV_STATE_INCR = 5,
    DRV_STATE_LIST = 6,
    DRV_STATE_SNAPSHOT = 7
} drv_state_op_t;

typedef enum {
    DRV_SYNC_LOCK = 1,
    DRV_SYNC_UNLOCK = 2,
    DRV_SYNC_SEM_ACQUIRE = 3,
    DRV_SYNC_SEM_RELEASE = 4,
    DRV_SYNC_EVENT_SET = 5,
    DRV_SYNC_EVENT_CLEAR = 6,
    DRV_SYNC_EVENT_WAIT = 7,
    DRV_SYNC_BARRIER_WAIT = 8
} drv_sync_op_t;

typedef struct {
    const uint8_t *key;         //  key bytes
    size_t key_size;            //  key length
    uint64_t version;           //  0 when the key does not exist
} drv_state_entry_t;

typedef enum {
    DRV_DEAD_LIST = 1,
    DRV_DEAD_RETRY = 2,
    DRV_DEAD_PURGE = 3
} drv_dead_action_t;

typedef struct {
    const char *name;           //  queue name
    uint64_t queued;            //  ready to run
    uint64_t scheduled;         //  waiting for a time
    uint64_t running;           //  at workers
    uint64_t submitted;         //  counter since start
    uint64_t done;              //  counter since start
    uint64_t failed;            //  counter since start
    uint64_t retried;           //  counter since start
    uint32_t workers;           //  workers serving it
    bool paused;                //  dispatch stopped
    uint64_t dead;              //  dead-letter jobs
    double submit_rate;         //  accepted per second
    double done_rate;           //  finished per second
} drv_queue_stats_t;

typedef struct {
    drv_peer_kind_t kind;       //  client or worker
    const char *name;           //  label from its Hello
    const char *key;            //  Z85 public key ("" when insecure)
    const char *role;           //  its key's role
    const char **queues;        //  worker: queues served
    size_t queue_count;         //  number of queues
    uint32_t credit;            //  worker: jobs it will still accept
    uint32_t inflight;          //  worker: jobs it holds
    uint64_t connected_ms;      //  Unix ms of its Hello
    uint64_t idle_ms;           //  since its last message
} drv_peer_info_t;

//  One decoded or to-be-encoded command. Only the part named by cmd is used.
typedef struct {
    uint32_t version;           //  sender's protocol version
    uint64_t corr;              //  correlation number
    drv_cmd_t cmd;              //  which body

    struct {
        drv_peer_kind_t kind;           //  client or worker
        uint8_t session [DRV_ID_SIZE];  //  stable peer session id
        const char *name;               //  label for logs
        const char **queues;            //  worker: queues served
        size_t queue_count;             //  number of queues
        uint32_t credit;                //  worker: initial credit
        uint32_t version_min;           //  lowest version spoken
        uint32_t version_max;           //  highest version spoken
    } hello;
    struct {
        uint8_t broker_id [DRV_ID_SIZE];  //  per broker start
        uint32_t version;                 //  chosen version
        uint32_t heartbeat_ms;            //  heartbeat interval
        uint32_t max_payload;             //  payload limit
        uint32_t max_batch;               //  list length limit
        const char *role;                 //  peer key's role
        uint32_t state_port;              //  port of the state PUB socket
        uint32_t max_value;               //  state value limit
    } welcome;
    struct {
        drv_code_t code;            //  what went wrong
        const char *message;        //  text for humans
        uint8_t (*ids) [DRV_ID_SIZE];   //  jobs concerned
        size_t id_count;            //  number of ids
    } error;
    struct {
        bool want_result;           //  Query: include result payloads
        bool watch;                 //  Query: deliver when finished
    } query;
    uint32_t credit;                //  Credit: jobs granted
    struct {
        const char *queue;          //  QueueControl: queue concerned
        drv_queue_action_t action;  //  pause or resume
    } queue_control;
    struct {
        const char *queue;          //  DeadLetter: queue concerned
        drv_dead_action_t action;   //  list, retry or purge
        uint32_t limit;             //  LIST: most entries
    } dead;                         //  (DeadLetter ids are in ids/count)
    struct {
        drv_state_op_t op;          //  StateRequest: operation
        const char *ns;             //  namespace
        const uint8_t *key;         //  key or LIST prefix
        size_t key_size;            //  its length
        uint64_t expect_version;    //  CAS
        int64_t delta;              //  INCR
        uint32_t limit;             //  LIST
    } state;
    struct {
        drv_code_t code;            //  StateReply: outcome
        const char *message;        //  text for humans
        uint64_t seq;               //  namespace sequence reflected
    } state_reply;                  //  (entries in entries/count)
    struct {
        const char *ns;             //  StateUpdate: namespace
        uint64_t seq;               //  its sequence number
        const uint8_t *key;         //  key changed
        size_t key_size;            //  its length
        uint64_t version;           //  new version
        bool deleted;               //  key removed
    } update;
    struct {
        drv_sync_op_t op;           //  SyncRequest: operation
        const char *name;           //  primitive name
        uint32_t timeout_ms;        //  longest wait, 0 = none
        uint32_t count;             //  semaphore permits / barrier parties
    } sync;
    struct {
        drv_code_t code;            //  SyncReply: outcome
        const char *message;        //  text for humans
        uint64_t fence;             //  lock fencing token
        uint32_t value;             //  permits left / barrier generation
    } sync_reply;

    //  List bodies: Submit (specs), SubmitAck (acks), Dispatch (jobs),
    //  Report and Deliver (results), QueryReply (infos), Query and Cancel
    //  (ids), StatsReply (queues), ProgressReport (progress), DeadLetter
    //  (ids). count is the list length.
    size_t count;
    drv_jobspec_t *specs;
    drv_joback_t *acks;
    drv_job_t *jobs;
    drv_result_t *results;
    drv_jobinfo_t *infos;
    uint8_t (*ids) [DRV_ID_SIZE];
    drv_queue_stats_t *queues;
    drv_progress_t *progress;
    drv_state_entry_t *entries;
    struct {
        uint32_t workers;           //  connected workers
        uint32_t clients;           //  connected clients
        uint64_t uptime_ms;         //  since broker start
        uint64_t jobs_stored;       //  jobs held in any state
        drv_peer_info_t *peers;     //  connected peers
        size_t peer_count;          //  entries in peers
    } stats;
} drv_msg_t;

typedef struct _drv_codec_t drv_codec_t;

drv_codec_t *drv_codec_new (void);
void drv_codec_destroy (drv_codec_t **self_p);

//  Decodes an envelope. On success fills *msg (valid until the next decode)
//  and returns 0. On malformed input returns -1 and leaves a reason in
//  drv_codec_error(); msg->corr holds the correlation number if it could be
//  read, else 0.
int drv_codec_decode (drv_codec_t *self, const void *data, size_t size, drv_msg_t *msg);
const char *drv_codec_error (drv_codec_t *self);

//  Encodes msg into a new zmq message in *frame (initialised by this call).
//  Returns 0, or -1 on a programmer error or out of memory.
int drv_codec_encode (drv_codec_t *self, const drv_msg_t *msg, zmq_msg_t *frame);

//  Scratch memory from the codec's arena, for building a message to encode.
//  Freed at the next decode or drv_codec_reset().
void *drv_codec_alloc (drv_codec_t *self, size_t size);
void drv_codec_reset (drv_codec_t *self);

//  Resets msg to an empty command of the given kind at the current version.
void drv_msg_init (drv_msg_t *msg, drv_cmd_t cmd, uint64_t corr);

#endif
