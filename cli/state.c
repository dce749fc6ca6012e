/*  state.c - `drover state get|set|del|list|incr|watch`: the broker's
    shared namespaces from the shell.

    Each subcommand takes the request options (--timeout, the connection
    options, --help). `watch` follows a namespace through a replica and
    prints every change until SIGINT or SIGTERM, which end it with exit 0.
*/
#include "common.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_usage =
    "Usage: drover state get NS KEY\n"
    "       drover state set NS KEY VALUE      (VALUE '-' reads standard input)\n"
    "       drover state del NS KEY\n"
    "       drover state list NS [PREFIX]\n"
    "       drover state incr NS KEY [BY]      (BY defaults to 1; put '--' before\n"
    "                                           a negative BY)\n"
    "       drover state watch NS\n"
    "\n"
    "Works on the broker's shared state: namespaces (named like queues) of\n"
    "keys (up to 1024 bytes) to values, each value with a version.\n"
    "\n"
    "  get     prints the value\n"
    "  set     writes the value\n"
    "  del     removes the key\n"
    "  list    prints the keys starting with PREFIX, in key order, one per\n"
    "          line: KEY VERSION VALUE\n"
    "  incr    adds BY to a counter (a missing key counts as 0); prints the result\n"
    "  watch   prints every change as it happens, one per line:\n"
    "          SEQ KEY VERSION VALUE (or '(deleted)'), until interrupted\n"
    "\n"
    "In list and watch, control characters in values print as spaces.\n"
    "\n"
    "Options:\n"
    "  -t, --timeout S       how long the broker may take to answer (default 5)\n"
    CLI_CONNECT_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Exit: 0 done, 1 no such key or the broker refused, 2 bad usage, 3 cannot\n"
    "reach the broker or our key may not do this.\n";

#define S_KEY_MAX 1024

typedef struct {
    const char *name;           //  subcommand
    int min_words;              //  arguments after the options, NS first
    int max_words;
    const char *shape;          //  for usage errors
} s_sub_t;

static const s_sub_t s_subs [] = {
    { "get",   2, 2, "NS KEY" },
    { "set",   3, 3, "NS KEY VALUE" },
    { "del",   2, 2, "NS KEY" },
    { "list",  1, 2, "NS [PREFIX]" },
    { "incr",  2, 3, "NS KEY [BY]" },
    { "watch", 1, 1, "NS" },
};
#define SUBS (sizeof s_subs / sizeof s_subs [0])

//  Reads all of standard input; NULL after printing why.
static char *
s_read_stdin (const char *cmd, size_t *size_p)
{
    size_t size = 0, cap = 4096;
    char *data = malloc (cap);
    while (data) {
        size_t got = fread (data + size, 1, cap - size, stdin);
        size += got;
        if (size < cap) {
            if (ferror (stdin)) {
                cli_error ("%s: cannot read standard input", cmd);
                free (data);
                return NULL;
            }
            if (feof (stdin))
                break;
            continue;
        }
        char *bigger = realloc (data, cap * 2);
        if (!bigger)
            free (data);
        data = bigger;
        cap *= 2;
    }
    if (!data)
        cli_error ("%s: out of memory reading standard input", cmd);
    *size_p = size;
    return data;
}

//  Prints a value on one line (a copy with control characters blanked).
static void
s_print_line_value (const void *value, size_t size)
{
    char *copy = malloc (size + 1);
    if (!copy)
        return;
    memcpy (copy, value, size);
    copy [size] = 0;
    //  Embedded NULs would cut the line short: blank them too
    for (size_t i = 0; i < size; i++)
        if (copy [i] == 0)
            copy [i] = ' ';
    cli_one_line (copy);
    fwrite (copy, 1, size, stdout);
    free (copy);
}

