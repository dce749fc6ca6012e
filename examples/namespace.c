/*  namespace.c - a shared namespace one process updates and another reads.

    The spirit of the classic manager "Namespace" listing:
        namespace update N       sets x, y and a counter N times
        namespace read SECONDS   keeps a local replica and prints every change
    Both connect to the client endpoint (DROVER_BROKER) with the usual keys.
*/
#include <drover.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
s_changed (const char *ns, const char *key, const void *value, size_t size,
           uint64_t version, void *arg)
{
    if (value)
        printf ("%s.%s = %.*s (version %" PRIu64 ")\n", ns, key, (int) size,
                (const char *) value, version);
    else
        printf ("%s.%s deleted\n", ns, key);
    fflush (stdout);
}

int
main (int argc, char *argv [])
{
    if (argc != 3 || (strcmp (argv [1], "update") && strcmp (argv [1], "read"))) {
        fprintf (stderr, "usage: namespace update N | namespace read SECONDS\n");
        return 2;
    }
    drover_connect_t cfg = {0};
    drover_connect_from_env (&cfg);
    drover_client_t *client;
    int rc = drover_client_connect (&cfg, &client);
    if (rc) {
        fprintf (stderr, "namespace: %s\n", drover_strerror (rc));
        return 3;
    }
    if (strcmp (argv [1], "update") == 0) {
        int rounds = atoi (argv [2]);
        for (int i = 1; i <= rounds && !rc; i++) {
            char x [32], y [32];
            int xl = snprintf (x, sizeof x, "%d", i);
            int yl = snprintf (y, sizeof y, "%d", i * i);
            rc = drover_state_set (client, "shared", "x", x, (size_t) xl, NULL, 5000);
            if (!rc)
                rc = drover_state_set (client, "shared", "y", y, (size_t) yl, NULL, 5000);
            if (!rc)
                rc = drover_state_incr (client, "shared", "updates", 1, NULL, 5000);
        }
        if (rc)
            fprintf (stderr, "namespace: %s\n", drover_strerror (rc));
    }
    else {
        //  The callback first, so that no change after the snapshot is missed
        drover_replica_t *replica = drover_replica_new (client);
        rc = replica? drover_replica_watch (replica, "shared", "", s_changed, NULL): DROVER_EINVAL;
        if (!rc)
            rc = drover_replica_track (replica, "shared", 5000);
        if (!rc) {
            printf ("following namespace shared for %s s\n", argv [2]);
            fflush (stdout);
            sleep ((unsigned) atoi (argv [2]));
            //  Reads from the local copy cost no round trip
            void *value = NULL;
            size_t size = 0;
            if (drover_replica_get (replica, "shared", "updates", &value, &size, NULL) == 0)
                printf ("updates seen by the replica: %.*s\n", (int) size, (char *) value);
            free (value);
        }
        else
            fprintf (stderr, "namespace: %s\n", drover_strerror (rc));
        drover_replica_destroy (&replica);
    }
    drover_client_destroy (&client);
    return rc? 1: 0;
}
