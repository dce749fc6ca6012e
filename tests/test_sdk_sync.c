/*  test_sdk_sync.c - cluster-wide sync calls against a fake broker: locks
    granted, refused (try once), timed out at the broker's deadline and
    granted after a wait; fencing tokens; DROVER_ESTATE for a double lock
    and an unlock of a lock not held; a grant that arrives after the client
    gave up is given straight back (UNLOCK); a forever wait asks for a long
    broker wait; a pending wait is resent after a broker restart;
    semaphores, events and barriers; bad arguments and DROVER_EDENIED.  */
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

typedef struct {
    drover_client_t *client;
    const char *name;
    int op;                     //  0 lock, 1 event wait, 2 barrier, 3 sem
    int timeout_ms;
    unsigned count;
    uint64_t fence;
    int rc;
    uint64_t took_ms;
} s_call_t;

static void *
s_call_thread (void *arg)
{
    s_call_t *call = (s_call_t *) arg;
    uint64_t start = drv_now_ms ();
    switch (call->op) {
        case 0: call->rc = drover_lock (call->client, call->name, call->timeout_ms, &call->fence); break;
        case 1: call->rc = drover_event_wait (call->client, call->name, call->timeout_ms); break;
        case 2: call->rc = drover_barrier_wait (call->client, call->name, call->count, call->timeout_ms); break;
        default: call->rc = drover_sem_acquire (call->client, call->name, call->count, call->timeout_ms); break;
    }
    call->took_ms = drv_now_ms () - start;
    return NULL;
}

static void
test_locks (fb_t *fb)
{
    drover_client_t *a = s_connect (fb);
    drover_client_t *b = s_connect (fb);
    uint64_t fence = 0;

    //  Granted at once, with a fencing token
    assert (drover_lock (a, "L", 1000, &fence) == 0);
    assert (fence == 1);
    assert (fb_lock_is_held (fb, "L"));
    //  Twice by the same client: ESTATE; unlock by another: ESTATE
    assert (drover_lock (a, "L", 1000, NULL) == DROVER_ESTATE);
    assert (drover_unlock (b, "L") == DROVER_ESTATE);
    assert (drover_unlock (a, "nothing") == DROVER_ESTATE);
    assert (strstr (drover_strerror (DROVER_ESTATE), "lock"));

    //  Try once: refused at once with ETIMEDOUT
    uint64_t start = drv_now_ms ();
    assert (drover_lock (b, "L", 0, NULL) == DROVER_ETIMEDOUT);
    assert (drv_now_ms () - start < 1000);
    assert (FB_GET (fb, last_sync_timeout) == 0);
    //  A wait that runs out at the broker's deadline (not the client's grace)
    start = drv_now_ms ();
    assert (drover_lock (b, "L", 200, NULL) == DROVER_ETIMEDOUT);
    uint64_t took = drv_now_ms () - start;
    assert (took >= 150 && took < 1900);     //  before the client's 2 s grace
    assert (FB_GET (fb, last_sync_timeout) <= 200 && FB_GET (fb, last_sync_timeout) > 100);

    //  A waiter is granted when the holder lets go
    s_call_t call = {b, "L", 0, 5000, 0, 0, -1, 0};
    pthread_t thread;
    pthread_create (&thread, NULL, s_call_thread, &call);
    usleep (200 * 1000);
    assert (drover_unlock (a, "L") == 0);
    pthread_join (thread, NULL);
    assert (call.rc == 0 && call.fence == 2);
    assert (drover_unlock (b, "L") == 0);
    assert (!fb_lock_is_held (fb, "L"));

    //  Forever: the broker is asked for a long wait, and it still works
    assert (drover_lock (a, "L", -1, &fence) == 0);
    assert (fence == 3);
    assert (FB_GET (fb, last_sync_timeout) >= 3600u * 1000u);
    assert (drover_unlock (a, "L") == 0);

    //  Bad arguments are refused locally; a denied name by the broker
    int before = FB_GET (fb, sync_requests);
    assert (drover_lock (a, "bad name", 0, NULL) == DROVER_EINVAL);
    assert (drover_lock (a, NULL, 0, NULL) == DROVER_EINVAL);
    assert (drover_lock (NULL, "L", 0, NULL) == DROVER_EINVAL);
    assert (drover_barrier_wait (a, "B", 0, 0) == DROVER_EINVAL);
    assert (drover_event_set (a, "") == DROVER_EINVAL);
    assert (FB_GET (fb, sync_requests) == before);
    assert (drover_lock (a, "secret", 0, NULL) == DROVER_EDENIED);

    drover_client_destroy (&a);
    drover_client_destroy (&b);
}

