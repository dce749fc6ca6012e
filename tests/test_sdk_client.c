/*  test_sdk_client.c - the client against a fake broker: results, batching,
    refusals, fetch/status/cancel/stats, progress in status, queue control
    and dead letters, callbacks, REHELLO recovery, a broker restart that
    loses jobs, silence, and closing.  */
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
    int rc = drover_client_connect (&cfg, &client);
    assert (rc == 0);
    assert (client);
    return client;
}

static void
test_round_trip (fb_t *fb)
{
    drover_client_t *client = s_connect (fb);
    drover_future_t *future = NULL;
    assert (drover_submit (client, "q", "hello", 5, NULL, &future) == 0);
    assert (strlen (drover_future_id (future)) == 32);
    assert (drover_future_accepted (future, 2000) == 0);
    assert (drover_future_wait (future, 2000) == 0);
    assert (drover_future_ready (future));
    size_t size = 0;
    const char *result = drover_future_result (future, &size);
    assert (size == 5 && memcmp (result, "hello", 5) == 0);
    assert (drover_future_error (future) == NULL);
    assert (drover_future_attempts (future) == 1);

    //  Fetch the same job by id, and a job nobody knows
    drover_future_t *again = NULL;
    assert (drover_fetch (client, drover_future_id (future), &again) == 0);
    assert (drover_future_wait (again, 2000) == 0);
    result = drover_future_result (again, &size);
    assert (size == 5 && memcmp (result, "hello", 5) == 0);
    drover_future_t *nobody = NULL;
    assert (drover_fetch (client, "00000000000000000000000000000001", &nobody) == 0);
    assert (drover_future_wait (nobody, 2000) == DROVER_ENOTFOUND);
    assert (drover_future_error (nobody));
    assert (drover_fetch (client, "nothex", &nobody) == DROVER_EINVAL);

    //  Status and stats
    drover_job_info_t info;
    assert (drover_status (client, drover_future_id (future), &info, 2000) == 0);
    assert (info.state == DROVER_JOB_DONE);
    assert (strcmp (info.id, drover_future_id (future)) == 0);
    assert (info.payload_size == 5);
    assert (drover_status (client, "00000000000000000000000000000002", &info, 2000) == 0);
    assert (info.state == DROVER_JOB_UNKNOWN);
    drover_stats_t *stats = NULL;
    assert (drover_stats (client, &stats, 2000) == 0);
    assert (stats->queue_count == 1 && strcmp (stats->queues [0].name, "q") == 0);
    assert (stats->queues [0].queued == 3 && stats->clients == 2);
    drover_stats_destroy (&stats);
    assert (stats == NULL);

    //  Cancel: done job -> ESTATE; unknown -> ENOTFOUND
    assert (drover_cancel (client, drover_future_id (future), 2000) == DROVER_ESTATE);
    assert (drover_cancel (client, "00000000000000000000000000000003", 2000) == DROVER_ENOTFOUND);

    //  Failures and refusals
    drover_future_t *failed = NULL, *refused = NULL;
    assert (drover_submit (client, "fail", "x", 1, NULL, &failed) == 0);
    assert (drover_future_wait (failed, 2000) == DROVER_EFAILED);
    assert (strcmp (drover_future_error (failed), "boom") == 0);
    assert (drover_future_result (failed, NULL) == NULL);
    assert (drover_submit (client, "refuse", "x", 1, NULL, &refused) == 0);
    assert (drover_future_accepted (refused, 2000) == DROVER_ENOQUEUE);
    assert (drover_future_wait (refused, 2000) == DROVER_ENOQUEUE);
    assert (strstr (drover_future_error (refused), "no such queue"));

    //  Local checks: bad queue, too large, bad priority
    drover_future_t *bad = NULL;
    assert (drover_submit (client, "bad queue", "x", 1, NULL, &bad) == DROVER_EINVAL);
    assert (drover_submit (client, NULL, "x", 1, NULL, &bad) == DROVER_EINVAL);
    char *big = calloc (1, (1 << 20) + 1);
    assert (drover_submit (client, "q", big, (1 << 20) + 1, NULL, &bad) == DROVER_ETOOLARGE);
    free (big);
    drover_job_opts_t opts = DROVER_JOB_OPTS_INIT;
    opts.priority = 10;
    assert (drover_submit (client, "q", "x", 1, &opts, &bad) == DROVER_EINVAL);
    assert (bad == NULL);
    //  Empty payloads are fine
    drover_future_t *empty = NULL;
    assert (drover_submit (client, "q", NULL, 0, NULL, &empty) == 0);
    assert (drover_future_wait (empty, 2000) == 0);
    assert (drover_future_result (empty, &size) && size == 0);

    drover_future_destroy (&future);
    drover_future_destroy (&again);
    drover_future_destroy (&nobody);
    drover_future_destroy (&failed);
    drover_future_destroy (&refused);
    drover_future_destroy (&empty);
    assert (future == NULL);
    drover_client_destroy (&client);
    assert (client == NULL);
    //  The Bye left before destroy returned; the fake may still be reading it
    WAIT_FOR (FB_GET (fb, byes) >= 1, 3000);
    assert (FB_GET (fb, byes) >= 1);
}

