/*  test_sdk_state.c - shared state against a fake broker: every
    drover_state_* call and its error mapping, local size checks, and the
    replica: snapshot then updates, updates at or below the snapshot's
    sequence dropped, a sequence gap (skipped or missed publications) and a
    broker restart each healed by a fresh snapshot, watch callbacks in
    order with prefix filtering.  */
#include "fake_broker.h"
#include "drover.h"

static drover_client_t *
s_connect (fb_t *fb)
{
    drover_connect_t cfg = {0};
    cfg.endpoint = fb->endpoint;
    cfg.insecure = true;
    cfg.timeout_ms = 2000;
    drover_client_t *client = NULL;
    assert (drover_client_connect (&cfg, &client) == 0);
    return client;
}

static void
test_calls (fb_t *fb)
{
    drover_client_t *client = s_connect (fb);
    uint64_t version = 0;
    void *value = NULL;
    size_t size = 0;

    assert (drover_state_set (client, "ns", "k", "v1", 2, &version, 2000) == 0);
    assert (version == 1);
    assert (drover_state_set (client, "ns", "k", "value2", 6, &version, 2000) == 0);
    assert (version == 2);
    assert (drover_state_get (client, "ns", "k", &value, &size, &version, 2000) == 0);
    assert (size == 6 && strcmp (value, "value2") == 0 && version == 2);
    free (value);
    //  Empty value, NULL outputs
    assert (drover_state_set (client, "ns", "empty", NULL, 0, NULL, 2000) == 0);
    assert (drover_state_get (client, "ns", "empty", &value, &size, NULL, 2000) == 0);
    assert (size == 0 && strcmp (value, "") == 0);
    free (value);
    assert (drover_state_get (client, "ns", "empty", NULL, NULL, NULL, 2000) == 0);

    //  Missing keys
    assert (drover_state_get (client, "ns", "missing", &value, &size, &version, 2000) == DROVER_ENOTFOUND);
    assert (drover_state_del (client, "ns", "missing", 2000) == DROVER_ENOTFOUND);
    assert (drover_state_get (client, "other", "k", NULL, NULL, NULL, 2000) == DROVER_ENOTFOUND);
    assert (drover_state_del (client, "ns", "empty", 2000) == 0);
    assert (drover_state_get (client, "ns", "empty", NULL, NULL, NULL, 2000) == DROVER_ENOTFOUND);

    //  CAS
    assert (drover_state_cas (client, "ns", "c", 0, "a", 1, &version, 2000) == 0);
    assert (version == 1);
    assert (drover_state_cas (client, "ns", "c", 0, "b", 1, &version, 2000) == DROVER_ECONFLICT);
    assert (version == 1);
    assert (drover_state_cas (client, "ns", "c", 7, "b", 1, &version, 2000) == DROVER_ECONFLICT);
    assert (version == 1);
    assert (drover_state_cas (client, "ns", "c", 1, "b", 1, &version, 2000) == 0);
    assert (version == 2);
    assert (drover_state_cas (client, "ns", "nokey", 3, "b", 1, &version, 2000) == DROVER_ECONFLICT);
    assert (version == 0);
    assert (strcmp (drover_strerror (DROVER_ECONFLICT), "unknown error") != 0);

    //  INCR
    int64_t counter = 0;
    assert (drover_state_incr (client, "ns", "n", 5, &counter, 2000) == 0);
    assert (counter == 5);
    assert (drover_state_incr (client, "ns", "n", -7, &counter, 2000) == 0);
    assert (counter == -2);
    assert (drover_state_incr (client, "ns", "n", 2, NULL, 2000) == 0);
    assert (drover_state_get (client, "ns", "n", &value, &size, NULL, 2000) == 0);
    assert (strcmp (value, "0") == 0);
    free (value);
    assert (drover_state_incr (client, "ns", "k", 1, &counter, 2000) == DROVER_EINVAL);

    //  LIST, in key order, by prefix
    assert (drover_state_set (client, "ls", "b/2", "B2", 2, NULL, 2000) == 0);
    assert (drover_state_set (client, "ls", "a/1", "A1", 2, NULL, 2000) == 0);
    assert (drover_state_set (client, "ls", "b/1", "B1", 2, NULL, 2000) == 0);
    drover_state_entry_t *entries = NULL;
    size_t count = 0;
    assert (drover_state_list (client, "ls", "", &entries, &count, 2000) == 0);
    assert (count == 3);
    assert (strcmp (entries [0].key, "a/1") == 0 && strcmp (entries [1].key, "b/1") == 0);
    assert (strcmp (entries [2].key, "b/2") == 0 && strcmp (entries [2].value, "B2") == 0);
    assert (entries [2].size == 2 && entries [2].version == 1);
    drover_state_entries_free (entries, count);
    assert (drover_state_list (client, "ls", "b/", &entries, &count, 2000) == 0);
    assert (count == 2 && strcmp (entries [0].key, "b/1") == 0);
    drover_state_entries_free (entries, count);
    assert (drover_state_list (client, "ls", "zzz", &entries, &count, 2000) == 0);
    assert (count == 0 && entries);
    drover_state_entries_free (entries, count);
    assert (drover_state_list (client, "ls", NULL, &entries, &count, 2000) == 0);
    assert (count == 3);
    drover_state_entries_free (entries, count);
    drover_state_entries_free (NULL, 0);

    //  Refusals: denied namespace, bad names, sizes (checked locally)
    assert (drover_state_get (client, "secret", "k", NULL, NULL, NULL, 2000) == DROVER_EDENIED);
    assert (drover_state_set (client, "bad name", "k", "v", 1, NULL, 2000) == DROVER_EINVAL);
    assert (drover_state_get (client, "ns", "", NULL, NULL, NULL, 2000) == DROVER_EINVAL);
    assert (drover_state_get (NULL, "ns", "k", NULL, NULL, NULL, 2000) == DROVER_EINVAL);
    assert (drover_state_list (client, "ns", "", NULL, &count, 2000) == DROVER_EINVAL);
    int before = FB_GET (fb, state_requests);
    char *big_key = malloc (1026);
    memset (big_key, 'k', 1025);
    big_key [1025] = 0;
    assert (drover_state_set (client, "ns", big_key, "v", 1, NULL, 2000) == DROVER_ETOOLARGE);
    big_key [1024] = 0;
    assert (drover_state_set (client, "ns", big_key, "v", 1, NULL, 2000) == 0);
    free (big_key);
    size_t big_size = (1 << 20) + 1;
    char *big_value = calloc (1, big_size);
    assert (drover_state_set (client, "ns", "big", big_value, big_size, NULL, 2000) == DROVER_ETOOLARGE);
    assert (drover_state_cas (client, "ns", "big", 0, big_value, big_size, NULL, 2000) == DROVER_ETOOLARGE);
    assert (drover_state_set (client, "ns", "big", big_value, big_size - 1, NULL, 2000) == 0);
    free (big_value);
    assert (FB_GET (fb, state_requests) == before + 2);
    drover_client_destroy (&client);
}

