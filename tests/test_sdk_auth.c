/*  test_sdk_auth.c - CURVE: an allowed key connects; a key missing from
    the allow-list, a wrong server key, and CURVE/plaintext mismatches in
    both directions give DROVER_EUNAUTH quickly instead of hanging.  */
#include "fake_broker.h"
#include "drover.h"

#include <czmq.h>

static char s_dir [64];

static int
s_handler (drover_job_t *job, void *arg)
{
    return 0;
}

static void
s_path (char *path, size_t size, const char *name)
{
    snprintf (path, size, "%s/%s", s_dir, name);
}

static int
s_connect (const char *endpoint, const char *server, const char *cert, bool insecure,
           drover_client_t **client_p)
{
    drover_connect_t cfg = {0};
    cfg.endpoint = endpoint;
    cfg.server_key = server;
    cfg.cert = cert;
    cfg.insecure = insecure;
    //  Well past the bounds below: a refusal must be told, not waited out
    cfg.timeout_ms = 10000;
    uint64_t start = drv_now_ms ();
    int rc = drover_client_connect (&cfg, client_p);
    printf ("connect: %s after %d ms\n", drover_strerror (rc), (int) (drv_now_ms () - start));
    return rc;
}

int
main (void)
{
    drv_log_setup (DRV_LOG_ERROR + 1, false);
    snprintf (s_dir, sizeof s_dir, "/tmp/drover-auth-XXXXXX");
    assert (mkdtemp (s_dir));
    char allow [128], server_path [128], good_path [128], bad_path [128], other_path [128];
    s_path (allow, sizeof allow, "allow");
    assert (mkdir (allow, 0700) == 0);
    s_path (server_path, sizeof server_path, "server.cert");
    s_path (good_path, sizeof good_path, "good.cert");
    s_path (bad_path, sizeof bad_path, "bad.cert");
    s_path (other_path, sizeof other_path, "other.cert");

    zcert_t *server = zcert_new ();
    zcert_t *good = zcert_new ();
    zcert_t *bad = zcert_new ();
    zcert_t *other = zcert_new ();
    assert (zcert_save (server, server_path) == 0);
    assert (zcert_save (good, good_path) == 0);
    assert (zcert_save (bad, bad_path) == 0);
    assert (zcert_save (other, other_path) == 0);
    char allowed [160];
    snprintf (allowed, sizeof allowed, "%s/good.cert", allow);
    assert (zcert_save_public (good, allowed) == 0);

    //  ZAP runs in CZMQ's context; the fake broker's socket shares it
    zactor_t *auth = zactor_new (zauth, NULL);
    zstr_sendx (auth, "CURVE", allow, NULL);
    zsock_wait (auth);
    fb_t *fb = fb_start_in (zsys_init (), zcert_secret_txt (server));
    fb_t *plain = fb_start ();

    //  Allowed key: connects and works
    drover_client_t *client = NULL;
    assert (s_connect (fb->endpoint, server_path, good_path, false, &client) == 0);
    drover_future_t *future = NULL;
    assert (drover_submit (client, "q", "secret", 6, NULL, &future) == 0);
    assert (drover_future_wait (future, 3000) == 0);
    drover_future_destroy (&future);
    drover_client_destroy (&client);
    //  The secret certificate may also be named directly
    char good_secret [160];
    snprintf (good_secret, sizeof good_secret, "%s_secret", good_path);
    assert (s_connect (fb->endpoint, server_path, good_secret, false, &client) == 0);
    drover_client_destroy (&client);

    //  Key not in the allow-list
    uint64_t start = drv_now_ms ();
    assert (s_connect (fb->endpoint, server_path, bad_path, false, &client) == DROVER_EUNAUTH);
    assert (drv_now_ms () - start < 6000);
    //  Wrong server key
    start = drv_now_ms ();
    assert (s_connect (fb->endpoint, other_path, good_path, false, &client) == DROVER_EUNAUTH);
    assert (drv_now_ms () - start < 6000);
    //  Plaintext client, CURVE broker
    assert (s_connect (fb->endpoint, NULL, NULL, true, &client) == DROVER_EUNAUTH);
    //  CURVE client, plaintext broker
    assert (s_connect (plain->endpoint, server_path, good_path, false, &client) == DROVER_EUNAUTH);
    assert (client == NULL);

    //  The worker detects the same
    drover_connect_t cfg = {0};
    cfg.endpoint = fb->endpoint;
    cfg.server_key = server_path;
    cfg.cert = bad_path;
    cfg.timeout_ms = 3000;
    drover_worker_t *worker = drover_worker_new (&cfg);
    assert (drover_worker_handle (worker, "q", s_handler, NULL) == 0);
    assert (drover_worker_run (worker) == DROVER_EUNAUTH);
    drover_worker_destroy (&worker);

    fb_stop (&fb);
    fb_stop (&plain);
    zactor_destroy (&auth);
    zcert_destroy (&server);
    zcert_destroy (&good);
    zcert_destroy (&bad);
    zcert_destroy (&other);
    char command [128];
    snprintf (command, sizeof command, "rm -rf %s", s_dir);
    assert (system (command) == 0);
    printf ("test_sdk_auth: OK\n");
    return 0;
}
