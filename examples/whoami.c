/*  whoami.c - jobs handed to worker processes, each saying who ran it.

    The spirit of the classic "which process ran my function" listing:
        whoami worker            serve queue "whoami" (DROVER_BROKER = worker endpoint)
        whoami submit N          submit N jobs and print who ran each
    Both take DROVER_SERVER_KEY and DROVER_CERT from the environment.
*/
#include <drover.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static drover_worker_t *s_worker;

static void
s_stop (int signum)
{
    drover_worker_stop (s_worker);
}

//  The answer names this process, so the producer sees the work spread out
static int
s_whoami (drover_job_t *job, void *arg)
{
    char host [64] = "?";
    gethostname (host, sizeof host - 1);
    size_t size;
    const char *in = drover_job_payload (job, &size);
    char answer [256];
    int len = snprintf (answer, sizeof answer, "job %.*s ran in process %d on %s",
                        (int) size, in, (int) getpid (), host);
    return drover_job_set_result (job, answer, (size_t) len);
}

static int
s_serve (drover_connect_t *cfg)
{
    s_worker = drover_worker_new (cfg);
    if (!s_worker || drover_worker_handle (s_worker, "whoami", s_whoami, NULL))
        return 2;
    signal (SIGINT, s_stop);
    signal (SIGTERM, s_stop);
    int rc = drover_worker_run (s_worker);
    drover_worker_destroy (&s_worker);
    return rc? 3: 0;
}

static int
s_submit (drover_connect_t *cfg, int count)
{
    drover_client_t *client;
    int rc = drover_client_connect (cfg, &client);
    if (rc) {
        fprintf (stderr, "whoami: %s\n", drover_strerror (rc));
        return 3;
    }
    drover_future_t **futures = calloc ((size_t) count, sizeof *futures);
    for (int i = 0; i < count && !rc; i++) {
        char label [16];
        int len = snprintf (label, sizeof label, "%d", i + 1);
        rc = drover_submit (client, "whoami", label, (size_t) len, NULL, &futures [i]);
    }
    for (int i = 0; i < count && futures [i]; i++) {
        if (drover_future_wait (futures [i], 30000) == 0) {
            size_t size;
            const char *answer = drover_future_result (futures [i], &size);
            printf ("%.*s\n", (int) size, answer);
        }
        else
            rc = 1;
        drover_future_destroy (&futures [i]);
    }
    free (futures);
    drover_client_destroy (&client);
    return rc? 1: 0;
}

int
main (int argc, char *argv [])
{
    drover_connect_t cfg = {0};
    drover_connect_from_env (&cfg);
    if (argc == 2 && strcmp (argv [1], "worker") == 0)
        return s_serve (&cfg);
    if (argc == 3 && strcmp (argv [1], "submit") == 0 && atoi (argv [2]) > 0)
        return s_submit (&cfg, atoi (argv [2]));
    fprintf (stderr, "usage: whoami worker | whoami submit N\n");
    return 2;
}