//  The client gives up (timeout + grace) before the broker's grant comes:
//  the grant is given back at once, so the lock is not leaked.
static void
test_late_grant (fb_t *fb)
{
    drover_client_t *client = s_connect (fb);
    int unlocks = FB_GET (fb, sync_ops [DRV_SYNC_UNLOCK]);
    FB_SET (fb, sync_delay_ms, 4000);
    uint64_t start = drv_now_ms ();
    assert (drover_lock (client, "late", 0, NULL) == DROVER_ETIMEDOUT);
    uint64_t took = drv_now_ms () - start;
    assert (took >= 1900 && took < 3500);     //  gave up, did not wait 4 s
    //  The broker granted it to us meanwhile
    assert (fb_lock_is_held (fb, "late"));
    FB_SET (fb, sync_delay_ms, 0);
    WAIT_FOR (!fb_lock_is_held (fb, "late"), 6000);
    assert (!fb_lock_is_held (fb, "late"));
    assert (FB_GET (fb, sync_ops [DRV_SYNC_UNLOCK]) == unlocks + 1);
    //  And it can be had again
    assert (drover_lock (client, "late", 0, NULL) == 0);
    assert (drover_unlock (client, "late") == 0);

    //  The same for a semaphore permit
    int releases = FB_GET (fb, sync_ops [DRV_SYNC_SEM_RELEASE]);
    FB_SET (fb, sync_delay_ms, 4000);
    assert (drover_sem_acquire (client, "lsem", 1, 0) == DROVER_ETIMEDOUT);
    FB_SET (fb, sync_delay_ms, 0);
    WAIT_FOR (FB_GET (fb, sync_ops [DRV_SYNC_SEM_RELEASE]) == releases + 1, 6000);
    assert (FB_GET (fb, sync_ops [DRV_SYNC_SEM_RELEASE]) == releases + 1);
    assert (drover_sem_acquire (client, "lsem", 1, 0) == 0);

    //  A refusal that comes late needs no release
    fb_lock_held_elsewhere (fb, "taken");
    unlocks = FB_GET (fb, sync_ops [DRV_SYNC_UNLOCK]);
    FB_SET (fb, sync_delay_ms, 4000);
    assert (drover_lock (client, "taken", 0, NULL) == DROVER_ETIMEDOUT);
    FB_SET (fb, sync_delay_ms, 0);
    usleep (1000 * 1000);
    assert (FB_GET (fb, sync_ops [DRV_SYNC_UNLOCK]) == unlocks);
    drover_client_destroy (&client);
}

//  A broker restart forgets locks: a pending wait is sent again and is
//  granted by the new broker.
static void
test_restart (fb_t *fb)
{
    drover_client_t *client = s_connect (fb);
    fb_lock_held_elsewhere (fb, "R");
    int locks = FB_GET (fb, sync_ops [DRV_SYNC_LOCK]);
    s_call_t call = {client, "R", 0, 5000, 0, 0, -1, 0};
    pthread_t thread;
    pthread_create (&thread, NULL, s_call_thread, &call);
    WAIT_FOR (FB_GET (fb, sync_ops [DRV_SYNC_LOCK]) == locks + 1, 2000);
    usleep (300 * 1000);
    pthread_mutex_lock (&fb->lock);
    fb->broker_id_byte++;
    fb->forget = true;
    pthread_mutex_unlock (&fb->lock);
    pthread_join (thread, NULL);
    assert (call.rc == 0);
    assert (FB_GET (fb, sync_ops [DRV_SYNC_LOCK]) == locks + 2);
    //  Only what was left of the wait was asked the second time
    assert (FB_GET (fb, last_sync_timeout) < 4800);
    assert (drover_unlock (client, "R") == 0);
    drover_client_destroy (&client);
}

