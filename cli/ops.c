/*  ops.c - drover workers and drover health: what an operator asks a
    running broker.

    `workers` lists the workers connected to the broker from its stats
    reply. `health` asks the broker's HTTP endpoint (/readyz by default)
    over a plain TCP socket, so that container health checks and probes
    need nothing but this binary.
*/
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

//  workers --------------------------------------------------------------------

static const char *s_workers_usage =
    "Usage: drover workers [--all] [--json] [--timeout S]\n"
    "\n"
    "Lists the workers connected to the broker, one per line: name, key (its\n"
    "first 8 characters), queues served, credit (jobs it will still take), jobs\n"
    "in flight, when it connected, and how long since it last spoke. The broker\n"
    "lists at most its --max-batch peers; a note on stderr says when some are\n"
    "left out.\n"
    "\n"
    "Options:\n"
    "  -a, --all             the connected clients too, in a second table (the\n"
    "                        broker shows them to admin keys only)\n"
    "      --json            one JSON object per peer, one per line\n"
    "  -t, --timeout S       how long the broker may take to answer (default 5)\n"
    CLI_CONNECT_HELP
    "  -h, --help            show this help\n";

enum {
    S_OPT_JSON = 0x1200
};

//  Queue names of a peer joined with commas ("-" when none).
static void
s_join_queues (const drover_peer_info_t *peer, char *text, size_t size)
{
    size_t used = 0;
    text [0] = 0;
    for (size_t i = 0; i < peer->queue_count && used < size; i++)
        used += (size_t) snprintf (text + used, size - used, "%s%s", i? ",": "", peer->queues [i]);
    if (!text [0])
        snprintf (text, size, "-");
}

//  A duration in milliseconds as "850ms", "12.3s", "4m10s", "2h5m", "3d4h".
static void
s_format_idle (uint64_t ms, char *text, size_t size)
{
    uint64_t s = ms / 1000;
    if (ms < 1000)
        snprintf (text, size, "%" PRIu64 "ms", ms);
    else
    if (s < 60)
        snprintf (text, size, "%.1fs", ms / 1000.0);
    else
    if (s < 3600)
        snprintf (text, size, "%" PRIu64 "m%" PRIu64 "s", s / 60, s % 60);
    else
    if (s < 86400)
        snprintf (text, size, "%" PRIu64 "h%" PRIu64 "m", s / 3600, s % 3600 / 60);
    else
        snprintf (text, size, "%" PRIu64 "d%" PRIu64 "h", s / 86400, s % 86400 / 3600);
}

//  One peer as a JSON object on its own line.
static void
s_peer_json (const drover_peer_info_t *peer)
{
    printf ("{\"kind\":\"%s\",\"name\":", peer->kind == DROVER_PEER_WORKER? "worker": "client");
    cli_json_string (peer->name);
    printf (",\"key\":");
    cli_json_string (peer->key);
    printf (",\"role\":");
    cli_json_string (peer->role);
    if (peer->kind == DROVER_PEER_WORKER) {
        printf (",\"queues\":[");
        for (size_t q = 0; q < peer->queue_count; q++) {
            printf ("%s", q? ",": "");
            cli_json_string (peer->queues [q]);
        }
        printf ("],\"credit\":%" PRIu32 ",\"inflight\":%" PRIu32, peer->credit, peer->inflight);
    }
    printf (",\"connected_ms\":%" PRIu64 ",\"idle_ms\":%" PRIu64 "}\n",
            peer->connected_ms, peer->idle_ms);
}

//  The table of workers.
static void
s_workers_table (drover_stats_t *stats)
{
    int name_width = 4, queue_width = 6;
    char queues [1024];
    for (size_t i = 0; i < stats->peer_count; i++) {
        const drover_peer_info_t *peer = &stats->peers [i];
        if (peer->kind != DROVER_PEER_WORKER)
            continue;
        int length = (int) strlen (peer->name);
        if (length > name_width)
            name_width = length;
        s_join_queues (peer, queues, sizeof queues);
        length = (int) strlen (queues);
        if (length > queue_width)
            queue_width = length;
    }
    printf ("%-*s %-8s %-*s %6s %8s %-20s %8s\n", name_width, "NAME", "KEY",
            queue_width, "QUEUES", "CREDIT", "INFLIGHT", "CONNECTED", "IDLE");
    for (size_t i = 0; i < stats->peer_count; i++) {
        const drover_peer_info_t *peer = &stats->peers [i];
        if (peer->kind != DROVER_PEER_WORKER)
            continue;
        char since [32], idle [32];
        cli_format_time (peer->connected_ms, since, sizeof since);
        s_format_idle (peer->idle_ms, idle, sizeof idle);
        s_join_queues (peer, queues, sizeof queues);
        printf ("%-*s %-8.8s %-*s %6" PRIu32 " %8" PRIu32 " %-20s %8s\n",
                name_width, peer->name, *peer->key? peer->key: "-", queue_width, queues,
                peer->credit, peer->inflight, since, idle);
    }
}