//  Status shows the progress a worker reported, cut at a character
//  boundary when long.
static void
test_progress_status (fb_t *fb)
{
    drover_client_t *client = s_connect (fb);
    drover_future_t *future = NULL;
    assert (drover_submit (client, "q", "p", 1, NULL, &future) == 0);
    assert (drover_future_wait (future, 2000) == 0);
    uint8_t id [16];
    assert (drover_id_parse (drover_future_id (future), id) == 0);
    pthread_mutex_lock (&fb->lock);
    fb_job_t *job = fb_job (fb, id, false);
    assert (job);
    job->progress = 42;
    strcpy (job->progress_message, "halfway there");
    pthread_mutex_unlock (&fb->lock);
    drover_job_info_t info;
    assert (drover_status (client, drover_future_id (future), &info, 2000) == 0);
    assert (info.progress == 42);
    assert (strcmp (info.progress_message, "halfway there") == 0);

    //  200 two-byte characters: cut to whole characters within 127 bytes
    pthread_mutex_lock (&fb->lock);
    job->progress = 100;
    job->progress_message [0] = 'x';
    for (int i = 0; i < 200; i++)
        memcpy (job->progress_message + 1 + 2 * i, "\xc3\xa9", 2);
    job->progress_message [401] = 0;
    pthread_mutex_unlock (&fb->lock);
    assert (drover_status (client, drover_future_id (future), &info, 2000) == 0);
    assert (info.progress == 100);
    assert (strlen (info.progress_message) == 127);
    assert (info.progress_message [0] == 'x');
    assert ((unsigned char) info.progress_message [126] == 0xa9);

    //  Nothing reported: zero and empty
    drover_future_t *other = NULL;
    assert (drover_submit (client, "q", "o", 1, NULL, &other) == 0);
    assert (drover_future_wait (other, 2000) == 0);
    assert (drover_status (client, drover_future_id (other), &info, 2000) == 0);
    assert (info.progress == 0 && info.progress_message [0] == 0);
    drover_future_destroy (&future);
    drover_future_destroy (&other);
    drover_client_destroy (&client);
}

//  Submits count jobs that fail at once (dead letters in the fake).
static void
s_submit_failures (drover_client_t *client, int count, char ids [][DROVER_ID_TEXT + 1])
{
    for (int i = 0; i < count; i++) {
        drover_future_t *future = NULL;
        assert (drover_submit (client, "fail", "x", 1, NULL, &future) == 0);
        assert (drover_future_wait (future, 2000) == DROVER_EFAILED);
        if (ids)
            strcpy (ids [i], drover_future_id (future));
        drover_future_destroy (&future);
    }
}