//  Reports a failed state call on ns/key; returns the exit code.
static int
s_failed (const char *cmd, const char *ns, const char *key, int rc, int timeout_ms)
{
    char what [1300];
    snprintf (what, sizeof what, "%s", cmd);
    if (rc == DROVER_ENOTFOUND) {
        cli_error ("%s: no key '%s' in namespace '%s'", cmd, key, ns);
        return CLI_EXIT_FAILED;
    }
    if (rc == DROVER_ETOOLARGE) {
        cli_error ("%s: value too large for the broker (see its max value size)", cmd);
        return CLI_EXIT_FAILED;
    }
    if (rc == DROVER_EINVAL && strcmp (cmd, "state incr") == 0) {
        cli_error ("%s: the value of '%s' is not a decimal integer", cmd, key);
        return CLI_EXIT_FAILED;
    }
    if (rc == DROVER_EDENIED) {
        cli_error ("%s: refused: our key's role may not use namespace '%s'", cmd, ns);
        return cli_exit_code (rc);
    }
    return cli_request_failed (what, rc, timeout_ms);
}

//  watch -------------------------------------------------------------------

static void
s_on_change (const char *ns, const char *key, const void *value, size_t size,
             uint64_t version, void *arg)
{
    drover_replica_t *replica = (drover_replica_t *) arg;
    printf ("%" PRIu64 " %s %" PRIu64 " ", drover_replica_seq (replica, ns), key, version);
    if (value)
        s_print_line_value (value, size);
    else
        fputs ("(deleted)", stdout);
    putchar ('\n');
    fflush (stdout);
}

static int
s_watch (drover_client_t *client, const char *cmd, const char *ns, int timeout_ms)
{
    drover_replica_t *replica = drover_replica_new (client);
    if (!replica) {
        cli_error ("%s: cannot follow the broker's state updates (does it publish them?)", cmd);
        return CLI_EXIT_FAILED;
    }
    int exit_code = CLI_EXIT_OK;
    int rc = drover_replica_watch (replica, ns, "", s_on_change, replica);
    if (rc == 0)
        rc = drover_replica_track (replica, ns, timeout_ms);
    if (rc)
        exit_code = s_failed (cmd, ns, "", rc, timeout_ms);
    else {
        //  SIGINT and SIGTERM were blocked before any thread started, so
        //  they wait for us here
        sigset_t empty;
        sigemptyset (&empty);
        while (!cli_interrupted ())
            sigsuspend (&empty);
    }
    drover_replica_destroy (&replica);
    return exit_code;
}

//  Entry point ---------------------------------------------------------------

