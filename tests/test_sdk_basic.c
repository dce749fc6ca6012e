/*  test_sdk_basic.c - SDK behaviour that needs no broker: errors, ids,
    argument checks, connect failures (nothing listening, missing keys).  */
#undef NDEBUG
#include "drover.h"
#include "util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

//  A TCP port on loopback where nothing listens: bind, read, close.
static int
s_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert (bind (fd, (struct sockaddr *) &addr, sizeof addr) == 0);
    socklen_t len = sizeof addr;
    assert (getsockname (fd, (struct sockaddr *) &addr, &len) == 0);
    close (fd);
    return ntohs (addr.sin_port);
}

static int
s_handler (drover_job_t *job, void *arg)
{
    return 0;
}

static void
test_strerror (void)
{
    for (int e = DROVER_OK; e <= DROVER_EINTERNAL; e++) {
        const char *text = drover_strerror (e);
        assert (text && *text);
        //  Distinct texts, so users can tell errors apart
        for (int f = DROVER_OK; f < e; f++)
            assert (strcmp (text, drover_strerror (f)) != 0);
    }
    assert (drover_strerror (-1) && drover_strerror (999));
    assert (strcmp (drover_job_state_name (DROVER_JOB_DONE), "done") == 0);
    assert (strcmp (drover_job_state_name (DROVER_JOB_QUEUED), "queued") == 0);
    assert (strcmp (drover_job_state_name ((drover_job_state_t) 77), "unknown") == 0);
}

static void
test_ids (void)
{
    uint8_t id [DROVER_ID_SIZE], back [DROVER_ID_SIZE];
    for (int i = 0; i < DROVER_ID_SIZE; i++)
        id [i] = (uint8_t) (i * 17 + 3);
    char text [DROVER_ID_TEXT + 1];
    drover_id_format (id, text);
    assert (strlen (text) == DROVER_ID_TEXT);
    assert (strcmp (text, "031425364758697a8b9cadbecfe0f102") == 0);
    assert (drover_id_parse (text, back) == 0);
    assert (memcmp (id, back, DROVER_ID_SIZE) == 0);
    assert (drover_id_parse ("031425364758697A8B9CADBECFE0F102", back) == 0);
    assert (memcmp (id, back, DROVER_ID_SIZE) == 0);
    memset (back, 0xAA, sizeof back);
    assert (drover_id_parse ("xyz", back) == DROVER_EINVAL);
    assert (drover_id_parse ("031425364758697a8b9cadbecfe0f1", back) == DROVER_EINVAL);
    assert (drover_id_parse ("031425364758697a8b9cadbecfe0f1020", back) == DROVER_EINVAL);
    assert (drover_id_parse ("031425364758697a8b9cadbecfe0f10g", back) == DROVER_EINVAL);
    assert (drover_id_parse (NULL, back) == DROVER_EINVAL);
    assert (back [0] == 0xAA);      //  untouched on failure
}

static void
test_env (void)
{
    setenv ("DROVER_BROKER", "tcp://example:1", 1);
    setenv ("DROVER_SERVER_KEY", "/k/server.pub", 1);
    setenv ("DROVER_CERT", "/k/me.cert", 1);
    setenv ("DROVER_INSECURE", "true", 1);
    drover_connect_t cfg = {0};
    cfg.cert = "mine";
    drover_connect_from_env (&cfg);
    assert (strcmp (cfg.endpoint, "tcp://example:1") == 0);
    assert (strcmp (cfg.server_key, "/k/server.pub") == 0);
    assert (strcmp (cfg.cert, "mine") == 0);        //  set fields win
    assert (cfg.insecure);
    unsetenv ("DROVER_BROKER");
    unsetenv ("DROVER_SERVER_KEY");
    unsetenv ("DROVER_CERT");
    setenv ("DROVER_INSECURE", "0", 1);
    drover_connect_t other = {0};
    drover_connect_from_env (&other);
    assert (!other.endpoint && !other.insecure);
    unsetenv ("DROVER_INSECURE");
    drover_connect_from_env (NULL);
}