//  Queue control and dead letters: answers, batching over max_batch, and
//  the mapping of refusals.
static void
test_admin (fb_t *fb)
{
    //  A small max_batch so "all" and long id lists take several requests
    FB_SET (fb, max_batch, 10);
    drover_client_t *client = s_connect (fb);

    //  Stats carry the new fields
    drover_stats_t *stats = NULL;
    assert (drover_stats (client, &stats, 2000) == 0);
    assert (stats->queues [0].paused && stats->queues [0].dead == 2);
    assert (stats->queues [0].submit_rate == 1.5 && stats->queues [0].done_rate == 0.25);
    drover_stats_destroy (&stats);

    //  Pause and resume
    int before = FB_GET (fb, queue_controls);
    assert (drover_queue_pause (client, "q", true, 2000) == 0);
    assert (drover_queue_pause (client, "q", false, 2000) == 0);
    assert (FB_GET (fb, queue_controls) == before + 2);
    assert (drover_queue_pause (client, "secret", true, 2000) == DROVER_EDENIED);
    assert (drover_queue_pause (client, "nope", true, 2000) == DROVER_ENOQUEUE);
    //  Checked locally, no round trip
    assert (drover_queue_pause (client, "bad queue", true, 2000) == DROVER_ENOQUEUE);
    assert (drover_queue_pause (client, NULL, true, 2000) == DROVER_EINVAL);
    assert (FB_GET (fb, queue_controls) == before + 4);

    //  Start from an empty dead-letter list
    drover_job_info_t *infos = NULL;
    size_t count = 99;
    assert (drover_dead (client, "q", DROVER_DEAD_PURGE, NULL, 0, 0, &infos, &count, 2000) == 0);
    free (infos);
    assert (drover_dead (client, "q", DROVER_DEAD_LIST, NULL, 0, 0, &infos, &count, 2000) == 0);
    assert (infos && count == 0);
    free (infos);

    //  LIST: bounded by the limit, and by max_batch
    static char ids [25][DROVER_ID_TEXT + 1];
    s_submit_failures (client, 25, ids);
    assert (drover_dead (client, "q", DROVER_DEAD_LIST, NULL, 0, 5, &infos, &count, 2000) == 0);
    assert (count == 5);
    for (size_t i = 0; i < count; i++) {
        assert (infos [i].state == DROVER_JOB_FAILED);
        assert (infos [i].attempts == 3 && strcmp (infos [i].error, "boom") == 0);
        assert (infos [i].finished_ms == 1700000000000ull);
    }
    free (infos);
    assert (drover_dead (client, "q", DROVER_DEAD_LIST, NULL, 0, 0, &infos, &count, 2000) == 0);
    assert (count == 10);
    free (infos);

    //  RETRY chosen ids: state after is queued; an unknown id says so
    const char *chosen [3] = {ids [0], ids [1], "00000000000000000000000000000009"};
    assert (drover_dead (client, "q", DROVER_DEAD_RETRY, chosen, 3, 0, &infos, &count, 2000) == 0);
    assert (count == 3);
    assert (strcmp (infos [0].id, ids [0]) == 0 && infos [0].state == DROVER_JOB_QUEUED);
    assert (strcmp (infos [1].id, ids [1]) == 0 && infos [1].state == DROVER_JOB_QUEUED);
    assert (infos [2].state == DROVER_JOB_UNKNOWN);
    free (infos);

    //  RETRY all: 23 left, three requests of at most 10
    before = FB_GET (fb, dead_letters);
    assert (drover_dead (client, "q", DROVER_DEAD_RETRY, NULL, 0, 0, &infos, &count, 2000) == 0);
    assert (count == 23);
    for (size_t i = 0; i < count; i++)
        assert (infos [i].state == DROVER_JOB_QUEUED);
    free (infos);
    assert (FB_GET (fb, dead_letters) == before + 3);

    //  PURGE 12 chosen ids: two requests; state after is unknown
    static char more [12][DROVER_ID_TEXT + 1];
    s_submit_failures (client, 12, more);
    const char *purge [12];
    for (int i = 0; i < 12; i++)
        purge [i] = more [i];
    before = FB_GET (fb, dead_letters);
    assert (drover_dead (client, "q", DROVER_DEAD_PURGE, purge, 12, 0, &infos, &count, 2000) == 0);
    assert (count == 12);
    for (size_t i = 0; i < count; i++)
        assert (infos [i].state == DROVER_JOB_UNKNOWN && strcmp (infos [i].id, more [i]) == 0);
    free (infos);
    assert (FB_GET (fb, dead_letters) == before + 2);
    assert (drover_dead (client, "q", DROVER_DEAD_LIST, NULL, 0, 0, &infos, &count, 2000) == 0);
    assert (count == 0);
    free (infos);

    //  Refusals and bad arguments
    infos = NULL;
    assert (drover_dead (client, "secret", DROVER_DEAD_LIST, NULL, 0, 0, &infos, &count, 2000)
            == DROVER_EDENIED);
    assert (drover_dead (client, "nope", DROVER_DEAD_PURGE, NULL, 0, 0, &infos, &count, 2000)
            == DROVER_ENOQUEUE);
    assert (infos == NULL);
    const char *bad [1] = {"not-an-id"};
    assert (drover_dead (client, "q", DROVER_DEAD_RETRY, bad, 1, 0, &infos, &count, 2000) == DROVER_EINVAL);
    assert (drover_dead (client, "q", (drover_dead_action_t) 7, NULL, 0, 0, &infos, &count, 2000)
            == DROVER_EINVAL);
    assert (drover_dead (client, "bad queue", DROVER_DEAD_LIST, NULL, 0, 0, &infos, &count, 2000)
            == DROVER_ENOQUEUE);
    assert (drover_dead (client, "q", DROVER_DEAD_LIST, NULL, 0, 0, NULL, &count, 2000) == DROVER_EINVAL);
    assert (infos == NULL);
    drover_client_destroy (&client);
    FB_SET (fb, max_batch, 1000);
}

