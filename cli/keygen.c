/*  keygen.c - `drover keygen`, and the key rings that `up` and `demo` make.

    Keys are CZMQ certificates (ZPL text): PATH holds the public key, and
    PATH_secret the public and secret keys. The role travels in both as
    metadata/role (and an optional queue limit as metadata/queues), so the
    public copy dropped into the broker's allow list tells the broker what
    the key may do.
*/
#include "common.h"
#include "codec.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

//  Longest entry of a --queues list: a queue name and a trailing '*'

static const char *s_usage =
    "Usage: drover keygen PATH [--role producer|worker|admin] [--queues LIST] [--force]\n"
    "\n"
    "Writes a new CURVE key pair as CZMQ certificates:\n"
    "  PATH          the public certificate: put it in the broker's allow list\n"
    "                (for the broker's own key: give it to clients as --server-key)\n"
    "  PATH_secret   the secret certificate, mode 0600: the program using the key\n"
    "                takes it as --cert; never share it\n"
    "The role (and queue limit) is stored in both files; the broker admits a\n"
    "key only with the rights of its role. The secret key is never printed.\n"
    "\n"
    "Options:\n"
    "  -r, --role ROLE     producer (default), worker or admin\n"
    "  -q, --queues LIST   limit the key to these queues: comma-separated names,\n"
    "                      an entry ending in * stands for every queue with that\n"
    "                      prefix (e.g. 'billing,reports.*'); default: all queues\n"
    "  -f, --force         replace existing files\n"
    "  -h, --help          show this help\n";

static bool
s_valid_role (const char *role)
{
    return streq (role, "producer") || streq (role, "worker") || streq (role, "admin");
}


static bool
s_exists (const char *path)
{
    struct stat info;
    return lstat (path, &info) == 0;
}

//  Writes cert as PATH (public) and PATH_secret. We call the two halves of
//  zcert_save ourselves: zcert_save builds the secret name in a 256-byte
//  buffer and would truncate long paths.
static int
s_cert_save (zcert_t *cert, const char *path, const char *secret)
{
    //  CZMQ resets the umask to 022 after writing a secret file; put back
    //  whatever the user had.
    mode_t umask_before = umask (022);
    umask (umask_before);

    errno = 0;
    //  Whoever may change a public certificate in an allow-list may change
    //  the key's rights: never leave it writable by group or others
    if (zcert_save_public (cert, path) || chmod (path, 0644 & ~umask_before)) {
        cli_error ("cannot write '%s': %s", path, errno? strerror (errno): "failed");
        unlink (path);
        umask (umask_before);
        return -1;
    }
    //  zcert_save_secret creates the file under umask 077; chmod as well,
    //  in case the file system or a leftover file says otherwise.
    errno = 0;
    if (zcert_save_secret (cert, secret) || chmod (secret, 0600)) {
        cli_error ("cannot write '%s': %s", secret, errno? strerror (errno): "failed");
        unlink (secret);
        unlink (path);          //  never leave half a key pair behind
        umask (umask_before);
        return -1;
    }
    umask (umask_before);
    return 0;
}

//  cli_cert_write with an optional queue limit (a normalised list).
static int
s_cert_write (const char *path, const char *role, const char *queues, bool force,
              char *public_txt)
{
    int rc = -1;
    char *secret = zsys_sprintf ("%s_secret", path);
    zcert_t *cert = NULL;
    if (!secret) {
        cli_error ("out of memory");
        goto done;
    }
    if (!force) {
        const char *existing = s_exists (path)? path: s_exists (secret)? secret: NULL;
        if (existing) {
            cli_error ("'%s' already exists; use --force to replace it", existing);
            goto done;
        }
    }
    else {
        //  Remove first: writing over an old secret file would keep its
        //  mode and owner, and a symlink there would be followed.
        if ((unlink (path) && errno != ENOENT) || (unlink (secret) && errno != ENOENT)) {
            cli_error ("cannot replace '%s': %s", path, strerror (errno));
            goto done;
        }
    }
    cert = zcert_new ();
    if (!cert) {
        cli_error ("cannot generate a key pair");
        goto done;
    }
    if (role)
        zcert_set_meta (cert, "role", "%s", role);
    if (queues)
        zcert_set_meta (cert, "queues", "%s", queues);
    if (s_cert_save (cert, path, secret))
        goto done;
    if (public_txt)
        snprintf (public_txt, 41, "%s", zcert_public_txt (cert));
    rc = 0;
done:
    zcert_destroy (&cert);
    zstr_free (&secret);
    return rc;
}

int
cli_cert_write (const char *path, const char *role, bool force, char *public_txt)
{
    return s_cert_write (path, role, NULL, force, public_txt);
}