static void
test_bad_args (void)
{
    drover_client_t *client = NULL;
    drover_connect_t cfg = {0};
    assert (drover_client_connect (NULL, &client) == DROVER_EINVAL);
    assert (drover_client_connect (&cfg, NULL) == DROVER_EINVAL);
    assert (drover_client_connect (&cfg, &client) == DROVER_EINVAL);    //  no endpoint
    cfg.endpoint = "tcp://127.0.0.1:1";
    assert (drover_client_connect (&cfg, &client) == DROVER_EINVAL);    //  CURVE without keys
    cfg.server_key = "server.pub";
    assert (drover_client_connect (&cfg, &client) == DROVER_EINVAL);    //  no cert
    cfg.insecure = true;
    cfg.endpoint = "bogus://nowhere";
    cfg.timeout_ms = 200;
    assert (drover_client_connect (&cfg, &client) == DROVER_EINVAL);
    assert (client == NULL);
    drover_client_destroy (&client);
    drover_client_destroy (NULL);

    drover_future_t *future = NULL;
    assert (drover_submit (NULL, "q", "x", 1, NULL, &future) == DROVER_EINVAL);
    assert (drover_fetch (NULL, "00", &future) == DROVER_EINVAL);
    assert (drover_status (NULL, "00", NULL, 0) == DROVER_EINVAL);
    assert (drover_cancel (NULL, "00", 0) == DROVER_EINVAL);
    assert (drover_stats (NULL, NULL, 0) == DROVER_EINVAL);
    assert (drover_future_wait (NULL, 0) == DROVER_EINVAL);
    assert (drover_future_accepted (NULL, 0) == DROVER_EINVAL);
    assert (!drover_future_ready (NULL));
    assert (drover_future_result (NULL, NULL) == NULL);
    assert (drover_future_error (NULL) == NULL);
    drover_future_destroy (&future);
    drover_future_destroy (NULL);
    drover_stats_destroy (NULL);

    //  Worker: NULL on bad settings, EINVAL on bad registration
    assert (drover_worker_new (NULL) == NULL);
    drover_connect_t wcfg = {0};
    assert (drover_worker_new (&wcfg) == NULL);
    wcfg.endpoint = "tcp://127.0.0.1:1";
    assert (drover_worker_new (&wcfg) == NULL);                 //  CURVE without keys
    wcfg.insecure = true;
    drover_worker_t *worker = drover_worker_new (&wcfg);
    assert (worker);
    assert (drover_worker_run (worker) == DROVER_EINVAL);       //  no handler
    assert (drover_worker_handle (worker, "", s_handler, NULL) == DROVER_EINVAL);
    assert (drover_worker_handle (worker, "bad name", s_handler, NULL) == DROVER_EINVAL);
    assert (drover_worker_handle (worker, "q", NULL, NULL) == DROVER_EINVAL);
    assert (drover_worker_handle (worker, "q", s_handler, NULL) == 0);
    assert (drover_worker_handle (worker, "q", s_handler, NULL) == DROVER_EINVAL);
    assert (drover_worker_set_concurrency (worker, 0) == DROVER_EINVAL);
    assert (drover_worker_set_concurrency (worker, 4) == 0);
    assert (drover_worker_set_prefetch (worker, -1) == DROVER_EINVAL);
    assert (drover_worker_set_prefetch (worker, 0) == 0);
    drover_worker_destroy (&worker);
    assert (worker == NULL);
    drover_worker_destroy (NULL);
    drover_worker_stop (NULL);
}

static void
test_unreachable (void)
{
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", s_free_port ());
    drover_connect_t cfg = {0};
    cfg.endpoint = endpoint;
    cfg.insecure = true;
    cfg.timeout_ms = 300;
    drover_client_t *client = NULL;
    uint64_t start = drv_now_ms ();
    assert (drover_client_connect (&cfg, &client) == DROVER_EUNREACHABLE);
    uint64_t took = drv_now_ms () - start;
    assert (took >= 250 && took < 4000);     //  its 300 ms, not the 5 s default
    assert (client == NULL);

    drover_worker_t *worker = drover_worker_new (&cfg);
    assert (drover_worker_handle (worker, "q", s_handler, NULL) == 0);
    start = drv_now_ms ();
    assert (drover_worker_run (worker) == DROVER_EUNREACHABLE);
    took = drv_now_ms () - start;
    assert (took >= 250 && took < 4000);     //  its 300 ms, not the 5 s default
    drover_worker_destroy (&worker);
}

static void
test_missing_keys (void)
{
    drover_connect_t cfg = {0};
    cfg.endpoint = "tcp://127.0.0.1:1";
    cfg.server_key = "/nonexistent/server.pub";
    cfg.cert = "/nonexistent/me.cert";
    cfg.timeout_ms = 200;
    drover_client_t *client = NULL;
    assert (drover_client_connect (&cfg, &client) == DROVER_EKEY);
    assert (client == NULL);

    //  A public certificate is not enough for our side
    char dir [] = "/tmp/drover-test-XXXXXX";
    assert (mkdtemp (dir));
    char path [128];
    snprintf (path, sizeof path, "%s/public.cert", dir);
    FILE *file = fopen (path, "w");
    assert (file);
    fprintf (file, "curve\n    public-key = \"rq:rM>}U?@Lns47E1%%kR.o@n%%FcmmsL/@{H8]yf7\"\n");
    fclose (file);
    cfg.cert = path;
    cfg.server_key = path;
    assert (drover_client_connect (&cfg, &client) == DROVER_EKEY);

    drover_worker_t *worker = drover_worker_new (&cfg);
    assert (worker);
    assert (drover_worker_handle (worker, "q", s_handler, NULL) == 0);
    assert (drover_worker_run (worker) == DROVER_EKEY);
    drover_worker_destroy (&worker);
    unlink (path);
    rmdir (dir);
}

int
main (void)
{
    drv_log_setup (DRV_LOG_ERROR + 1, false);
    test_strerror ();
    test_ids ();
    test_env ();
    test_bad_args ();
    test_unreachable ();
    test_missing_keys ();
    printf ("test_sdk_basic: OK\n");
    return 0;
}