static atomic_int s_callbacks;

static void
s_on_done (drover_future_t *future, void *arg)
{
    assert (arg == &s_callbacks);
    assert (drover_future_ready (future));
    atomic_fetch_add (&s_callbacks, 1);
}

#define BATCH 1000

static void
test_batching (fb_t *fb)
{
    drover_client_t *client = s_connect (fb);
    int msgs_before = FB_GET (fb, submit_msgs);
    int jobs_before = FB_GET (fb, jobs);
    static drover_future_t *futures [BATCH];
    atomic_store (&s_callbacks, 0);
    for (int i = 0; i < BATCH; i++) {
        char text [32];
        int size = snprintf (text, sizeof text, "job %d", i);
        assert (drover_submit (client, "q", text, (size_t) size, NULL, &futures [i]) == 0);
        drover_future_on_done (futures [i], s_on_done, &s_callbacks);
    }
    for (int i = 0; i < BATCH; i++) {
        assert (drover_future_wait (futures [i], 5000) == 0);
        char text [32];
        int size = snprintf (text, sizeof text, "job %d", i);
        size_t got;
        const void *data = drover_future_result (futures [i], &got);
        assert (got == (size_t) size && memcmp (data, text, got) == 0);
    }
    WAIT_FOR (atomic_load (&s_callbacks) == BATCH, 2000);
    assert (atomic_load (&s_callbacks) == BATCH);
    int msgs = FB_GET (fb, submit_msgs) - msgs_before;
    int jobs = FB_GET (fb, jobs) - jobs_before;
    printf ("batching: %d submits arrived in %d Submit messages (largest %d)\n",
            jobs, msgs, FB_GET (fb, max_jobs_per_msg));
    assert (jobs == BATCH);
    //  How much batches depends on thread timing; it must batch somewhat
    assert (msgs < BATCH / 2);

    //  submit_many: one call, one batch on the wire where possible
    const void *data [BATCH];
    size_t sizes [BATCH];
    for (int i = 0; i < BATCH; i++) {
        drover_future_destroy (&futures [i]);
        data [i] = "m";
        sizes [i] = 1;
    }
    msgs_before = FB_GET (fb, submit_msgs);
    assert (drover_submit_many (client, "q", data, sizes, BATCH, NULL, futures) == 0);
    for (int i = 0; i < BATCH; i++) {
        assert (drover_future_wait (futures [i], 5000) == 0);
        //  A callback set after resolution runs at once, here
        int before = atomic_load (&s_callbacks);
        drover_future_on_done (futures [i], s_on_done, &s_callbacks);
        assert (atomic_load (&s_callbacks) == before + 1);
        drover_future_destroy (&futures [i]);
    }
    assert (FB_GET (fb, submit_msgs) - msgs_before <= 2);
    drover_client_destroy (&client);
}

