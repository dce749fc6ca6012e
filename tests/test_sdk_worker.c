/*  test_sdk_worker.c - the worker against a fake broker: credit, batched
    reports, coalesced progress, failures, timeouts and cancels, re-hello,
    and a graceful stop from a signal handler that finishes and reports
    held jobs.  */
#include "fake_broker.h"
#include "drover.h"

#include <signal.h>

enum { MODE_ECHO, MODE_FAIL, MODE_FAIL_TEXT, MODE_WAIT_CANCEL, MODE_SLEEP, MODE_PROGRESS,
       MODE_PROGRESS_LONG };
//  Progress calls per job in MODE_PROGRESS
#define PROGRESS_CALLS 5000
static atomic_int s_mode;
static atomic_int s_handled;
static atomic_int s_saw_cancel;
static drover_worker_t *s_worker;

static int
s_handler (drover_job_t *job, void *arg)
{
    assert (arg == &s_mode);
    assert (strcmp (drover_job_queue (job), "q") == 0);
    assert (drover_job_attempt (job) == 1);
    size_t size;
    const char *payload = drover_job_payload (job, &size);
    //  The fake broker sends the id as payload
    assert (size == 32 && memcmp (payload, drover_job_id (job), 32) == 0);
    atomic_fetch_add (&s_handled, 1);
    switch (atomic_load (&s_mode)) {
        case MODE_ECHO: {
            char *result = malloc (size + 5);
            memcpy (result, "done:", 5);
            memcpy (result + 5, payload, size);
            return drover_job_take_result (job, result, size + 5);
        }
        case MODE_FAIL:
            return -1;
        case MODE_FAIL_TEXT:
            drover_job_set_error (job, "no good", true);
            return 1;
        case MODE_WAIT_CANCEL: {
            uint64_t until = drv_now_ms () + 5000;
            while (!drover_job_cancelled (job) && drv_now_ms () < until)
                usleep (1000);
            if (drover_job_cancelled (job))
                atomic_fetch_add (&s_saw_cancel, 1);
            drover_job_set_error (job, "gave up", false);
            return -1;
        }
        case MODE_SLEEP:
            usleep (200 * 1000);
            return drover_job_set_result (job, "slept", 5);
        case MODE_PROGRESS: {
            //  As fast as it can: only the newest report per job matters
            assert (drover_job_progress (job, 101, "too much") == DROVER_EINVAL);
            for (int i = 0; i < PROGRESS_CALLS - 1; i++) {
                char text [32];
                snprintf (text, sizeof text, "step %d", i);
                assert (drover_job_progress (job, (unsigned) (i * 100 / PROGRESS_CALLS), text) == 0);
            }
            //  The last report leaves before the result, even this close
            assert (drover_job_progress (job, 100, "last") == 0);
            return 0;
        }
        case MODE_PROGRESS_LONG: {
            //  301 bytes: "xy" and 2-byte characters; the cut at 255 bytes
            //  would split one, so 254 are sent
            char text [302] = "xy";
            for (int i = 0; i < 150; i++)
                memcpy (text + 2 + 2 * i, "\xc3\xa9", 2);
            text [301] = 0;
            assert (drover_job_progress (job, 7, text) == 0);
            return 0;
        }
    }
    return 0;
}

static int s_run_rc = -1;

static void *
s_run (void *arg)
{
    s_run_rc = drover_worker_run ((drover_worker_t *) arg);
    return NULL;
}

static void
s_on_signal (int sig)
{
    drover_worker_stop (s_worker);
}

static void
s_queue_jobs (fb_t *fb, int count, uint8_t (*ids) [16])
{
    pthread_mutex_lock (&fb->lock);
    for (int i = 0; i < count; i++) {
        drv_random_id (ids [i]);
        memcpy (fb->todo [fb->todo_count++], ids [i], 16);
    }
    pthread_mutex_unlock (&fb->lock);
}

static fb_job_t *
s_result (fb_t *fb, const uint8_t *id)
{
    return (fb_job_t *) drv_idmap_get (fb->store, id);
}

