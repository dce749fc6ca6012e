/*  test_state_e2e.c - shared state end to end: a real broker, the SDK.

    The broker actor runs in this process on 127.0.0.1 with ports the OS
    picks (plaintext, in memory, max_value 4096); clients and replicas use
    the public SDK. Covers: two replicas seeing the same changes in the same
    order; a late replica converging; a replica that loses updates (its TCP
    connection to the state PUB socket is cut in the middle of a 20,000-SET
    burst) detecting the gap and resynchronising; CAS and INCR under
    contention from 4 processes (this binary re-executed with --cas-child);
    bad input refused with the documented errors; and a replica over CURVE
    (a second broker with keys).

    usage: test_state_e2e
           test_state_e2e --cas-child ENDPOINT COUNT   (internal)
*/
#define _GNU_SOURCE
#include "broker.h"
#include "drover.h"

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond) do { if (!(cond)) { \
    fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    s_cleanup (); fflush (NULL); _exit (1); } } while (0)

#define TIMEOUT 10000

static char *s_producers;
static unsigned s_state_port;
static drover_client_t *s_client;       //  the writer
static pid_t s_children [4];

static void
s_cleanup (void)
{
    for (int i = 0; i < 4; i++)
        if (s_children [i] > 0)
            kill (s_children [i], SIGKILL);
}

static uint64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static drover_client_t *
s_connect (void)
{
    drover_connect_t cfg = {.endpoint = s_producers, .insecure = true};
    drover_client_t *client = NULL;
    CHECK (drover_client_connect (&cfg, &client) == 0);
    return client;
}