static void
test_others (fb_t *fb)
{
    drover_client_t *a = s_connect (fb);
    drover_client_t *b = s_connect (fb);

    //  Semaphore of 2: a third acquire waits until a release
    assert (drover_sem_acquire (a, "S", 2, 1000) == 0);
    assert (drover_sem_acquire (b, "S", 99, 1000) == 0);
    assert (drover_sem_acquire (b, "S", 2, 0) == DROVER_ETIMEDOUT);
    s_call_t sem = {b, "S", 3, 5000, 2, 0, -1, 0};
    pthread_t thread;
    pthread_create (&thread, NULL, s_call_thread, &sem);
    usleep (200 * 1000);
    assert (drover_sem_release (a, "S") == 0);
    pthread_join (thread, NULL);
    assert (sem.rc == 0);

    //  Event: wait times out while clear, every waiter wakes on set
    assert (drover_event_wait (a, "E", 0) == DROVER_ETIMEDOUT);
    assert (drover_event_wait (a, "E", 150) == DROVER_ETIMEDOUT);
    s_call_t w1 = {a, "E", 1, 5000, 0, 0, -1, 0}, w2 = {b, "E", 1, -1, 0, 0, -1, 0};
    pthread_t t1, t2;
    pthread_create (&t1, NULL, s_call_thread, &w1);
    pthread_create (&t2, NULL, s_call_thread, &w2);
    usleep (200 * 1000);
    drover_client_t *c = s_connect (fb);
    assert (drover_event_set (c, "E") == 0);
    pthread_join (t1, NULL);
    pthread_join (t2, NULL);
    assert (w1.rc == 0 && w2.rc == 0);
    assert (drover_event_wait (a, "E", 0) == 0);
    assert (drover_event_clear (c, "E") == 0);
    assert (drover_event_wait (a, "E", 0) == DROVER_ETIMEDOUT);

    //  Barrier of 3: nobody goes before the third; a party count that
    //  differs is ESTATE; a lone party times out
    s_call_t p1 = {a, "B", 2, 5000, 3, 0, -1, 0}, p2 = {b, "B", 2, 5000, 3, 0, -1, 0};
    int barrier_waits = FB_GET (fb, sync_ops [DRV_SYNC_BARRIER_WAIT]);
    pthread_create (&t1, NULL, s_call_thread, &p1);
    pthread_create (&t2, NULL, s_call_thread, &p2);
    //  Both parties are at the broker before the third asks
    WAIT_FOR (FB_GET (fb, sync_ops [DRV_SYNC_BARRIER_WAIT]) >= barrier_waits + 2, 3000);
    assert (FB_GET (fb, sync_ops [DRV_SYNC_BARRIER_WAIT]) >= barrier_waits + 2);
    assert (p1.rc == -1 && p2.rc == -1);
    assert (drover_barrier_wait (c, "B", 2, 1000) == DROVER_ESTATE);
    assert (drover_barrier_wait (c, "B", 3, 1000) == 0);
    pthread_join (t1, NULL);
    pthread_join (t2, NULL);
    assert (p1.rc == 0 && p2.rc == 0);
    assert (drover_barrier_wait (c, "B", 2, 150) == DROVER_ETIMEDOUT);

    drover_client_destroy (&a);
    drover_client_destroy (&b);
    drover_client_destroy (&c);
}

int
main (void)
{
    fb_t *fb = fb_start ();
    //  The fake beats only to the last peer that spoke: a slower beat keeps
    //  the other clients of a test from reconnecting (new routing id)
    FB_SET (fb, heartbeat_ms, 2000);
    test_locks (fb);
    test_late_grant (fb);
    test_restart (fb);
    test_others (fb);
    fb_stop (&fb);
    printf ("test_sdk_sync: OK\n");
    return 0;
}