int
main (void)
{
    drv_log_setup (DRV_LOG_ERROR + 1, false);
    fb_t *fb = fb_start ();
    drover_connect_t cfg = {0};
    cfg.endpoint = fb->endpoint;
    cfg.insecure = true;
    cfg.timeout_ms = 2000;

    //  A refused hello ends run at once
    FB_SET (fb, deny_hello, true);
    drover_worker_t *worker = drover_worker_new (&cfg);
    assert (drover_worker_handle (worker, "q", s_handler, &s_mode) == 0);
    assert (drover_worker_run (worker) == DROVER_EDENIED);
    FB_SET (fb, deny_hello, false);
    assert (drover_worker_set_concurrency (worker, 4) == 0);
    s_worker = worker;
    signal (SIGUSR1, s_on_signal);

    pthread_t thread;
    pthread_create (&thread, NULL, s_run, worker);
    WAIT_FOR (FB_GET (fb, known), 2000);
    //  Credit: 4 threads + default prefetch 8
    assert (FB_GET (fb, last_hello_credit) == 12);

    //  Many jobs: all reported, several per Report
    enum { MANY = 500 };
    static uint8_t ids [MANY][16];
    s_queue_jobs (fb, MANY, ids);
    WAIT_FOR (FB_GET (fb, results) == MANY, 10000);
    assert (FB_GET (fb, results) == MANY);
    printf ("worker: %d results in %d Report messages\n", FB_GET (fb, results), FB_GET (fb, reports));
    assert (FB_GET (fb, reports) < MANY);
    pthread_mutex_lock (&fb->lock);
    for (int i = 0; i < MANY; i++) {
        fb_job_t *job = s_result (fb, ids [i]);
        assert (job && job->state == DRV_JOB_DONE);
        char text [33];
        drv_hex (ids [i], 16, text);
        assert (zmq_msg_size (&job->payload) == 37);
        assert (memcmp (zmq_msg_data (&job->payload), "done:", 5) == 0);
        assert (memcmp ((char *) zmq_msg_data (&job->payload) + 5, text, 32) == 0);
    }
    assert (fb->credit == 12);      //  every result returned its credit
    pthread_mutex_unlock (&fb->lock);

    //  Progress: thousands of reports from 4 handlers at once reach the
    //  broker as a few entries, never the same job twice in one message,
    //  and the last report of each job wins
    assert (drover_job_progress (NULL, 1, "x") == DROVER_EINVAL);
    atomic_store (&s_mode, MODE_PROGRESS);
    int before = FB_GET (fb, results);
    s_queue_jobs (fb, 4, ids);
    WAIT_FOR (FB_GET (fb, results) == before + 4, 5000);
    assert (FB_GET (fb, results) == before + 4);
    printf ("worker: %d progress calls sent as %d entries in %d ProgressReport messages\n",
            4 * PROGRESS_CALLS, FB_GET (fb, progress_entries), FB_GET (fb, progress_msgs));
    assert (FB_GET (fb, progress_dups) == 0);
    assert (FB_GET (fb, progress_entries) >= 4);
    assert (FB_GET (fb, progress_entries) * 4 < 4 * PROGRESS_CALLS);
    assert (FB_GET (fb, progress_msgs) <= FB_GET (fb, progress_entries));
    pthread_mutex_lock (&fb->lock);
    for (int i = 0; i < 4; i++) {
        fb_job_t *job = s_result (fb, ids [i]);
        assert (job && job->state == DRV_JOB_DONE);
        assert (job->progress == 100 && strcmp (job->progress_message, "last") == 0);
    }
    pthread_mutex_unlock (&fb->lock);
    //  Long text is cut to 255 bytes, at a character boundary
    atomic_store (&s_mode, MODE_PROGRESS_LONG);
    s_queue_jobs (fb, 1, ids);
    WAIT_FOR (FB_GET (fb, results) == before + 5, 3000);
    pthread_mutex_lock (&fb->lock);
    assert (s_result (fb, ids [0])->progress == 7);
    assert (strlen (s_result (fb, ids [0])->progress_message) == 254);
    assert (fb->progress_longest == 254);
    pthread_mutex_unlock (&fb->lock);

    //  Failures: default text, and a permanent one with its own text
    atomic_store (&s_mode, MODE_FAIL);
    before = FB_GET (fb, results);
    s_queue_jobs (fb, 1, ids);
    WAIT_FOR (FB_GET (fb, results) == before + 1, 3000);
    pthread_mutex_lock (&fb->lock);
    assert (s_result (fb, ids [0])->state == DRV_JOB_FAILED);
    assert (strcmp (s_result (fb, ids [0])->error, "handler failed") == 0);
    pthread_mutex_unlock (&fb->lock);
    atomic_store (&s_mode, MODE_FAIL_TEXT);
    s_queue_jobs (fb, 1, ids);
    WAIT_FOR (FB_GET (fb, results) == before + 2, 3000);
    pthread_mutex_lock (&fb->lock);
    assert (strcmp (s_result (fb, ids [0])->error, "no good") == 0);
    pthread_mutex_unlock (&fb->lock);

    //  Timeout: the handler sees drover_job_cancelled soon after 100 ms
    atomic_store (&s_mode, MODE_WAIT_CANCEL);
    FB_SET (fb, job_timeout_ms, 100);
    uint64_t start = drv_now_ms ();
    s_queue_jobs (fb, 1, ids);
    WAIT_FOR (FB_GET (fb, results) == before + 3, 3000);
    assert (FB_GET (fb, results) == before + 3);
    assert (drv_now_ms () - start < 2500);     //  not the 3 s wait's end
    assert (atomic_load (&s_saw_cancel) == 1);
    //  Cancel from the broker
    FB_SET (fb, job_timeout_ms, 0);
    int handled = atomic_load (&s_handled);
    s_queue_jobs (fb, 1, ids);
    WAIT_FOR (atomic_load (&s_handled) == handled + 1, 3000);
    pthread_mutex_lock (&fb->lock);
    memcpy (fb->cancel_id, ids [0], 16);
    fb->cancel_pending = true;
    pthread_mutex_unlock (&fb->lock);
    WAIT_FOR (FB_GET (fb, results) == before + 4, 3000);
    assert (atomic_load (&s_saw_cancel) == 2);

    //  Broker restart: the worker registers again with full credit
    int hellos = FB_GET (fb, hellos);
    FB_SET (fb, forget, true);
    WAIT_FOR (FB_GET (fb, hellos) > hellos && FB_GET (fb, known), 3000);
    assert (FB_GET (fb, last_hello_credit) == 12);
    atomic_store (&s_mode, MODE_ECHO);
    before = FB_GET (fb, results);
    s_queue_jobs (fb, 20, ids);
    WAIT_FOR (FB_GET (fb, results) == before + 20, 3000);
    assert (FB_GET (fb, results) == before + 20);

    //  Graceful stop from a signal handler while jobs run: they finish and
    //  are reported before run returns 0
    atomic_store (&s_mode, MODE_SLEEP);
    before = FB_GET (fb, results);
    s_queue_jobs (fb, 4, ids);
    WAIT_FOR (FB_GET (fb, dispatched) >= MANY + 5 + 4 + 20 + 4, 3000);
    usleep (20 * 1000);
    pthread_kill (thread, SIGUSR1);
    pthread_join (thread, NULL);
    assert (s_run_rc == 0);
    //  run() returns once the reports are handed to the socket (which
    //  lingers them out); the fake broker's thread may still be reading them
    WAIT_FOR (FB_GET (fb, results) == before + 4, 3000);
    assert (FB_GET (fb, results) == before + 4);
    assert (FB_GET (fb, byes) == 1);
    pthread_mutex_lock (&fb->lock);
    for (int i = 0; i < 4; i++)
        assert (s_result (fb, ids [i])->state == DRV_JOB_DONE);
    pthread_mutex_unlock (&fb->lock);

    drover_worker_destroy (&worker);
    fb_stop (&fb);
    printf ("test_sdk_worker: OK\n");
    return 0;
}