//  Deterministic pseudo-random numbers (xorshift).
static uint32_t
s_rand (uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

//  Recorded changes --------------------------------------------------------

typedef struct {
    uint64_t seq;
    char key [16];
    uint64_t version;
} change_t;

typedef struct {
    drover_replica_t *replica;
    pthread_mutex_t lock;
    change_t *changes;
    size_t count, alloc;
} recorder_t;

//  Watch callback: runs on the replica thread after the change is applied,
//  so drover_replica_seq() is the change's sequence.
static void
s_record (const char *ns, const char *key, const void *value, size_t size,
          uint64_t version, void *arg)
{
    recorder_t *self = (recorder_t *) arg;
    uint64_t seq = drover_replica_seq (self->replica, ns);
    pthread_mutex_lock (&self->lock);
    if (self->count == self->alloc) {
        self->alloc = self->alloc? self->alloc * 2: 1024;
        self->changes = realloc (self->changes, self->alloc * sizeof *self->changes);
        CHECK (self->changes);
    }
    change_t *change = &self->changes [self->count++];
    change->seq = seq;
    snprintf (change->key, sizeof change->key, "%s", key);
    change->version = value? version: 0;
    pthread_mutex_unlock (&self->lock);
}

static void
s_wait_seq (drover_replica_t *replica, const char *ns, uint64_t seq)
{
    uint64_t until = s_now_ms () + TIMEOUT;
    while (drover_replica_seq (replica, ns) < seq && s_now_ms () < until)
        usleep (5000);
    CHECK (drover_replica_seq (replica, ns) == seq);
}

//  Waits (bounded) until the recorder holds at least count changes. A
//  replica's sequence moves before its watchers are told, so a caller that
//  saw the sequence must also wait for the callback before reading counts.
static void
s_wait_recorded (recorder_t *rec, size_t count)
{
    uint64_t until = s_now_ms () + TIMEOUT;
    while (s_now_ms () < until) {
        pthread_mutex_lock (&rec->lock);
        size_t have = rec->count;
        pthread_mutex_unlock (&rec->lock);
        if (have >= count)
            return;
        usleep (5000);
    }
}

//  Checks that the replica holds exactly what the broker lists for ns
//  (keys named by fmt % i, i < nkeys).
static void
s_check_same (drover_replica_t *replica, const char *ns, const char *fmt, int nkeys)
{
    drover_state_entry_t *entries = NULL;
    size_t count = 0;
    CHECK (drover_state_list (s_client, ns, "", &entries, &count, TIMEOUT) == 0);
    size_t found = 0;
    for (int i = 0; i < nkeys; i++) {
        char key [32];
        snprintf (key, sizeof key, fmt, i);
        void *value = NULL;
        size_t size = 0;
        uint64_t version = 0;
        int rc = drover_replica_get (replica, ns, key, &value, &size, &version);
        drover_state_entry_t *entry = NULL;
        for (size_t e = 0; e < count; e++)
            if (strcmp (entries [e].key, key) == 0)
                entry = &entries [e];
        if (entry) {
            found++;
            CHECK (rc == 0);
            CHECK (version == entry->version);
            CHECK (size == entry->size && memcmp (value, entry->value, size) == 0);
        }
        else
            CHECK (rc == DROVER_ENOTFOUND);
        free (value);
    }
    CHECK (found == count);
    drover_state_entries_free (entries, count);
}

//  1. Two replicas see every change in the same order -------------------------

static void
test_same_order (void)
{
    const char *ns = "t1";
    drover_client_t *clients [2] = {s_connect (), s_connect ()};
    recorder_t rec [2];
    for (int r = 0; r < 2; r++) {
        memset (&rec [r], 0, sizeof rec [r]);
        pthread_mutex_init (&rec [r].lock, NULL);
        rec [r].replica = drover_replica_new (clients [r]);
        CHECK (rec [r].replica);
        CHECK (drover_replica_watch (rec [r].replica, ns, "", s_record, &rec [r]) == 0);
        CHECK (drover_replica_track (rec [r].replica, ns, TIMEOUT) == 0);
        CHECK (drover_replica_seq (rec [r].replica, ns) == 0);
    }
    //  A subscription reaches the broker a little after track() returns;
    //  an update published before it lands is caught up by a snapshot, which
    //  reports the net change, not each step. One warm-up change seen by
    //  both replicas proves both subscriptions are in place; recording
    //  starts after it, at seq 2
    CHECK (drover_state_set (s_client, ns, "key00", "warm-up", 7, NULL, TIMEOUT) == 0);
    for (int r = 0; r < 2; r++) {
        s_wait_seq (rec [r].replica, ns, 1);
        s_wait_recorded (&rec [r], 1);
        pthread_mutex_lock (&rec [r].lock);
        rec [r].count = 0;
        pthread_mutex_unlock (&rec [r].lock);
    }
    //  500 SETs and DELs over 50 keys; the writer notes what it did
    change_t expect [500];
    size_t changes = 0;
    uint32_t rnd = 12345;
    for (int i = 0; i < 500; i++) {
        char key [16], value [32];
        snprintf (key, sizeof key, "key%02u", s_rand (&rnd) % 50);
        if (s_rand (&rnd) % 10 < 7) {
            int size = snprintf (value, sizeof value, "value-%d", i);
            uint64_t version = 0;
            CHECK (drover_state_set (s_client, ns, key, value, (size_t) size, &version, TIMEOUT) == 0);
            CHECK (version >= 1);
            expect [changes] = (change_t) {changes + 2, "", version};
        }
        else {
            int rc = drover_state_del (s_client, ns, key, TIMEOUT);
            CHECK (rc == 0 || rc == DROVER_ENOTFOUND);
            if (rc)
                continue;       //  nothing changed, nothing published
            expect [changes] = (change_t) {changes + 2, "", 0};
        }
        snprintf (expect [changes].key, sizeof expect [changes].key, "%s", key);
        changes++;
    }
    for (int r = 0; r < 2; r++) {
        s_wait_seq (rec [r].replica, ns, changes + 1);
        s_wait_recorded (&rec [r], changes);
    }
    for (int r = 0; r < 2; r++) {
        pthread_mutex_lock (&rec [r].lock);
        CHECK (rec [r].count == changes);
        for (size_t i = 0; i < changes; i++) {
            CHECK (rec [r].changes [i].seq == expect [i].seq);
            CHECK (strcmp (rec [r].changes [i].key, expect [i].key) == 0);
            CHECK (rec [r].changes [i].version == expect [i].version);
        }
        pthread_mutex_unlock (&rec [r].lock);
        s_check_same (rec [r].replica, ns, "key%02d", 50);
    }
    CHECK (memcmp (rec [0].changes, rec [1].changes, changes * sizeof (change_t)) == 0);
    for (int r = 0; r < 2; r++) {
        drover_replica_destroy (&rec [r].replica);
        free (rec [r].changes);
        pthread_mutex_destroy (&rec [r].lock);
        drover_client_destroy (&clients [r]);
    }
    printf ("  %zu changes seen identically by both replicas\n", changes);
}

//  2. A late replica converges ------------------------------------------------

static void
test_late_join (void)
{
    const char *ns = "t2";
    uint32_t rnd = 777;
    for (int i = 0; i < 300; i++) {
        char key [16], value [32];
        snprintf (key, sizeof key, "key%02u", s_rand (&rnd) % 50);
        int size = snprintf (value, sizeof value, "late-%d", i);
        if (i % 5 == 4)
            {
            int rc = drover_state_del (s_client, ns, key, TIMEOUT);
            CHECK (rc == 0 || rc == DROVER_ENOTFOUND);
        }
        else
            CHECK (drover_state_set (s_client, ns, key, value, (size_t) size, NULL, TIMEOUT) == 0);
    }
    drover_client_t *client = s_connect ();
    drover_replica_t *replica = drover_replica_new (client);
    CHECK (replica);
    CHECK (drover_replica_track (replica, ns, TIMEOUT) == 0);
    CHECK (drover_replica_seq (replica, ns) >= 240);    //  at least the 240 SETs
    for (int i = 0; i < 50; i++) {
        char key [16];
        snprintf (key, sizeof key, "key%02d", i);
        void *want = NULL, *have = NULL;
        size_t want_size = 0, have_size = 0;
        uint64_t want_version = 0, have_version = 0;
        int want_rc = drover_state_get (s_client, ns, key, &want, &want_size, &want_version, TIMEOUT);
        int have_rc = drover_replica_get (replica, ns, key, &have, &have_size, &have_version);
        CHECK (want_rc == 0 || want_rc == DROVER_ENOTFOUND);
        CHECK (have_rc == want_rc);
        if (want_rc == 0) {
            CHECK (have_version == want_version);
            CHECK (have_size == want_size && memcmp (have, want, want_size) == 0);
        }
        free (want);
        free (have);
    }
    //  And it follows from there
    uint64_t seq = drover_replica_seq (replica, ns);
    CHECK (drover_state_set (s_client, ns, "key50", "x", 1, NULL, TIMEOUT) == 0);
    s_wait_seq (replica, ns, seq + 1);
    s_check_same (replica, ns, "key%02d", 51);
    drover_replica_destroy (&replica);
    drover_client_destroy (&client);
}

//  3. Gap detection -------------------------------------------------------------

typedef struct {
    drover_replica_t *replica;
    atomic_bool slow;           //  sleep a little per change (a slow consumer)
    atomic_uint_fast64_t calls;
    atomic_uint_fast64_t jumps; //  changes whose seq skipped ahead: a resnapshot
    uint64_t last_seq;          //  replica thread only
} gap_t;

static void
s_gap_watch (const char *ns, const char *key, const void *value, size_t size,
             uint64_t version, void *arg)
{
    gap_t *self = (gap_t *) arg;
    uint64_t seq = drover_replica_seq (self->replica, ns);
    if (self->last_seq && seq > self->last_seq + 1)
        atomic_fetch_add (&self->jumps, 1);
    self->last_seq = seq;
    atomic_fetch_add (&self->calls, 1);
    if (atomic_load (&self->slow))
        usleep (50);
}

//  Cuts this process's TCP connections to the broker's state port (the
//  replica's SUB side): the PUB drops what it queued for us, ZeroMQ
//  reconnects and resubscribes, and the updates in between are lost.
//  Returns how many connections were cut.
static int
s_cut_state_connections (void)
{
    unsigned long inodes [16];
    int inode_count = 0;
    const char *tables [] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (int t = 0; t < 2; t++) {
        FILE *file = fopen (tables [t], "r");
        if (!file)
            continue;
        char line [512];
        if (!fgets (line, sizeof line, file)) {}     //  header
        while (fgets (line, sizeof line, file) && inode_count < 16) {
            char local [64], remote [64];
            unsigned state;
            unsigned long inode;
            if (sscanf (line, "%*s %63s %63s %x %*s %*s %*s %*s %*s %lu",
                        local, remote, &state, &inode) != 4)
                continue;
            const char *colon = strrchr (remote, ':');
            if (state == 1 && colon && strtoul (colon + 1, NULL, 16) == s_state_port)
                inodes [inode_count++] = inode;
        }
        fclose (file);
    }
    int cut = 0;
    DIR *dir = opendir ("/proc/self/fd");
    CHECK (dir);
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        char path [300], link [64];
        snprintf (path, sizeof path, "/proc/self/fd/%s", entry->d_name);
        ssize_t size = readlink (path, link, sizeof link - 1);
        if (size <= 0)
            continue;
        link [size] = 0;
        unsigned long inode;
        if (sscanf (link, "socket:[%lu]", &inode) != 1)
            continue;
        for (int i = 0; i < inode_count; i++)
            if (inodes [i] == inode && shutdown (atoi (entry->d_name), SHUT_RDWR) == 0)
                cut++;
    }
    closedir (dir);
    return cut;
}