//  Watch log -------------------------------------------------------------

typedef struct {
    pthread_mutex_t lock;
    char lines [256][160];
    int count;
    drover_replica_t *replica;
} log_t;

static void
s_watch (const char *ns, const char *key, const void *value, size_t size, uint64_t version, void *arg)
{
    log_t *log = (log_t *) arg;
    uint64_t seq = drover_replica_seq (log->replica, ns);
    pthread_mutex_lock (&log->lock);
    if (log->count < 256)
        snprintf (log->lines [log->count++], 160, "%llu %s %llu %s", (unsigned long long) seq, key,
                  (unsigned long long) version, value? (const char *) value: "(deleted)");
    assert (!value || strlen (value) == size);
    pthread_mutex_unlock (&log->lock);
}

static int
s_log_count (log_t *log)
{
    pthread_mutex_lock (&log->lock);
    int count = log->count;
    pthread_mutex_unlock (&log->lock);
    return count;
}

static bool
s_replica_has (drover_replica_t *replica, const char *ns, const char *key, const char *want)
{
    void *value = NULL;
    int rc = drover_replica_get (replica, ns, key, &value, NULL, NULL);
    bool same = want? rc == 0 && strcmp (value, want) == 0: rc == DROVER_ENOTFOUND;
    free (value);
    return same;
}

