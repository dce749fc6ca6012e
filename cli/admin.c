/*  admin.c - the admin commands: queues, pause, resume, dead.

    `queues` shows each queue's depth, state and rates; `pause`/`resume`
    stop and restart dispatching a queue; `dead list|retry|purge` works on
    the jobs of a queue that ended failed. All but `queues` need an admin
    key: a refusal is exit 3, like any other "fix how you connect" error.
*/
#include "common.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *s_queues_usage =
    "Usage: drover queues [--timeout S]\n"
    "\n"
    "Prints a table with a row per queue: whether it is paused, jobs queued,\n"
    "scheduled (delayed or backing off), running and dead (failed, kept for\n"
    "'drover dead'), jobs done and failed since the broker started, workers\n"
    "serving it, and jobs submitted and finished per second (averaged over\n"
    "about a minute).\n"
    "\n"
    "Options:\n"
    "  -t, --timeout S       how long the broker may take to answer (default 5)\n"
    CLI_CONNECT_HELP
    "  -h, --help            show this help\n";

static const char *s_pause_usage =
    "Usage: drover pause QUEUE [--timeout S]\n"
    "\n"
    "Pauses a queue: it keeps accepting jobs but dispatches none until\n"
    "'drover resume'. Running jobs go on. The state survives broker restarts.\n"
    "Needs an admin key.\n"
    "\n"
    "Options:\n"
    "  -t, --timeout S       how long the broker may take to answer (default 5)\n"
    CLI_CONNECT_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Exit: 0 paused, 1 the broker refused, 2 bad usage, 3 cannot reach the\n"
    "broker or the key is not an admin's.\n";

static const char *s_resume_usage =
    "Usage: drover resume QUEUE [--timeout S]\n"
    "\n"
    "Resumes a paused queue: its jobs are dispatched again. Needs an admin key.\n"
    "\n"
    "Options:\n"
    "  -t, --timeout S       how long the broker may take to answer (default 5)\n"
    CLI_CONNECT_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Exit: 0 resumed, 1 the broker refused, 2 bad usage, 3 cannot reach the\n"
    "broker or the key is not an admin's.\n";

