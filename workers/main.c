/*  main.c - drover-worker: serves Drover queues with a pool of processes.

    Reads the command line, loads the handler (so a bad plugin is a usage
    error at once, not a crash loop in every child), and hands over to the
    supervisor, whose children each run serve_run().
*/
#define _GNU_SOURCE
#include "drover.h"
#include "exec_handler.h"
#include "options.h"
#include "plugin.h"
#include "serve.h"
#include "supervisor.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_PROGRAM "drover-worker"

//  What each child needs to start serving.
typedef struct {
    serve_config_t serve;       //  shared settings
    int processes;              //  fleet size, to label children
} s_fleet_args_t;

//  CPUs this process may run on: honours taskset and container cpusets,
//  which the online count does not.
static int
s_cpu_count (void)
{
    cpu_set_t set;
    if (sched_getaffinity (0, sizeof set, &set) == 0 && CPU_COUNT (&set) > 0)
        return CPU_COUNT (&set);
    long online = sysconf (_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int) online : 1;
}

//  A process started with 0, 1 or 2 closed would hand those numbers to the
//  first files and sockets it opens, and stray writes to "stderr" would
//  land in them.
static void
s_guard_std_fds (void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl (fd, F_GETFD) < 0 && errno == EBADF) {
            int null_fd = open ("/dev/null", O_RDWR);
            if (null_fd >= 0 && null_fd != fd)
                close (null_fd);    //  cannot happen: open takes the lowest free
        }
}

static int
s_child (void *arg, int slot, char *why, size_t why_size)
{
    s_fleet_args_t *args = (s_fleet_args_t *) arg;
    serve_config_t config = args->serve;
    //  Tell the children apart in the broker's logs.
    char name [160];
    if (config.connect.name && args->processes > 1) {
        snprintf (name, sizeof name, "%s-%d", config.connect.name, slot);
        config.connect.name = name;
    }
    return serve_run (&config, why, why_size);
}

//  Unreadable keys fail every child the same way; say so before forking.
static int
s_check_keys (const drover_connect_t *connect)
{
    if (connect->insecure)
        return 0;
    const char *paths [] = {connect->server_key, connect->cert};
    for (int i = 0; i < 2; i++)
        if (access (paths [i], R_OK)) {
            fprintf (stderr, S_PROGRAM ": cannot read certificate %s: %s\n",
                     paths [i], strerror (errno));
            return -1;
        }
    return 0;
}

int
main (int argc, char *argv [])
{
    s_guard_std_fds ();
    options_t options;
    char why [512];
    if (options_parse (&options, argc, argv, why, sizeof why)) {
        fprintf (stderr, S_PROGRAM ": %s (see --help)\n", why);
        options_free (&options);
        return 2;
    }
    if (options.help || options.version) {
        if (options.help)
            options_usage (&options, stdout);
        else
            printf (S_PROGRAM " %d.%d.%d\n", DROVER_VERSION_MAJOR, DROVER_VERSION_MINOR,
                    DROVER_VERSION_PATCH);
        options_free (&options);
        return 0;
    }
    if (options.print_config) {
        options_print (&options, stdout);
        options_free (&options);
        return fflush (stdout) == 0? 0: 1;
    }
    drv_log_setup (options.log_level, options.log_json);
    if (s_check_keys (&options.connect)) {
        options_free (&options);
        return 3;
    }
    if (options.connect.insecure)
        drv_log (DRV_LOG_WARN, "worker", "--insecure: talking to the broker in plaintext");

    plugin_t plugin = {0};
    s_fleet_args_t args = {
        .serve = {
            .connect = options.connect,
            .queues = options.queues,
            .queue_count = options.queue_count,
            .concurrency = options.concurrency,
            .prefetch = options.prefetch
        }
    };
    if (options.plugin_spec) {
        if (plugin_load (&plugin, options.plugin_spec, why, sizeof why)) {
            fprintf (stderr, S_PROGRAM ": %s\n", why);
            options_free (&options);
            return 2;
        }
        args.serve.handler = plugin.handler;
    }
    else {
        args.serve.handler = exec_handler;
        args.serve.handler_arg = (void *) options.exec_cmd;
    }
    args.processes = options.processes < 0 ? s_cpu_count () : options.processes;

    char queues [512] = "";
    for (size_t i = 0; i < options.queue_count; i++)
        snprintf (queues + strlen (queues), sizeof queues - strlen (queues), "%s%s",
                  i ? "," : "", options.queues [i]);
    drv_log (DRV_LOG_INFO, "worker", "serving %s from %s with %s '%s': %d process(es) x %d thread(s)",
             queues, options.connect.endpoint, options.plugin_spec ? "plugin" : "exec",
             options.plugin_spec ? options.plugin_spec : options.exec_cmd,
             args.processes, options.concurrency ? options.concurrency : 1);

    int status;
    if (args.processes == 0) {
        status = serve_run (&args.serve, why, sizeof why);
        if (status && why [0])
            fprintf (stderr, S_PROGRAM ": %s\n", why);
    }
    else {
        //  A child that has run this long got past its first connection
        //  (which gives up after the connect timeout); its siblings'
        //  failures after that are not the configuration's fault.
        supervisor_config_t config = {
            .processes = args.processes,
            .settle_ms = (uint32_t) options.connect.timeout_ms + 2000,
            .program = S_PROGRAM
        };
        status = supervisor_run (&config, s_child, &args);
    }
    plugin_unload (&plugin);
    options_free (&options);
    return status;
}