static void
test_replica (fb_t *fb)
{
    drover_client_t *client = s_connect (fb);
    assert (drover_state_set (client, "r", "a1", "first", 5, NULL, 2000) == 0);
    assert (drover_state_set (client, "r", "b1", "x", 1, NULL, 2000) == 0);
    assert (drover_state_set (client, "r", "a1", "second", 6, NULL, 2000) == 0);
    FB_SET (fb, snapshots, 0);

    drover_replica_t *replica = drover_replica_new (client);
    assert (replica);
    log_t all = {.lock = PTHREAD_MUTEX_INITIALIZER, .replica = replica};
    log_t only_a = {.lock = PTHREAD_MUTEX_INITIALIZER, .replica = replica};
    assert (drover_replica_watch (replica, "r", NULL, s_watch, &all) == 0);
    assert (drover_replica_watch (replica, "r", "a", s_watch, &only_a) == 0);
    assert (drover_replica_watch (replica, "bad name", "a", s_watch, &only_a) == DROVER_EINVAL);

    //  Not tracked yet
    assert (drover_replica_get (replica, "r", "a1", NULL, NULL, NULL) == DROVER_EINVAL);
    assert (drover_replica_seq (replica, "r") == 0);

    //  Two changes race the snapshot: the subscriber gets them too, at or
    //  below the snapshot's sequence, and must drop them
    FB_SET (fb, snapshot_races, 2);
    assert (drover_replica_track (replica, "r", 2000) == 0);
    assert (drover_replica_track (replica, "r", 2000) == 0);
    assert (drover_replica_seq (replica, "r") == 5);
    void *value = NULL;
    size_t size = 0;
    uint64_t version = 0;
    assert (drover_replica_get (replica, "r", "a1", &value, &size, &version) == 0);
    assert (size == 6 && strcmp (value, "second") == 0 && version == 2);
    free (value);
    assert (s_replica_has (replica, "r", "race", "x"));
    assert (drover_replica_get (replica, "r", "nope", NULL, NULL, NULL) == DROVER_ENOTFOUND);

    //  Live updates, in order, through the prefix filter
    assert (drover_state_set (client, "r", "a2", "A2", 2, NULL, 2000) == 0);
    assert (drover_state_set (client, "r", "b2", "B2", 2, NULL, 2000) == 0);
    assert (drover_state_del (client, "r", "a1", 2000) == 0);
    int64_t counter;
    assert (drover_state_incr (client, "r", "a3", 3, &counter, 2000) == 0);
    WAIT_FOR (drover_replica_seq (replica, "r") == 9, 3000);
    assert (drover_replica_seq (replica, "r") == 9);
    WAIT_FOR (s_log_count (&all) == 4, 3000);
    usleep (100 * 1000);
    //  The racing updates fired nothing and cost no second snapshot
    assert (s_log_count (&all) == 4);
    assert (FB_GET (fb, snapshots) == 1);
    assert (strcmp (all.lines [0], "6 a2 1 A2") == 0);
    assert (strcmp (all.lines [1], "7 b2 1 B2") == 0);
    assert (strcmp (all.lines [2], "8 a1 0 (deleted)") == 0);
    assert (strcmp (all.lines [3], "9 a3 1 3") == 0);
    assert (s_log_count (&only_a) == 3);
    assert (strcmp (only_a.lines [0], "6 a2 1 A2") == 0);
    assert (strcmp (only_a.lines [1], "8 a1 0 (deleted)") == 0);
    assert (strcmp (only_a.lines [2], "9 a3 1 3") == 0);
    assert (s_replica_has (replica, "r", "a1", NULL));
    assert (s_replica_has (replica, "r", "a3", "3"));

    //  A skipped sequence number: the replica takes a fresh snapshot
    FB_SET (fb, skip_seq, 1);
    assert (drover_state_set (client, "r", "b1", "y", 1, NULL, 2000) == 0);
    WAIT_FOR (FB_GET (fb, snapshots) == 2, 3000);
    assert (FB_GET (fb, snapshots) == 2);
    WAIT_FOR (drover_replica_seq (replica, "r") == 11, 3000);
    assert (drover_replica_seq (replica, "r") == 11);
    assert (s_replica_has (replica, "r", "b1", "y"));
    //  The change came through the snapshot's difference
    WAIT_FOR (s_log_count (&all) == 5, 3000);
    assert (strcmp (all.lines [4], "11 b1 2 y") == 0);

    //  Missed publications show at the next one: resynchronised, and
    //  watchers hear of the missed change too
    FB_SET (fb, drop_pubs, 2);
    assert (drover_state_set (client, "r", "a4", "lost", 4, NULL, 2000) == 0);
    assert (drover_state_del (client, "r", "b2", 2000) == 0);
    assert (drover_state_set (client, "r", "b3", "seen", 4, NULL, 2000) == 0);
    WAIT_FOR (FB_GET (fb, snapshots) == 3, 3000);
    assert (FB_GET (fb, snapshots) == 3);
    WAIT_FOR (drover_replica_seq (replica, "r") == 14, 3000);
    assert (s_replica_has (replica, "r", "a4", "lost"));
    assert (s_replica_has (replica, "r", "b2", NULL));
    assert (s_replica_has (replica, "r", "b3", "seen"));
    WAIT_FOR (s_log_count (&all) == 8, 3000);
    assert (s_log_count (&all) == 8);
    WAIT_FOR (s_log_count (&only_a) == 4, 3000);
    assert (strcmp (only_a.lines [3], "14 a4 1 lost") == 0);

    //  A second namespace on the same replica; a late replica converges
    assert (drover_state_set (client, "s", "k", "v", 1, NULL, 2000) == 0);
    assert (drover_replica_track (replica, "s", 2000) == 0);
    assert (s_replica_has (replica, "s", "k", "v"));
    assert (drover_replica_seq (replica, "s") == 1);
    drover_replica_t *late = drover_replica_new (client);
    assert (late);
    assert (drover_replica_track (late, "r", 2000) == 0);
    assert (drover_replica_seq (late, "r") == 14);
    assert (s_replica_has (late, "r", "b3", "seen"));
    assert (drover_replica_track (late, "bad name", 2000) == DROVER_EINVAL);
    assert (drover_replica_track (late, "secret", 2000) == DROVER_EDENIED);
    drover_replica_destroy (&late);
    assert (late == NULL);

    //  A broker restart that lost its state: new broker id, sequences
    //  from 1 again. The client re-hellos and the replica starts over.
    pthread_mutex_lock (&fb->lock);
    for (size_t i = 0; i < fb->kv_count; i++) {
        free (fb->kv [i].key);
        free (fb->kv [i].value);
    }
    fb->kv_count = 0;
    fb->seq_count = 0;
    fb->broker_id_byte = 8;
    fb->forget = true;
    pthread_mutex_unlock (&fb->lock);
    //  The first request meets REHELLO and goes again after the Welcome
    assert (drover_state_set (client, "r", "fresh", "1", 1, NULL, 3000) == 0);
    WAIT_FOR (s_replica_has (replica, "r", "b3", NULL) && s_replica_has (replica, "r", "fresh", "1"), 3000);
    assert (s_replica_has (replica, "r", "b3", NULL));
    assert (s_replica_has (replica, "r", "fresh", "1"));
    assert (drover_replica_seq (replica, "r") == 1);
    WAIT_FOR (s_replica_has (replica, "s", "k", NULL), 3000);
    assert (s_replica_has (replica, "s", "k", NULL));

    drover_replica_destroy (&replica);
    drover_replica_destroy (&replica);
    drover_client_destroy (&client);
}

static void
test_no_state_channel (fb_t *fb)
{
    uint32_t port = FB_GET (fb, state_port);
    FB_SET (fb, state_port, 0);
    drover_client_t *client = s_connect (fb);
    assert (drover_replica_new (client) == NULL);
    assert (drover_replica_new (NULL) == NULL);
    drover_client_destroy (&client);
    FB_SET (fb, state_port, port);
}

int
main (void)
{
    drv_log_setup (getenv ("TEST_LOG")? DRV_LOG_DEBUG: DRV_LOG_ERROR + 1, false);
    fb_t *fb = fb_start ();
    test_calls (fb);
    test_replica (fb);
    test_no_state_channel (fb);
    fb_stop (&fb);
    printf ("test_sdk_state: OK\n");
    return 0;
}