static const char *s_dead_usage =
    "Usage: drover dead list QUEUE [--limit N]\n"
    "       drover dead retry QUEUE [ID...]\n"
    "       drover dead purge QUEUE [ID...]\n"
    "\n"
    "Works on the dead letters of a queue: its jobs that ended failed (attempts\n"
    "exhausted or a permanent failure), kept by the broker for a while.\n"
    "\n"
    "  list    prints the dead jobs, oldest first, one per line:\n"
    "          ID attempts=N failed=TIME error=TEXT   (TIME in UTC)\n"
    "  retry   queues the given dead jobs (default: all) again, with fresh\n"
    "          attempts; prints how many\n"
    "  purge   forgets the given dead jobs (default: all); prints how many\n"
    "\n"
    "Needs an admin key.\n"
    "\n"
    "Options:\n"
    "      --limit N         list at most N jobs (default 100; the broker sends\n"
    "                        at most its batch limit, 1000 by default)\n"
    "  -t, --timeout S       how long the broker may take to answer (default 5)\n"
    CLI_CONNECT_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Exit: 0 done, 1 a given ID is not a dead job of QUEUE (the others are\n"
    "handled) or the broker refused, 2 bad usage, 3 cannot reach the broker or\n"
    "the key is not an admin's.\n";

//  Checks a queue name argument; prints a usage error and returns false.
static bool
s_queue_arg (const char *cmd, const char *queue)
{
    if (cli_valid_queue (queue))
        return true;
    cli_usage (cmd, "bad queue name '%s': use " CLI_QUEUE_RULE, queue);
    return false;
}

//  Reports a failed admin request; returns the exit code.
static int
s_failed (const char *what, int rc, int timeout_ms)
{
    if (rc == DROVER_EDENIED) {
        cli_error ("%s: refused, this needs an admin key (see 'drover keygen --role admin')", what);
        return cli_exit_code (rc);
    }
    return cli_request_failed (what, rc, timeout_ms);
}

//  queues ---------------------------------------------------------------------

int
cli_queues (int argc, char **argv)
{
    drover_stats_t *stats = NULL;
    int exit_code = cli_request_stats (argc, argv, s_queues_usage, CLI_LIMIT_REFUSED,
                                       s_failed, &stats, NULL);
    if (exit_code >= 0)
        return exit_code;
    int width = cli_queue_width (stats);
    printf ("%-*s %6s %10s %10s %10s %8s %12s %10s %8s %9s %9s\n", width, "QUEUE", "PAUSED",
            "QUEUED", "SCHEDULED", "RUNNING", "DEAD", "DONE", "FAILED", "WORKERS",
            "SUBMIT/S", "DONE/S");
    for (size_t index = 0; index < stats->queue_count; index++) {
        drover_queue_stats_t *queue = &stats->queues [index];
        printf ("%-*.*s %6s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %8" PRIu64 " %12" PRIu64
                " %10" PRIu64 " %8" PRIu32 " %9.1f %9.1f\n",
                width, (int) sizeof queue->name, queue->name, queue->paused? "yes": "no",
                queue->queued, queue->scheduled, queue->running, queue->dead, queue->done,
                queue->failed, queue->workers, queue->submit_rate, queue->done_rate);
    }
    drover_stats_destroy (&stats);
    return CLI_EXIT_OK;
}

//  pause, resume --------------------------------------------------------------

static int
s_pause (int argc, char **argv, bool paused)
{
    cli_request_args_t args;
    int exit_code = cli_parse_request (argc, argv, paused? s_pause_usage: s_resume_usage,
                                       CLI_LIMIT_REFUSED, &args);
    if (exit_code >= 0)
        return exit_code;
    const char *cmd = argv [0];
    if (args.word_count == 0)
        return cli_usage (cmd, "missing QUEUE");
    if (args.word_count > 1)
        return cli_usage (cmd, "unexpected argument '%s' (one queue at a time)", args.words [1]);
    const char *queue = args.words [0];
    if (!s_queue_arg (cmd, queue))
        return CLI_EXIT_USAGE;

    drover_client_t *client = NULL;
    exit_code = cli_connect (&args.conn, cmd, &client);
    if (exit_code)
        return exit_code;
    int rc = drover_queue_pause (client, queue, paused, args.timeout_ms);
    if (rc) {
        char what [160];
        snprintf (what, sizeof what, "%s %s", cmd, queue);
        exit_code = s_failed (what, rc, args.timeout_ms);
    }
    else
        printf ("queue %s %s\n", queue, paused? "paused": "resumed");
    drover_client_destroy (&client);
    return exit_code;
}

int
cli_pause (int argc, char **argv)
{
    return s_pause (argc, argv, true);
}

int
cli_resume (int argc, char **argv)
{
    return s_pause (argc, argv, false);
}

//  dead -----------------------------------------------------------------------

static int
s_dead_list (drover_client_t *client, const char *queue, cli_request_args_t *args)
{
    drover_job_info_t *infos = NULL;
    size_t count = 0;
    int rc = drover_dead (client, queue, DROVER_DEAD_LIST, NULL, 0,
                          args->limit_given? (size_t) args->limit: 0,
                          &infos, &count, args->timeout_ms);
    if (rc)
        return s_failed ("dead list", rc, args->timeout_ms);
    for (size_t index = 0; index < count; index++) {
        drover_job_info_t *info = &infos [index];
        char failed [32] = "-";
        if (info->finished_ms)
            cli_format_time (info->finished_ms, failed, sizeof failed);
        cli_one_line (info->error);
        printf ("%s attempts=%" PRIu32 " failed=%s error=%s\n", info->id, info->attempts,
                failed, *info->error? info->error: "-");
    }
    free (infos);
    return CLI_EXIT_OK;
}

//  retry or purge: all dead jobs of the queue, or the given ones. Given ids
//  are looked at first, so one that is not a dead job of the queue is
//  named (and left alone) rather than counted.
static int
s_dead_act (drover_client_t *client, const char *queue, drover_dead_action_t action,
            cli_request_args_t *args, const char *const *ids, size_t id_count)
{
    const char *verb = action == DROVER_DEAD_RETRY? "retried": "purged";
    const char *what = action == DROVER_DEAD_RETRY? "dead retry": "dead purge";
    int exit_code = CLI_EXIT_OK;
    const char **chosen = NULL;
    size_t chosen_count = 0;
    if (id_count) {
        drover_job_info_t *infos = NULL;
        size_t count = 0;
        int rc = drover_dead (client, queue, DROVER_DEAD_LIST, ids, id_count, 0,
                              &infos, &count, args->timeout_ms);
        if (rc)
            return s_failed (what, rc, args->timeout_ms);
        chosen = calloc (id_count, sizeof *chosen);
        if (!chosen) {
            free (infos);
            cli_error ("out of memory");
            return CLI_EXIT_FAILED;
        }
        for (size_t index = 0; index < id_count; index++) {
            //  The reply lists the ids in order; match by id all the same
            const drover_job_info_t *info = NULL;
            for (size_t at = 0; at < count && !info; at++)
                if (strcasecmp (infos [at].id, ids [index]) == 0)
                    info = &infos [at];
            if (info && info->state == DROVER_JOB_FAILED && strcmp (info->queue, queue) == 0)
                chosen [chosen_count++] = ids [index];
            else {
                if (!info || info->state == DROVER_JOB_UNKNOWN)
                    cli_error ("%s: no such job (or it expired)", ids [index]);
                else
                    cli_error ("%s: not a dead job of queue %s (%s in queue %s)", ids [index],
                               queue, drover_job_state_name (info->state), info->queue);
                exit_code = CLI_EXIT_FAILED;
            }
        }
        free (infos);
        if (!chosen_count) {
            free (chosen);
            printf ("%s 0 dead jobs of queue %s\n", verb, queue);
            return exit_code;
        }
    }
    drover_job_info_t *infos = NULL;
    size_t count = 0;
    int rc = drover_dead (client, queue, action, chosen, chosen_count, 0,
                          &infos, &count, args->timeout_ms);
    free (chosen);
    if (rc)
        return s_failed (what, rc, args->timeout_ms);
    //  Count what the broker says it did (a chosen job may have gone
    //  meanwhile)
    size_t done = 0;
    for (size_t index = 0; index < count; index++) {
        drover_job_state_t state = infos [index].state;
        bool acted = action == DROVER_DEAD_PURGE? state == DROVER_JOB_UNKNOWN
                   : state != DROVER_JOB_FAILED && state != DROVER_JOB_UNKNOWN;
        if (acted)
            done++;
        else {
            cli_error ("%s: no longer a dead job of queue %s", infos [index].id, queue);
            exit_code = CLI_EXIT_FAILED;
        }
    }
    free (infos);
    printf ("%s %zu dead job%s of queue %s\n", verb, done, done == 1? "": "s", queue);
    return exit_code;
}

int
cli_dead (int argc, char **argv)
{
    cli_request_args_t args;
    int exit_code = cli_parse_request (argc, argv, s_dead_usage, CLI_LIMIT_TAKEN, &args);
    if (exit_code >= 0)
        return exit_code;
    const char *cmd = argv [0];
    if (args.word_count == 0)
        return cli_usage (cmd, "missing action: list, retry or purge");
    const char *action_word = args.words [0];
    drover_dead_action_t action;
    if (strcmp (action_word, "list") == 0)
        action = DROVER_DEAD_LIST;
    else
    if (strcmp (action_word, "retry") == 0)
        action = DROVER_DEAD_RETRY;
    else
    if (strcmp (action_word, "purge") == 0)
        action = DROVER_DEAD_PURGE;
    else
        return cli_usage (cmd, "unknown action '%s': use list, retry or purge", action_word);
    if (args.word_count < 2)
        return cli_usage (cmd, "missing QUEUE");
    const char *queue = args.words [1];
    if (!s_queue_arg (cmd, queue))
        return CLI_EXIT_USAGE;
    const char *const *ids = (const char *const *) args.words + 2;
    size_t id_count = (size_t) args.word_count - 2;
    if (action == DROVER_DEAD_LIST && id_count)
        return cli_usage (cmd, "unexpected argument '%s' (list takes no ids; see "
                          "'drover status ID')", ids [0]);
    if (action != DROVER_DEAD_LIST && args.limit_given)
        return cli_usage (cmd, "--limit is for 'dead list' only");
    if (cli_check_ids (cmd, ids, id_count))
        return CLI_EXIT_USAGE;

    drover_client_t *client = NULL;
    exit_code = cli_connect (&args.conn, cmd, &client);
    if (exit_code)
        return exit_code;
    if (action == DROVER_DEAD_LIST)
        exit_code = s_dead_list (client, queue, &args);
    else
        exit_code = s_dead_act (client, queue, action, &args, ids, id_count);
    drover_client_destroy (&client);
    return exit_code;
}