typedef struct {
    int first, count;
    atomic_int *done;
} burst_t;

static void *
s_burst (void *arg)
{
    burst_t *self = (burst_t *) arg;
    char value [256];
    for (int i = self->first; i < self->first + self->count; i++) {
        char key [16];
        snprintf (key, sizeof key, "k%03d", i % 100);
        memset (value, 'a' + i % 26, sizeof value);
        snprintf (value, sizeof value, "burst-%d", i);
        CHECK (drover_state_set (s_client, "t3", key, value, sizeof value, NULL, TIMEOUT) == 0);
        atomic_fetch_add (self->done, 1);
    }
    return NULL;
}

static void
test_gap (void)
{
    const char *ns = "t3";
    drover_client_t *client = s_connect ();
    gap_t gap;
    memset (&gap, 0, sizeof gap);
    gap.replica = drover_replica_new (client);
    CHECK (gap.replica);
    CHECK (drover_replica_watch (gap.replica, ns, "", s_gap_watch, &gap) == 0);
    CHECK (drover_replica_track (gap.replica, ns, TIMEOUT) == 0);
    atomic_store (&gap.slow, true);

    enum { THREADS = 4, TOTAL = 20000 };
    atomic_int done = 0;
    burst_t bursts [THREADS];
    pthread_t threads [THREADS];
    uint64_t start = s_now_ms ();
    for (int t = 0; t < THREADS; t++) {
        bursts [t] = (burst_t) {t * (TOTAL / THREADS), TOTAL / THREADS, &done};
        CHECK (pthread_create (&threads [t], NULL, s_burst, &bursts [t]) == 0);
    }
    //  Cut the subscriber at a third, two thirds and the very end of the
    //  burst (the last cut makes the replica lose its tail while the
    //  namespace then stays quiet)
    int cuts = 0;
    for (int mark = TOTAL / 3; mark < TOTAL; mark += TOTAL / 3) {
        while (atomic_load (&done) < mark)
            usleep (1000);
        cuts += s_cut_state_connections ();
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join (threads [t], NULL);
    uint64_t burst_ms = s_now_ms () - start;
    atomic_store (&gap.slow, false);
    CHECK (cuts >= 2);

    //  No more writes: the broker's once-a-heartbeat sequence beacon must
    //  tell the replica it lost the tail of the burst, and it resnapshots
    //  by itself (every SET was a change: the namespace is at TOTAL)
    uint64_t until = s_now_ms () + 10000;
    while (drover_replica_seq (gap.replica, ns) != TOTAL && s_now_ms () < until)
        usleep (10000);
    CHECK (drover_replica_seq (gap.replica, ns) == TOTAL);
    s_check_same (gap.replica, ns, "k%03d", 101);
    //  It resnapshotted (watchers hear of a snapshot just after its seq
    //  shows, so give the last one a moment)
    until = s_now_ms () + TIMEOUT;
    while (atomic_load (&gap.jumps) == 0 && s_now_ms () < until)
        usleep (5000);
    CHECK (atomic_load (&gap.jumps) >= 1);
    printf ("  %d SETs in %llu ms, %d connection cut(s), %llu callbacks "
            "(updates lost), %llu seq jump(s) from resnapshots\n",
            TOTAL, (unsigned long long) burst_ms, cuts,
            (unsigned long long) atomic_load (&gap.calls),
            (unsigned long long) atomic_load (&gap.jumps));
    drover_replica_destroy (&gap.replica);
    drover_client_destroy (&client);
}

//  4. CAS and INCR under contention from 4 processes ----------------------------

static int
s_cas_child (const char *endpoint, int count)
{
    drover_connect_t cfg = {.endpoint = endpoint, .insecure = true};
    drover_client_t *client = NULL;
    if (drover_client_connect (&cfg, &client)) {
        fprintf (stderr, "cas child: cannot connect\n");
        return 1;
    }
    uint64_t conflicts = 0;
    for (int i = 0; i < count; i++) {
        while (true) {
            void *value = NULL;
            uint64_t version = 0;
            long long current = 0;
            int rc = drover_state_get (client, "cas", "cas", &value, NULL, &version, TIMEOUT);
            if (rc == 0)
                current = atoll ((const char *) value);
            else
            if (rc != DROVER_ENOTFOUND) {
                fprintf (stderr, "cas child: get: %s\n", drover_strerror (rc));
                return 1;
            }
            free (value);
            char next [32];
            int size = snprintf (next, sizeof next, "%lld", current + 1);
            rc = drover_state_cas (client, "cas", "cas", version, next, (size_t) size, NULL, TIMEOUT);
            if (rc == 0)
                break;
            if (rc != DROVER_ECONFLICT) {
                fprintf (stderr, "cas child: cas: %s\n", drover_strerror (rc));
                return 1;
            }
            conflicts++;
        }
        int rc = drover_state_incr (client, "cas", "incr", 1, NULL, TIMEOUT);
        if (rc) {
            fprintf (stderr, "cas child: incr: %s\n", drover_strerror (rc));
            return 1;
        }
    }
    printf ("%" PRIu64 "\n", conflicts);
    fflush (stdout);
    drover_client_destroy (&client);
    return 0;
}

static void
test_cas_processes (void)
{
    enum { CHILDREN = 4, EACH = 2500 };
    int pipes [CHILDREN];
    uint64_t start = s_now_ms ();
    for (int c = 0; c < CHILDREN; c++) {
        int fds [2];
        CHECK (pipe (fds) == 0);
        char count [16];
        snprintf (count, sizeof count, "%d", EACH);
        char *argv [] = {"test_state_e2e", "--cas-child", s_producers, count, NULL};
        //  This process has threads (broker, clients): the child only execs
        pid_t pid = fork ();
        CHECK (pid >= 0);
        if (pid == 0) {
            dup2 (fds [1], 1);
            close (fds [0]);
            close (fds [1]);
            execv ("/proc/self/exe", argv);
            _exit (127);
        }
        close (fds [1]);
        pipes [c] = fds [0];
        s_children [c] = pid;
    }
    uint64_t conflicts [CHILDREN], total = 0;
    for (int c = 0; c < CHILDREN; c++) {
        char text [64];
        size_t have = 0;
        ssize_t got;
        while (have < sizeof text - 1 && (got = read (pipes [c], text + have, sizeof text - 1 - have)) > 0)
            have += (size_t) got;
        text [have] = 0;
        close (pipes [c]);
        CHECK (have > 0);
        conflicts [c] = strtoull (text, NULL, 10);
        total += conflicts [c];
    }
    uint64_t until = s_now_ms () + 30000;
    for (int c = 0; c < CHILDREN; c++) {
        int status = -1;
        while (waitpid (s_children [c], &status, WNOHANG) != s_children [c]) {
            CHECK (s_now_ms () < until);
            usleep (10000);
        }
        s_children [c] = 0;
        CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    }
    uint64_t elapsed = s_now_ms () - start;
    void *value = NULL;
    CHECK (drover_state_get (s_client, "cas", "cas", &value, NULL, NULL, TIMEOUT) == 0);
    CHECK (strcmp ((char *) value, "10000") == 0);
    free (value);
    int64_t counter = 0;
    CHECK (drover_state_incr (s_client, "cas", "incr", 0, &counter, TIMEOUT) == 0);
    CHECK (counter == CHILDREN * EACH);
    CHECK (total > 0);
    printf ("  counters 10000/10000 in %llu ms; CAS conflicts per child: %llu %llu %llu %llu\n",
            (unsigned long long) elapsed, (unsigned long long) conflicts [0],
            (unsigned long long) conflicts [1], (unsigned long long) conflicts [2],
            (unsigned long long) conflicts [3]);
}

//  5. Bad input -----------------------------------------------------------------

static void
test_bad_input (void)
{
    const char *ns = "t5";
    char key [1100];
    memset (key, 'k', sizeof key);
    key [1024] = 0;
    CHECK (drover_state_set (s_client, ns, key, "v", 1, NULL, TIMEOUT) == 0);  //  1024: fine
    key [1025] = 0;
    key [1024] = 'k';
    CHECK (drover_state_set (s_client, ns, key, "v", 1, NULL, TIMEOUT) == DROVER_ETOOLARGE);
    CHECK (drover_state_get (s_client, ns, key, NULL, NULL, NULL, TIMEOUT) == DROVER_ETOOLARGE);
    static char big [4097];
    memset (big, 'v', sizeof big);
    CHECK (drover_state_set (s_client, ns, "big", big, 4096, NULL, TIMEOUT) == 0);
    CHECK (drover_state_set (s_client, ns, "big", big, 4097, NULL, TIMEOUT) == DROVER_ETOOLARGE);
    CHECK (drover_state_cas (s_client, ns, "big", 1, big, 4097, NULL, TIMEOUT) == DROVER_ETOOLARGE);
    size_t size = 0;
    CHECK (drover_state_get (s_client, ns, "big", NULL, &size, NULL, TIMEOUT) == 0);
    CHECK (size == 4096);

    CHECK (drover_state_get (s_client, ns, "missing", NULL, NULL, NULL, TIMEOUT) == DROVER_ENOTFOUND);
    CHECK (drover_state_get (s_client, "no-such-ns", "k", NULL, NULL, NULL, TIMEOUT) == DROVER_ENOTFOUND);
    CHECK (drover_state_del (s_client, ns, "missing", TIMEOUT) == DROVER_ENOTFOUND);
    uint64_t version = 99;
    CHECK (drover_state_cas (s_client, ns, "missing", 5, "x", 1, &version, TIMEOUT) == DROVER_ECONFLICT);
    CHECK (version == 0);
    CHECK (drover_state_get (s_client, ns, "missing", NULL, NULL, NULL, TIMEOUT) == DROVER_ENOTFOUND);
    CHECK (drover_state_set (s_client, ns, "text", "abc", 3, NULL, TIMEOUT) == 0);
    CHECK (drover_state_incr (s_client, ns, "text", 1, NULL, TIMEOUT) == DROVER_EINVAL);
    void *value = NULL;
    CHECK (drover_state_get (s_client, ns, "text", &value, NULL, &version, TIMEOUT) == 0);
    CHECK (strcmp ((char *) value, "abc") == 0 && version == 1);
    free (value);
    CHECK (drover_state_get (s_client, "bad ns!", "k", NULL, NULL, NULL, TIMEOUT) == DROVER_EINVAL);
    CHECK (drover_state_set (s_client, ns, "", "v", 1, NULL, TIMEOUT) == DROVER_EINVAL);
}

//  6. CURVE: the state PUB socket authenticates subscribers too ----------------

static void
s_make_cert (const char *dir, const char *name, const char *role, bool allow)
{
    zcert_t *cert = zcert_new ();
    CHECK (cert);
    zcert_set_meta (cert, "role", "%s", role);
    char path [512];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    CHECK (zcert_save (cert, path) == 0);
    if (allow) {
        snprintf (path, sizeof path, "%s/allow/%s", dir, name);
        CHECK (zcert_save_public (cert, path) == 0);
    }
    zcert_destroy (&cert);
}

static void
test_curve (void)
{
    char dir [] = "/tmp/drover-test-state-e2e-XXXXXX";
    CHECK (mkdtemp (dir));
    char allow [512], server_secret [512], server_public [512], client_secret [512];
    snprintf (allow, sizeof allow, "%s/allow", dir);
    CHECK (zsys_dir_create ("%s", allow) == 0);
    s_make_cert (dir, "server", "broker", false);
    s_make_cert (dir, "client", "producer", true);
    snprintf (server_secret, sizeof server_secret, "%s/server_secret", dir);
    snprintf (server_public, sizeof server_public, "%s/server", dir);
    snprintf (client_secret, sizeof client_secret, "%s/client_secret", dir);

    broker_config_t config;
    broker_config_defaults (&config);
    config.producers = "tcp://127.0.0.1:*";
    config.workers = "tcp://127.0.0.1:*";
    config.cert = server_secret;
    config.allow = allow;
    config.data_dir = dir;
    config.in_memory = true;
    zactor_t *broker = broker_start (&config);
    CHECK (broker);
    char *producers, *workers;
    CHECK (broker_endpoints (broker, &producers, &workers) == 0);
    drover_connect_t cfg = {.endpoint = producers, .server_key = server_public,
                            .cert = client_secret};
    drover_client_t *writer = NULL, *reader = NULL;
    CHECK (drover_client_connect (&cfg, &writer) == 0);
    CHECK (drover_client_connect (&cfg, &reader) == 0);
    CHECK (drover_state_set (writer, "sec", "a", "1", 1, NULL, TIMEOUT) == 0);
    drover_replica_t *replica = drover_replica_new (reader);
    CHECK (replica);
    CHECK (drover_replica_track (replica, "sec", TIMEOUT) == 0);
    CHECK (drover_replica_seq (replica, "sec") == 1);
    //  Updates come over the CURVE subscriber
    for (int i = 0; i < 100; i++) {
        char value [16];
        int size = snprintf (value, sizeof value, "%d", i);
        CHECK (drover_state_set (writer, "sec", "b", value, (size_t) size, NULL, TIMEOUT) == 0);
    }
    s_wait_seq (replica, "sec", 101);
    void *value = NULL;
    uint64_t version = 0;
    CHECK (drover_replica_get (replica, "sec", "b", &value, NULL, &version) == 0);
    CHECK (strcmp ((char *) value, "99") == 0 && version == 100);
    free (value);
    drover_replica_destroy (&replica);
    drover_client_destroy (&reader);
    drover_client_destroy (&writer);
    zactor_destroy (&broker);
    zstr_free (&producers);
    zstr_free (&workers);
    char cmd [600];
    snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
    if (system (cmd)) {}
}

int
main (int argc, char *argv [])
{
    if (argc == 4 && strcmp (argv [1], "--cas-child") == 0)
        return s_cas_child (argv [2], atoi (argv [3]));
    if (argc != 1) {
        fprintf (stderr, "usage: test_state_e2e\n");
        return 2;
    }
    alarm (110);
    zsys_init ();
    broker_config_t config;
    broker_config_defaults (&config);
    config.producers = "tcp://127.0.0.1:*";
    config.workers = "tcp://127.0.0.1:*";
    config.insecure = true;
    config.in_memory = true;
    config.max_value = 4096;
    zactor_t *broker = broker_start (&config);
    CHECK (broker);
    char *workers = NULL, *state = NULL;
    CHECK (broker_endpoints (broker, &s_producers, &workers) == 0);
    CHECK (broker_state_endpoint (broker, &state) == 0);
    const char *colon = strrchr (state, ':');
    CHECK (colon);
    s_state_port = (unsigned) atoi (colon + 1);
    s_client = s_connect ();

    struct { const char *name; void (*fn) (void); } cases [] = {
        {"same_order", test_same_order},
        {"late_join", test_late_join},
        {"gap", test_gap},
        {"cas_processes", test_cas_processes},
        {"bad_input", test_bad_input},
        {"curve", test_curve},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        uint64_t start = s_now_ms ();
        cases [i].fn ();
        printf ("%-24s ok (%llu ms)\n", cases [i].name,
                (unsigned long long) (s_now_ms () - start));
        fflush (stdout);
    }
    drover_client_destroy (&s_client);
    zactor_destroy (&broker);
    zstr_free (&s_producers);
    zstr_free (&workers);
    zstr_free (&state);
    return 0;
}