static void
test_rehello (fb_t *fb)
{
    drover_client_t *client = s_connect (fb);
    int hellos = FB_GET (fb, hellos);
    FB_SET (fb, rehello_submits, 1);
    drover_future_t *futures [10];
    for (int i = 0; i < 10; i++)
        assert (drover_submit (client, "q", "r", 1, NULL, &futures [i]) == 0);
    for (int i = 0; i < 10; i++) {
        assert (drover_future_wait (futures [i], 5000) == 0);
        drover_future_destroy (&futures [i]);
    }
    assert (FB_GET (fb, hellos) == hellos + 1);
    assert (FB_GET (fb, rehello_submits) == 0);
    drover_client_destroy (&client);
}

static void
test_restart_loses_jobs (fb_t *fb)
{
    drover_client_t *client = s_connect (fb);
    FB_SET (fb, deliver, false);
    drover_future_t *future = NULL;
    assert (drover_submit (client, "q", "lost", 4, NULL, &future) == 0);
    assert (drover_future_accepted (future, 2000) == 0);
    assert (drover_future_wait (future, 0) == DROVER_ETIMEDOUT);
    //  Cancel while queued works
    drover_future_t *other = NULL;
    assert (drover_submit (client, "q", "c", 1, NULL, &other) == 0);
    assert (drover_future_accepted (other, 2000) == 0);
    assert (drover_cancel (client, drover_future_id (other), 2000) == 0);
    //  "Restart" the broker in memory mode: it forgets us and the jobs
    FB_SET (fb, forget, true);
    assert (drover_future_wait (future, 3000) == DROVER_ENOTFOUND);
    assert (strstr (drover_future_error (future), "lost"));
    assert (drover_future_accepted (future, 0) == 0);
    drover_future_destroy (&future);
    drover_future_destroy (&other);
    FB_SET (fb, deliver, true);
    drover_client_destroy (&client);
}

static void
test_silence (fb_t *fb)
{
    drover_client_t *client = s_connect (fb);
    int hellos = FB_GET (fb, hellos);
    FB_SET (fb, silent, true);
    usleep (600 * 1000);            //  3 heartbeats of 100 ms, and then some
    FB_SET (fb, silent, false);
    WAIT_FOR (FB_GET (fb, hellos) > hellos, 3000);
    assert (FB_GET (fb, hellos) > hellos);
    drover_future_t *future = NULL;
    assert (drover_submit (client, "q", "after", 5, NULL, &future) == 0);
    assert (drover_future_wait (future, 3000) == 0);
    drover_future_destroy (&future);
    drover_client_destroy (&client);
}

static void
test_close_pending (fb_t *fb)
{
    drover_client_t *client = s_connect (fb);
    FB_SET (fb, deliver, false);
    drover_future_t *future = NULL;
    assert (drover_submit (client, "q", "pending", 7, NULL, &future) == 0);
    assert (drover_future_accepted (future, 2000) == 0);
    drover_client_destroy (&client);
    //  The future outlives its client
    assert (drover_future_wait (future, 1000) == DROVER_ECLOSED);
    assert (drover_future_ready (future));
    drover_future_destroy (&future);
    FB_SET (fb, deliver, true);
}

static void
test_denied (fb_t *fb)
{
    FB_SET (fb, deny_hello, true);
    drover_connect_t cfg = {0};
    cfg.endpoint = fb->endpoint;
    cfg.insecure = true;
    cfg.timeout_ms = 2000;
    drover_client_t *client = NULL;
    assert (drover_client_connect (&cfg, &client) == DROVER_EDENIED);
    assert (client == NULL);
    FB_SET (fb, deny_hello, false);
}

int
main (void)
{
    drv_log_setup (DRV_LOG_ERROR + 1, false);
    fb_t *fb = fb_start ();
    test_round_trip (fb);
    test_progress_status (fb);
    test_admin (fb);
    test_batching (fb);
    test_rehello (fb);
    test_restart_loses_jobs (fb);
    test_silence (fb);
    test_close_pending (fb);
    test_denied (fb);
    fb_stop (&fb);
    printf ("test_sdk_client: OK\n");
    return 0;
}