int
cli_keygen (int argc, char **argv)
{
    static const struct option options [] = {
        { "role",   required_argument, NULL, 'r' },
        { "queues", required_argument, NULL, 'q' },
        { "force",  no_argument,       NULL, 'f' },
        { "help",   no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *role = "producer";
    const char *queues_arg = NULL;
    bool force = false;
    int opt;
    while ((opt = cli_getopt (argc, argv, ":r:q:fh", options)) != -1) {
        switch (opt) {
            case 'r':
                role = optarg;
                if (!s_valid_role (role))
                    return cli_usage (argv [0], "role must be producer, worker or admin, not '%s'", role);
                break;
            case 'q':
                queues_arg = optarg;
                break;
            case 'f':
                force = true;
                break;
            case 'h':
                fputs (s_usage, stdout);
                return CLI_EXIT_OK;
            default:
                return CLI_EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage (argv [0], "missing PATH");
    if (optind + 1 < argc)
        return cli_usage (argv [0], "one PATH only, got '%s' too", argv [optind + 1]);
    const char *path = argv [optind];
    if (!*path)
        return cli_usage (argv [0], "PATH is empty");

    char *queues = NULL;
    if (queues_arg) {
        char why [320];
        queues = drv_queue_list_parse (queues_arg, why, sizeof why);
        if (!queues)
            return cli_usage (argv [0], "%s", why);
    }

    char public_txt [41];
    int rc = s_cert_write (path, role, queues, force, public_txt);
    if (rc == 0) {
        printf ("wrote %s (public certificate) and %s_secret (secret certificate, mode 0600)\n",
                path, path);
        printf ("role: %s\n", role);
        printf ("queues: %s\n", queues? queues: "all");
        printf ("public key: %s\n", public_txt);
    }
    free (queues);
    return rc? CLI_EXIT_FAILED: CLI_EXIT_OK;
}

//  Key rings -----------------------------------------------------------------

static const char *s_client_roles [] = { "producer", "worker", "admin" };
#define CLIENT_ROLES (sizeof s_client_roles / sizeof s_client_roles [0])

//  True when dir has no entries besides . and ..
static bool
s_dir_empty (const char *dir)
{
    DIR *handle = opendir (dir);
    if (!handle)
        return false;
    bool empty = true;
    struct dirent *entry;
    while (empty && (entry = readdir (handle)))
        if (!streq (entry->d_name, ".") && !streq (entry->d_name, ".."))
            empty = false;
    closedir (handle);
    return empty;
}

//  Copies the public certificate src into dst (public half only, role kept).
static int
s_copy_public (const char *src, const char *dst)
{
    zcert_t *cert = zcert_load (src);
    int rc = cert? zcert_save_public (cert, dst): -1;
    if (rc)
        cli_error ("cannot write '%s': %s", dst, errno? strerror (errno): "failed");
    zcert_destroy (&cert);
    return rc;
}

int
cli_keyring_open (cli_keyring_t *ring, const char *dir, bool *reused)
{
    memset (ring, 0, sizeof *ring);
    *reused = false;
    if (mkdir (dir, 0700) && errno != EEXIST) {
        cli_error ("cannot create key directory '%s': %s", dir, strerror (errno));
        return -1;
    }
    char absolute [PATH_MAX];
    if (!realpath (dir, absolute)) {
        cli_error ("cannot use key directory '%s': %s", dir, strerror (errno));
        return -1;
    }
    ring->dir = strdup (absolute);
    ring->server = zsys_sprintf ("%s/server", absolute);
    ring->server_secret = zsys_sprintf ("%s/server_secret", absolute);
    ring->producer_secret = zsys_sprintf ("%s/producer_secret", absolute);
    ring->worker_secret = zsys_sprintf ("%s/worker_secret", absolute);
    ring->admin_secret = zsys_sprintf ("%s/admin_secret", absolute);
    ring->allow = zsys_sprintf ("%s/allow", absolute);

    //  Complete ring: reuse it, so clients configured earlier keep working.
    bool complete = s_exists (ring->server) && s_exists (ring->server_secret);
    for (size_t index = 0; index < CLIENT_ROLES && complete; index++) {
        char *secret = zsys_sprintf ("%s/%s_secret", absolute, s_client_roles [index]);
        char *allowed = zsys_sprintf ("%s/%s", ring->allow, s_client_roles [index]);
        complete = secret && allowed && s_exists (secret) && s_exists (allowed);
        zstr_free (&secret);
        zstr_free (&allowed);
    }
    if (complete) {
        *reused = true;
        return 0;
    }
    if (!s_dir_empty (absolute)) {
        cli_error ("key directory '%s' exists but is incomplete: remove it, or choose another",
                   absolute);
        return -1;
    }
    if (cli_cert_write (ring->server, NULL, false, NULL))
        return -1;
    if (mkdir (ring->allow, 0700)) {
        cli_error ("cannot create '%s': %s", ring->allow, strerror (errno));
        return -1;
    }
    int rc = 0;
    for (size_t index = 0; index < CLIENT_ROLES && rc == 0; index++) {
        char *path = zsys_sprintf ("%s/%s", absolute, s_client_roles [index]);
        char *allowed = zsys_sprintf ("%s/%s", ring->allow, s_client_roles [index]);
        rc = path && allowed
           ? cli_cert_write (path, s_client_roles [index], false, NULL) || s_copy_public (path, allowed)
           : -1;
        zstr_free (&path);
        zstr_free (&allowed);
    }
    return rc? -1: 0;
}

void
cli_keyring_close (cli_keyring_t *ring)
{
    free (ring->dir);
    zstr_free (&ring->server);
    zstr_free (&ring->server_secret);
    zstr_free (&ring->producer_secret);
    zstr_free (&ring->worker_secret);
    zstr_free (&ring->admin_secret);
    zstr_free (&ring->allow);
    memset (ring, 0, sizeof *ring);
}