int
cli_state (int argc, char **argv)
{
    if (argc < 2)
        return cli_usage ("state", "missing subcommand (get, set, del, list, incr or watch)");
    if (strcmp (argv [1], "--help") == 0 || strcmp (argv [1], "-h") == 0) {
        fputs (s_usage, stdout);
        return CLI_EXIT_OK;
    }
    const s_sub_t *sub = NULL;
    for (size_t index = 0; index < SUBS; index++)
        if (strcmp (argv [1], s_subs [index].name) == 0)
            sub = &s_subs [index];
    if (!sub)
        return cli_usage ("state", "unknown subcommand '%s' (get, set, del, list, incr or watch)",
                          argv [1]);
    char cmd [32];
    snprintf (cmd, sizeof cmd, "state %s", sub->name);
    char **sub_argv = calloc ((size_t) argc, sizeof (char *));
    if (!sub_argv)
        return CLI_EXIT_FAILED;
    sub_argv [0] = cmd;
    for (int index = 2; index < argc; index++)
        sub_argv [index - 1] = argv [index];

    cli_request_args_t args;
    int exit_code = cli_parse_request (argc - 1, sub_argv, s_usage, CLI_LIMIT_NONE, &args);
    if (exit_code >= 0)
        goto done;
    exit_code = CLI_EXIT_USAGE;
    if (args.word_count < sub->min_words) {
        cli_usage (cmd, "missing %s (want %s)", args.word_count == 0? "NS":
                   args.word_count == 1? "KEY": "VALUE", sub->shape);
        goto done;
    }
    if (args.word_count > sub->max_words) {
        cli_usage (cmd, "unexpected argument '%s' (want %s)", args.words [sub->max_words], sub->shape);
        goto done;
    }
    const char *ns = args.words [0];
    const char *key = args.word_count > 1? args.words [1]: "";
    if (!cli_valid_queue (ns)) {
        cli_usage (cmd, "bad namespace '%s': use " CLI_QUEUE_RULE, ns);
        goto done;
    }
    bool is_list = strcmp (sub->name, "list") == 0;
    if (!is_list && args.word_count > 1 && !*key) {
        cli_usage (cmd, "empty KEY");
        goto done;
    }
    if (strlen (key) > S_KEY_MAX) {
        cli_usage (cmd, "KEY is longer than %d bytes", S_KEY_MAX);
        goto done;
    }
    long by = 1;
    if (strcmp (sub->name, "incr") == 0 && args.word_count == 3
    &&  cli_parse_long (args.words [2], -9223372036854775807L, 9223372036854775807L, &by)) {
        cli_usage (cmd, "BY must be a whole number, not '%s'", args.words [2]);
        goto done;
    }
    //  The value, before connecting: reading stdin should not hold a session
    char *value = NULL;
    size_t size = 0;
    bool from_stdin = false;
    if (strcmp (sub->name, "set") == 0) {
        if (strcmp (args.words [2], "-") == 0) {
            value = s_read_stdin (cmd, &size);
            if (!value) {
                exit_code = CLI_EXIT_FAILED;
                goto done;
            }
            from_stdin = true;
        }
        else {
            value = args.words [2];
            size = strlen (value);
        }
    }
    bool watching = strcmp (sub->name, "watch") == 0;
    if (watching) {
        //  Block them before any thread starts; s_watch waits for them
        sigset_t set;
        sigemptyset (&set);
        sigaddset (&set, SIGINT);
        sigaddset (&set, SIGTERM);
        pthread_sigmask (SIG_BLOCK, &set, NULL);
    }

    drover_client_t *client = NULL;
    exit_code = cli_connect (&args.conn, cmd, &client);
    if (exit_code) {
        if (from_stdin)
            free (value);
        goto done;
    }
    int rc = 0;
    if (strcmp (sub->name, "get") == 0) {
        void *data = NULL;
        size_t data_size = 0;
        rc = drover_state_get (client, ns, key, &data, &data_size, NULL, args.timeout_ms);
        if (rc == 0) {
            cli_write_out (data, data_size, true);
            free (data);
        }
    }
    else
    if (strcmp (sub->name, "set") == 0)
        rc = drover_state_set (client, ns, key, value, size, NULL, args.timeout_ms);
    else
    if (strcmp (sub->name, "del") == 0)
        rc = drover_state_del (client, ns, key, args.timeout_ms);
    else
    if (strcmp (sub->name, "incr") == 0) {
        int64_t now = 0;
        rc = drover_state_incr (client, ns, key, by, &now, args.timeout_ms);
        if (rc == 0)
            printf ("%" PRId64 "\n", now);
    }
    else
    if (is_list) {
        drover_state_entry_t *entries = NULL;
        size_t count = 0;
        rc = drover_state_list (client, ns, key, &entries, &count, args.timeout_ms);
        for (size_t index = 0; rc == 0 && index < count; index++) {
            printf ("%s %" PRIu64 " ", entries [index].key, entries [index].version);
            s_print_line_value (entries [index].value, entries [index].size);
            putchar ('\n');
        }
        drover_state_entries_free (entries, count);
    }
    exit_code = CLI_EXIT_OK;
    if (watching)
        exit_code = s_watch (client, cmd, ns, args.timeout_ms);
    else
    if (rc)
        exit_code = s_failed (cmd, ns, key, rc, args.timeout_ms);
    drover_client_destroy (&client);
    if (from_stdin)
        free (value);
done:
    free (sub_argv);
    return exit_code;
}