//  The table of clients.
static void
s_clients_table (drover_stats_t *stats)
{
    int name_width = 6;
    for (size_t i = 0; i < stats->peer_count; i++)
        if (stats->peers [i].kind == DROVER_PEER_CLIENT
        &&  (int) strlen (stats->peers [i].name) > name_width)
            name_width = (int) strlen (stats->peers [i].name);
    printf ("\n%-*s %-8s %-8s %-20s %8s\n", name_width, "CLIENT", "KEY", "ROLE",
            "CONNECTED", "IDLE");
    for (size_t i = 0; i < stats->peer_count; i++) {
        const drover_peer_info_t *peer = &stats->peers [i];
        if (peer->kind != DROVER_PEER_CLIENT)
            continue;
        char since [32], idle [32];
        cli_format_time (peer->connected_ms, since, sizeof since);
        s_format_idle (peer->idle_ms, idle, sizeof idle);
        printf ("%-*s %-8.8s %-8s %-20s %8s\n", name_width, peer->name,
                *peer->key? peer->key: "-", *peer->role? peer->role: "-", since, idle);
    }
}

int
cli_workers (int argc, char **argv)
{
    static const struct option options [] = {
        { "all",     no_argument,       NULL, 'a' },
        { "json",    no_argument,       NULL, S_OPT_JSON },
        { "timeout", required_argument, NULL, 't' },
        { "help",    no_argument,       NULL, 'h' },
        CLI_CONNECT_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    const char *cmd = argv [0];
    drover_connect_t conn;
    memset (&conn, 0, sizeof conn);
    bool all = false, json = false;
    int timeout_ms = CLI_DEFAULT_REQUEST_MS;
    int64_t ms;
    int opt;
    while ((opt = cli_getopt_connect (argc, argv, ":at:h", options, &conn)) != -1) {
        switch (opt) {
            case 'a':
                all = true;
                break;
            case S_OPT_JSON:
                json = true;
                break;
            case 't':
                if (cli_parse_seconds (optarg, &ms) || ms < 1 || ms > INT32_MAX)
                    return cli_usage (cmd, "--timeout wants seconds > 0, not '%s'", optarg);
                timeout_ms = (int) ms;
                break;
            case 'h':
                fputs (s_workers_usage, stdout);
                return CLI_EXIT_OK;
            default:
                return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage (cmd, "unexpected argument '%s'", argv [optind]);

    drover_client_t *client = NULL;
    int exit_code = cli_connect (&conn, cmd, &client);
    if (exit_code)
        return exit_code;
    drover_stats_t *stats = NULL;
    int rc = drover_stats (client, &stats, timeout_ms);
    drover_client_destroy (&client);
    if (rc)
        return cli_request_failed (cmd, rc, timeout_ms);

    //  Names come from peers: keep each on its line.
    for (size_t i = 0; i < stats->peer_count; i++)
        cli_one_line (stats->peers [i].name);
    if (json) {
        for (size_t i = 0; i < stats->peer_count; i++)
            if (all || stats->peers [i].kind == DROVER_PEER_WORKER)
                s_peer_json (&stats->peers [i]);
    }
    else {
        s_workers_table (stats);
        if (all)
            s_clients_table (stats);
    }
    //  The broker lists at most one message's worth of peers.
    size_t listed = 0;
    for (size_t i = 0; i < stats->peer_count; i++)
        listed += stats->peers [i].kind == DROVER_PEER_WORKER;
    if (listed < stats->workers)
        cli_error ("workers: the broker listed %zu of its %" PRIu32 " workers", listed,
                   stats->workers);
    drover_stats_destroy (&stats);
    return CLI_EXIT_OK;
}

//  health ---------------------------------------------------------------------

#define S_HEALTH_URL      "http://127.0.0.1:9090/readyz"
#define S_HEALTH_MAX      65536     //  most bytes of an answer we read

static const char *s_health_usage =
    "Usage: drover health [--url URL] [--timeout MS]\n"
    "\n"
    "Asks the broker's HTTP endpoint whether it is ready: GET URL (default\n"
    S_HEALTH_URL ", or DROVER_HEALTH_URL). Exit status 0 on HTTP\n"
    "200 (the body is printed), 1 otherwise with one line on stderr saying why\n"
    "(connection refused, no answer in time, or the status and body). For\n"
    "container health checks and probes; droverd serves /healthz (alive),\n"
    "/readyz (serving) and /metrics.\n"
    "\n"
    "Options:\n"
    "      --url URL         http://HOST[:PORT][/PATH] (port 80, path / if left out)\n"
    "  -t, --timeout MS      give up after MS milliseconds in all (default 2000)\n"
    "  -h, --help            show this help\n";

//  The parts of an http:// URL.
typedef struct {
    char host [256];            //  name or address, without brackets
    char port [8];              //  decimal port
    char path [1024];           //  starts with '/'
} s_url_t;

static int
s_parse_url (const char *text, s_url_t *url)
{
    if (strncmp (text, "http://", 7))
        return -1;
    const char *host = text + 7;
    const char *path = strchr (host, '/');
    size_t host_length = path? (size_t) (path - host): strlen (host);
    snprintf (url->path, sizeof url->path, "%s", path? path: "/");
    if (host_length == 0 || host_length >= sizeof url->host)
        return -1;
    char authority [256];
    memcpy (authority, host, host_length);
    authority [host_length] = 0;
    char *port = NULL;
    if (authority [0] == '[') {
        //  [IPv6]:PORT
        char *close = strchr (authority, ']');
        if (!close)
            return -1;
        *close = 0;
        snprintf (url->host, sizeof url->host, "%s", authority + 1);
        if (close [1] == ':')
            port = close + 2;
        else
        if (close [1])
            return -1;
    }
    else {
        port = strrchr (authority, ':');
        if (port)
            *port++ = 0;
        snprintf (url->host, sizeof url->host, "%s", authority);
    }
    if (!url->host [0])
        return -1;
    long number = 80;
    if (port && cli_parse_long (port, 1, 65535, &number))
        return -1;
    snprintf (url->port, sizeof url->port, "%ld", number);
    for (const char *c = url->path; *c; c++)
        if ((unsigned char) *c <= ' ')
            return -1;
    return 0;
}

//  Milliseconds left before deadline, at least 0.
static int
s_left (int64_t deadline)
{
    int64_t left = deadline - cli_now_ms ();
    return left > 0? (int) left: 0;
}

//  Connects to url before deadline. Returns the socket, or -1 with why.
static int
s_health_connect (const s_url_t *url, int64_t deadline, char *why, size_t why_size)
{
    struct addrinfo hints, *addresses = NULL;
    memset (&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo (url->host, url->port, &hints, &addresses);
    if (rc) {
        snprintf (why, why_size, "cannot resolve %.100s: %s", url->host, gai_strerror (rc));
        return -1;
    }
    int fd = -1;
    snprintf (why, why_size, "no address for %.100s", url->host);
    for (struct addrinfo *address = addresses; address; address = address->ai_next) {
        fd = socket (address->ai_family, address->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                     address->ai_protocol);
        if (fd < 0) {
            snprintf (why, why_size, "socket: %s", strerror (errno));
            continue;
        }
        if (connect (fd, address->ai_addr, address->ai_addrlen) == 0)
            break;
        int error = errno;
        if (error == EINPROGRESS) {
            struct pollfd item = { .fd = fd, .events = POLLOUT };
            int ready = poll (&item, 1, s_left (deadline));
            if (ready == 0) {
                snprintf (why, why_size, "no connection within the timeout");
                close (fd);
                fd = -1;
                break;
            }
            socklen_t length = sizeof error;
            if (ready < 0 || getsockopt (fd, SOL_SOCKET, SO_ERROR, &error, &length))
                error = errno;
            if (error == 0)
                break;
        }
        snprintf (why, why_size, "cannot connect: %s", strerror (error));
        close (fd);
        fd = -1;
    }
    freeaddrinfo (addresses);
    return fd;
}

//  True once buffer holds the headers and as much body as their
//  Content-Length announces, so that a server that keeps the connection
//  open after answering is not waited for. Without Content-Length the
//  answer ends when the server closes.
static bool
s_answer_complete (const char *buffer, size_t size)
{
    const char *end = strstr (buffer, "\r\n\r\n");
    if (!end)
        return false;
    size_t header_size = (size_t) (end - buffer) + 4;
    for (const char *line = strstr (buffer, "\r\n"); line && line < end; line = strstr (line + 2, "\r\n")) {
        if (strncasecmp (line + 2, "Content-Length:", 15) == 0) {
            char *after;
            unsigned long long length = strtoull (line + 17, &after, 10);
            return after != line + 17 && size >= header_size + length;
        }
    }
    return false;
}

//  Sends the request and reads the whole answer (until the server closes)
//  into buffer. Returns its length, or -1 with why.
static int
s_health_exchange (int fd, const s_url_t *url, int64_t deadline,
                   char *buffer, size_t size, char *why, size_t why_size)
{
    char request [1536];
    bool ipv6 = strchr (url->host, ':') != NULL;
    int length = snprintf (request, sizeof request,
                           "GET %s HTTP/1.0\r\nHost: %s%s%s:%s\r\n"
                           "User-Agent: drover-health\r\nConnection: close\r\n\r\n",
                           url->path, ipv6? "[": "", url->host, ipv6? "]": "", url->port);
    size_t sent = 0;
    while (sent < (size_t) length) {
        struct pollfd item = { .fd = fd, .events = POLLOUT };
        if (poll (&item, 1, s_left (deadline)) <= 0) {
            snprintf (why, why_size, "no answer within the timeout");
            return -1;
        }
        ssize_t rc = send (fd, request + sent, (size_t) length - sent, MSG_NOSIGNAL);
        if (rc < 0 && errno != EAGAIN && errno != EINTR) {
            snprintf (why, why_size, "cannot send the request: %s", strerror (errno));
            return -1;
        }
        if (rc > 0)
            sent += (size_t) rc;
    }
    size_t received = 0;
    while (received < size - 1) {
        struct pollfd item = { .fd = fd, .events = POLLIN };
        int ready = poll (&item, 1, s_left (deadline));
        if (ready == 0) {
            snprintf (why, why_size, received? "answer incomplete within the timeout"
                                             : "no answer within the timeout");
            return -1;
        }
        ssize_t rc = recv (fd, buffer + received, size - 1 - received, 0);
        if (rc == 0)
            break;
        if (rc < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            snprintf (why, why_size, "cannot read the answer: %s", strerror (errno));
            return -1;
        }
        received += (size_t) rc;
        buffer [received] = 0;
        if (s_answer_complete (buffer, received))
            break;
    }
    buffer [received] = 0;
    return (int) received;
}

int
cli_health (int argc, char **argv)
{
    static const struct option options [] = {
        { "url",     required_argument, NULL, 'u' },
        { "timeout", required_argument, NULL, 't' },
        { "help",    no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *cmd = argv [0];
    const char *url_text = getenv ("DROVER_HEALTH_URL");
    if (!url_text || !*url_text)
        url_text = S_HEALTH_URL;
    long timeout_ms = 2000;
    int opt;
    while ((opt = cli_getopt (argc, argv, ":u:t:h", options)) != -1) {
        switch (opt) {
            case 'u':
                url_text = optarg;
                break;
            case 't':
                if (cli_parse_long (optarg, 1, 3600000, &timeout_ms))
                    return cli_usage (cmd, "--timeout wants milliseconds from 1 to 3600000, "
                                      "not '%s'", optarg);
                break;
            case 'h':
                fputs (s_health_usage, stdout);
                return CLI_EXIT_OK;
            default:
                return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage (cmd, "unexpected argument '%s'", argv [optind]);
    s_url_t url;
    if (s_parse_url (url_text, &url))
        return cli_usage (cmd, "'%s' is not a URL of the form http://HOST:PORT/PATH", url_text);

    int64_t deadline = cli_now_ms () + timeout_ms;
    char why [256];
    int fd = s_health_connect (&url, deadline, why, sizeof why);
    if (fd < 0) {
        cli_error ("health: %s: %s", url_text, why);
        return CLI_EXIT_FAILED;
    }
    char *answer = malloc (S_HEALTH_MAX);
    if (!answer) {
        close (fd);
        cli_error ("health: out of memory");
        return CLI_EXIT_FAILED;
    }
    int length = s_health_exchange (fd, &url, deadline, answer, S_HEALTH_MAX, why, sizeof why);
    close (fd);
    if (length < 0) {
        cli_error ("health: %s: %s", url_text, why);
        free (answer);
        return CLI_EXIT_FAILED;
    }
    //  Status line "HTTP/1.x NNN reason", headers, blank line, body.
    int status = 0;
    if (strncmp (answer, "HTTP/", 5) || sscanf (answer, "HTTP/%*d.%*d %d", &status) != 1
    ||  status < 100 || status > 999) {
        char first [80];
        snprintf (first, sizeof first, "%.*s", (int) strcspn (answer, "\r\n"), answer);
        cli_one_line (first);
        cli_error ("health: %s: not an HTTP answer: '%s'", url_text, first);
        free (answer);
        return CLI_EXIT_FAILED;
    }
    char *body = strstr (answer, "\r\n\r\n");
    body = body? body + 4: (body = strstr (answer, "\n\n"))? body + 2: answer + length;
    //  One line of the body is enough to say why.
    char text [200];
    snprintf (text, sizeof text, "%s", body);
    text [strcspn (text, "\r\n")] = 0;
    cli_one_line (text);
    int exit_code = CLI_EXIT_OK;
    if (status == 200)
        printf ("%s\n", *text? text: "ok");
    else {
        cli_error ("health: %s: HTTP %d%s%s", url_text, status, *text? ": ": "", text);
        exit_code = CLI_EXIT_FAILED;
    }
    free (answer);
    return exit_code;
}
