/*  test_http.c - the broker's HTTP server (broker/http.c) against real TCP
    clients on 127.0.0.1, with the port chosen by the OS.

    One process: the test is both the server's loop (poll the STREAM
    socket, http_handle) and its clients (plain non-blocking sockets), so
    every case is deterministic and nothing needs stopping afterwards.
*/
#include "http.h"
#include "checks.h"
#include "prom.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>


#define S_METRICS_BODY "drover_up 1\n"
#define S_BIG_SIZE (300 * 1024)

static char *s_big;                     //  a large body, to see it arrive whole
static int s_handled;                   //  handler calls

static void
s_handler (const char *method, const char *path, http_response_t *response, void *arg)
{
    (void) arg;
    s_handled++;
    if (strcmp (path, "/metrics") == 0) {
        response->status = 200;
        response->content_type = PROM_CONTENT_TYPE;
        response->body = S_METRICS_BODY;
        response->size = strlen (S_METRICS_BODY);
    }
    else
    if (strcmp (path, "/big") == 0) {
        response->status = 200;
        response->body = s_big;
        response->size = S_BIG_SIZE;
    }
    else
    if (strcmp (path, "/method") == 0) {
        response->status = 200;
        response->body = method;
        response->size = strlen (method);
    }
    else
    if (strcmp (path, "/gone") == 0) {
        response->status = 404;
        response->body = "no such thing\n";
        response->size = strlen ("no such thing\n");
    }
    //  anything else: the default 404
}


//  Clients ------------------------------------------------------------------

static int s_port;

static int
s_connect (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) s_port)};
    inet_pton (AF_INET, "127.0.0.1", &addr.sin_addr);
    if (connect (fd, (struct sockaddr *) &addr, sizeof addr) != 0) {
        close (fd);
        return -1;
    }
    fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void
s_write (int fd, const void *data, size_t size)
{
    const char *p = data;
    while (size > 0) {
        ssize_t n = send (fd, p, size, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            struct pollfd pfd = {fd, POLLOUT, 0};
            poll (&pfd, 1, 100);
            continue;
        }
        if (n <= 0)
            return;             //  the server closed on us; the reply tells
        p += n;
        size -= (size_t) n;
    }
}

//  Runs the server's loop for up to ms milliseconds.
static void
s_pump (http_t *http, int ms)
{
    uint64_t end = drv_now_ms () + (uint64_t) ms;
    while (true) {
        uint64_t now = drv_now_ms ();
        if (now >= end)
            break;
        zmq_pollitem_t item = {zsock_resolve (http_socket (http)), 0, ZMQ_POLLIN, 0};
        zmq_poll (&item, 1, (long) (end - now));
        if (item.revents & ZMQ_POLLIN)
            http_handle (http, s_handler, NULL);
    }
}

typedef struct {
    char *data;         //  everything read, NUL-terminated
    size_t size;        //  bytes read
    bool eof;           //  the server closed the connection cleanly
    bool reset;         //  the connection failed
} s_reply_t;

static void
s_reply_free (s_reply_t *reply)
{
    free (reply->data);
    memset (reply, 0, sizeof *reply);
}

//  Reads from each of count fds until it closes, running the server
//  meanwhile; gives up after timeout_ms.
static void
s_read_all (http_t *http, const int *fds, s_reply_t *replies, size_t count, int timeout_ms)
{
    uint64_t end = drv_now_ms () + (uint64_t) timeout_ms;
    zmq_pollitem_t *items = calloc (count + 1, sizeof *items);
    size_t open = 0;
    for (size_t i = 0; i < count; i++)
        if (!replies [i].eof && !replies [i].reset)
            open++;
    while (open > 0 && drv_now_ms () < end) {
        items [0] = (zmq_pollitem_t) {zsock_resolve (http_socket (http)), 0, ZMQ_POLLIN, 0};
        for (size_t i = 0; i < count; i++) {
            bool done = replies [i].eof || replies [i].reset;
            items [i + 1] = (zmq_pollitem_t) {NULL, done? -1: fds [i], ZMQ_POLLIN, 0};
        }
        zmq_poll (items, (int) count + 1, 50);
        if (items [0].revents & ZMQ_POLLIN)
            http_handle (http, s_handler, NULL);
        for (size_t i = 0; i < count; i++) {
            if (!(items [i + 1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
                continue;
            char buf [65536];
            ssize_t n = recv (fds [i], buf, sizeof buf, 0);
            if (n > 0) {
                s_reply_t *r = &replies [i];
                r->data = realloc (r->data, r->size + (size_t) n + 1);
                memcpy (r->data + r->size, buf, (size_t) n);
                r->size += (size_t) n;
                r->data [r->size] = '\0';
            }
            else
            if (n == 0 || errno != EAGAIN) {
                if (n == 0)
                    replies [i].eof = true;
                else
                    replies [i].reset = true;
                open--;
            }
        }
    }
    free (items);
}

//  One request on a fresh connection: writes it, reads the reply.
static s_reply_t
s_request (http_t *http, const char *request, size_t size)
{
    s_reply_t reply = {0};
    int fd = s_connect ();
    if (fd < 0) {
        reply.reset = true;
        return reply;
    }
    s_write (fd, request, size);
    s_read_all (http, &fd, &reply, 1, 5000);
    close (fd);
    return reply;
}

static s_reply_t
s_get (http_t *http, const char *request)
{
    return s_request (http, request, strlen (request));
}

static bool
s_status_is (const s_reply_t *reply, const char *status_line)
{
    return reply->data && strncmp (reply->data, status_line, strlen (status_line)) == 0;
}

//  The body after the head, or NULL.
static const char *
s_body (const s_reply_t *reply)
{
    const char *end = reply->data? strstr (reply->data, "\r\n\r\n"): NULL;
    return end? end + 4: NULL;
}

static bool
s_has_header (const s_reply_t *reply, const char *header)
{
    const char *body = s_body (reply);
    const char *found = reply->data? strstr (reply->data, header): NULL;
    return found && body && found < body;
}

//  Waits (serving) until the server tracks count connections.
static bool
s_wait_connections (http_t *http, size_t count)
{
    for (int i = 0; i < 200 && http_connections (http) != count; i++)
        s_pump (http, 10);
    return http_connections (http) == count;
}


//  Cases --------------------------------------------------------------------

static void
s_test_get (http_t *http)
{
    s_reply_t r = s_get (http, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
    CHECK (r.eof, "connection closed after the reply");
    CHECK (s_status_is (&r, "HTTP/1.1 200 OK\r\n"), "status: %s", r.data? r.data: "(none)");
    CHECK (s_has_header (&r, "Content-Type: " PROM_CONTENT_TYPE "\r\n"), "content type");
    CHECK (s_has_header (&r, "Content-Length: 12\r\n"), "content length");
    CHECK (s_has_header (&r, "Connection: close\r\n"), "connection: close");
    CHECK (s_body (&r) && strcmp (s_body (&r), S_METRICS_BODY) == 0, "body: %s",
           s_body (&r)? s_body (&r): "(none)");
    s_reply_free (&r);

    //  Query strings are not part of the path; HTTP/1.0 and bare LF work
    r = s_get (http, "GET /metrics?name=x HTTP/1.0\n\n");
    CHECK (s_status_is (&r, "HTTP/1.1 200 OK\r\n"), "query: %s", r.data? r.data: "(none)");
    CHECK (s_body (&r) && strcmp (s_body (&r), S_METRICS_BODY) == 0, "query body");
    s_reply_free (&r);

    //  A body of 300 KB arrives whole
    r = s_get (http, "GET /big HTTP/1.1\r\n\r\n");
    CHECK (s_status_is (&r, "HTTP/1.1 200 OK\r\n"), "big status");
    CHECK (s_has_header (&r, "Content-Length: 307200\r\n"), "big length");
    const char *body = s_body (&r);
    CHECK (body && r.size - (size_t) (body - r.data) == S_BIG_SIZE
           && memcmp (body, s_big, S_BIG_SIZE) == 0, "big body of %zu bytes",
           body? r.size - (size_t) (body - r.data): 0);
    s_reply_free (&r);
}

static void
s_test_head (http_t *http)
{
    s_reply_t r = s_get (http, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK (s_status_is (&r, "HTTP/1.1 200 OK\r\n"), "HEAD status: %s", r.data? r.data: "(none)");
    CHECK (s_has_header (&r, "Content-Length: 12\r\n"), "HEAD gives GET's length");
    CHECK (s_body (&r) && *s_body (&r) == '\0', "HEAD has no body");
    CHECK (r.eof, "HEAD closed");
    s_reply_free (&r);

    r = s_get (http, "HEAD /method HTTP/1.1\r\n\r\n");
    CHECK (s_has_header (&r, "Content-Length: 4\r\n"), "handler saw HEAD");
    s_reply_free (&r);
    r = s_get (http, "GET /method HTTP/1.1\r\n\r\n");
    CHECK (s_body (&r) && strcmp (s_body (&r), "GET") == 0, "handler saw GET");
    s_reply_free (&r);
}

static void
s_test_not_found (http_t *http)
{
    s_reply_t r = s_get (http, "GET /gone HTTP/1.1\r\n\r\n");
    CHECK (s_status_is (&r, "HTTP/1.1 404 Not Found\r\n"), "handler 404: %s", r.data? r.data: "(none)");
    CHECK (s_body (&r) && strcmp (s_body (&r), "no such thing\n") == 0, "handler's 404 body");
    s_reply_free (&r);
    r = s_get (http, "GET /nothing/here HTTP/1.1\r\n\r\n");
    CHECK (s_status_is (&r, "HTTP/1.1 404 Not Found\r\n"), "default 404");
    s_reply_free (&r);
}

static void
s_test_bad_method (http_t *http)
{
    int before = s_handled;
    const char *methods [] = {"POST", "PUT", "DELETE", "OPTIONS", "get", "PATCH"};
    for (size_t i = 0; i < sizeof methods / sizeof methods [0]; i++) {
        char request [128];
        snprintf (request, sizeof request,
                  "%s /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", methods [i]);
        s_reply_t r = s_get (http, request);
        CHECK (s_status_is (&r, "HTTP/1.1 405 Method Not Allowed\r\n"), "%s: %s", methods [i],
               r.data? r.data: "(none)");
        CHECK (s_has_header (&r, "Allow: GET, HEAD\r\n"), "%s: Allow header", methods [i]);
        s_reply_free (&r);
    }
    CHECK (s_handled == before, "the handler never saw them");
}

static void
s_test_garbage (http_t *http)
{
    int before = s_handled;
    struct {
        const char *request;
        size_t size;
        const char *status;
    } cases [] = {
        {"hello\r\n\r\n", 0, "HTTP/1.1 400 "},
        {"GET\r\n\r\n", 0, "HTTP/1.1 400 "},
        {"GET /\r\n\r\n", 0, "HTTP/1.1 400 "},
        {"GET metrics HTTP/1.1\r\n\r\n", 0, "HTTP/1.1 400 "},
        {"GET /metrics HTTP/1.1 extra\r\n\r\n", 0, "HTTP/1.1 400 "},
        {"GET /metrics FTP/1.1\r\n\r\n", 0, "HTTP/1.1 400 "},
        {"GET  /metrics HTTP/1.1\r\n\r\n", 0, "HTTP/1.1 400 "},
        {"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", 0, "HTTP/1.1 400 "},
        {"GET /metrics HTTP/1.1\r\n : empty name\r\n\r\n", 0, "HTTP/1.1 400 "},
        {"GET /metrics HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 0, "HTTP/1.1 400 "},
        {"GET /met\x01rics HTTP/1.1\r\n\r\n", 0, "HTTP/1.1 400 "},
        {"GET /metrics HTTP/1.1\r\nX: a\0b\r\n\r\n", 33, "HTTP/1.1 400 "},
        {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15, "HTTP/1.1 400 "},
        {"GET /metrics HTTP/2.0\r\n\r\n", 0, "HTTP/1.1 505 "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        size_t size = cases [i].size? cases [i].size: strlen (cases [i].request);
        s_reply_t r = s_request (http, cases [i].request, size);
        CHECK (s_status_is (&r, cases [i].status), "case %zu: got %s", i, r.data? r.data: "(none)");
        CHECK (r.eof, "case %zu closed", i);
        s_reply_free (&r);
    }
    CHECK (s_handled == before, "the handler never saw them");

    //  Random bytes: some answer every time, and the server goes on
    unsigned seed = 12345;
    int answered = 0;
    for (int i = 0; i < 40; i++) {
        char request [300];
        size_t size = 1 + (size_t) (rand_r (&seed) % 250);
        for (size_t j = 0; j < size; j++)
            request [j] = (char) (rand_r (&seed) & 0xFF);
        memcpy (request + size, "\r\n\r\n", 4);
        s_reply_t r = s_request (http, request, size + 4);
        if (s_status_is (&r, "HTTP/1.1 "))
            answered++;
        s_reply_free (&r);
    }
    CHECK (answered == 40, "random requests answered: %d of 40", answered);
}

static void
s_test_huge_head (http_t *http)
{
    size_t size = HTTP_MAX_HEAD + 200;
    char *request = malloc (size);
    memcpy (request, "GET /metrics HTTP/1.1\r\nX-Long: ", 31);
    memset (request + 31, 'a', size - 31);
    s_reply_t r = s_request (http, request, size);
    CHECK (s_status_is (&r, "HTTP/1.1 431 Request Header Fields Too Large\r\n"), "huge head: %s",
           r.data? r.data: (r.reset? "(reset)": "(none)"));
    s_reply_free (&r);

    //  Exactly at the limit, with its end: served
    const char *start = "GET /metrics HTTP/1.1\r\nX-Long: ";
    size = HTTP_MAX_HEAD;
    memcpy (request, start, strlen (start));
    memset (request + strlen (start), 'b', size - strlen (start) - 4);
    memcpy (request + size - 4, "\r\n\r\n", 4);
    r = s_request (http, request, size);
    CHECK (s_status_is (&r, "HTTP/1.1 200 OK\r\n"), "head of exactly %d bytes: %.40s",
           HTTP_MAX_HEAD, r.data? r.data: "(none)");
    s_reply_free (&r);
    free (request);
}

static void
s_test_split (http_t *http)
{
    const char *parts [] = {"GE", "T /met", "rics HTTP/1.1\r", "\nHost: x\r\n", "\r", "\n"};
    int fd = s_connect ();
    CHECK (fd >= 0, "connect");
    for (size_t i = 0; i < sizeof parts / sizeof parts [0]; i++) {
        s_write (fd, parts [i], strlen (parts [i]));
        s_pump (http, 30);
        if (i + 1 < sizeof parts / sizeof parts [0])
            CHECK (s_wait_connections (http, 1), "still waiting after part %zu", i);
    }
    s_reply_t r = {0};
    s_read_all (http, &fd, &r, 1, 5000);
    CHECK (s_status_is (&r, "HTTP/1.1 200 OK\r\n"), "split request: %s", r.data? r.data: "(none)");
    CHECK (s_body (&r) && strcmp (s_body (&r), S_METRICS_BODY) == 0, "split body");
    s_reply_free (&r);
    close (fd);
}

static void
s_test_slow_client (http_t *http)
{
    int fd = s_connect ();
    s_write (fd, "GET /metrics HTTP/1.1\r\nHost:", 28);
    CHECK (s_wait_connections (http, 1), "partial request held");
    uint64_t now = drv_now_ms ();
    http_expire (http, now + HTTP_IDLE_MS - 1000);
    CHECK (http_connections (http) == 1, "not expired before its time");
    http_expire (http, now + HTTP_IDLE_MS + 1000);
    CHECK (http_connections (http) == 0, "expired");
    s_reply_t r = {0};
    s_read_all (http, &fd, &r, 1, 5000);
    CHECK (s_status_is (&r, "HTTP/1.1 408 Request Timeout\r\n"), "slow client: %s",
           r.data? r.data: "(none)");
    CHECK (r.eof, "slow client closed");
    s_reply_free (&r);
    close (fd);

    //  A connection that never sends a byte is closed silently
    fd = s_connect ();
    CHECK (s_wait_connections (http, 1), "silent connection seen");
    http_expire (http, drv_now_ms () + HTTP_IDLE_MS + 1000);
    s_read_all (http, &fd, &r, 1, 5000);
    CHECK (r.eof && r.size == 0, "silent connection closed without a reply");
    s_reply_free (&r);
    close (fd);
}

static void
s_test_many (http_t *http)
{
    enum { COUNT = 100 };
    int fds [COUNT];
    s_reply_t replies [COUNT];
    memset (replies, 0, sizeof replies);
    const char *request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < COUNT; i++) {
        fds [i] = s_connect ();
        CHECK (fds [i] >= 0, "connect %d", i);
    }
    for (int i = 0; i < COUNT; i++)
        s_write (fds [i], request, strlen (request));
    uint64_t start = drv_now_ms ();
    s_read_all (http, fds, replies, COUNT, 10000);
    int good = 0;
    for (int i = 0; i < COUNT; i++) {
        if (replies [i].eof && s_status_is (&replies [i], "HTTP/1.1 200 OK\r\n")
        &&  s_body (&replies [i]) && strcmp (s_body (&replies [i]), S_METRICS_BODY) == 0)
            good++;
        s_reply_free (&replies [i]);
        close (fds [i]);
    }
    CHECK (good == COUNT, "%d of %d concurrent requests served", good, COUNT);
    printf ("%d concurrent requests served in %llu ms\n", good,
            (unsigned long long) (drv_now_ms () - start));
    CHECK (s_wait_connections (http, 0), "no connection left");
}

static void
s_test_partial_limit (http_t *http)
{
    enum { COUNT = HTTP_MAX_PARTIAL + 6 };
    int fds [COUNT];
    s_reply_t replies [COUNT];
    memset (replies, 0, sizeof replies);
    for (int i = 0; i < COUNT; i++) {
        fds [i] = s_connect ();
        s_write (fds [i], "GET /", 5);
        s_pump (http, 2);
    }
    s_pump (http, 200);
    CHECK (http_connections (http) == HTTP_MAX_PARTIAL, "partial requests held: %zu",
           http_connections (http));
    //  The first six (idle longest) were closed without a reply
    s_read_all (http, fds, replies, 6, 2000);
    int closed = 0;
    for (int i = 0; i < 6; i++)
        if (replies [i].eof && replies [i].size == 0)
            closed++;
    CHECK (closed == 6, "oldest closed: %d of 6", closed);
    //  The rest finish their requests and are served
    for (int i = 6; i < COUNT; i++)
        s_write (fds [i], "metrics HTTP/1.1\r\n\r\n", 20);
    s_read_all (http, fds + 6, replies + 6, COUNT - 6, 10000);
    int good = 0;
    for (int i = 6; i < COUNT; i++)
        if (s_status_is (&replies [i], "HTTP/1.1 200 OK\r\n"))
            good++;
    CHECK (good == COUNT - 6, "held requests served: %d of %d", good, COUNT - 6);
    for (int i = 0; i < COUNT; i++) {
        s_reply_free (&replies [i]);
        close (fds [i]);
    }
    CHECK (s_wait_connections (http, 0), "no connection left");
}

static void
s_test_disconnect (http_t *http)
{
    int fd = s_connect ();
    s_write (fd, "GET /metr", 9);
    CHECK (s_wait_connections (http, 1), "partial request held");
    close (fd);
    CHECK (s_wait_connections (http, 0), "forgotten once the client left");

    //  A client that leaves right after a whole request
    fd = s_connect ();
    s_write (fd, "GET /big HTTP/1.1\r\n\r\n", 21);
    close (fd);
    CHECK (s_wait_connections (http, 0), "nothing left after an abandoned request");

    //  And the server still serves
    s_reply_t r = s_get (http, "GET /metrics HTTP/1.1\r\n\r\n");
    CHECK (s_status_is (&r, "HTTP/1.1 200 OK\r\n"), "served after disconnects");
    s_reply_free (&r);
}

//  More connections than HTTP_MAX_CONNECTIONS, none saying anything: the
//  ones idle longest are closed, the server keeps its bound.
static void
s_test_connection_cap (http_t *http)
{
    enum { EXTRA = 10, COUNT = HTTP_MAX_CONNECTIONS + EXTRA };
    //  Client and server ends, plus what the process already holds
    struct rlimit limit;
    getrlimit (RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < 2 * COUNT + 100 && limit.rlim_max >= 2 * COUNT + 100) {
        limit.rlim_cur = 2 * COUNT + 100;
        setrlimit (RLIMIT_NOFILE, &limit);
        getrlimit (RLIMIT_NOFILE, &limit);
    }
    if (limit.rlim_cur < 2 * COUNT + 100) {
        printf ("connection cap: skipped, only %llu file descriptors\n",
                (unsigned long long) limit.rlim_cur);
        return;
    }
    int *fds = calloc (COUNT, sizeof *fds);
    s_reply_t *replies = calloc (COUNT, sizeof *replies);
    int opened = 0;
    for (int i = 0; i < COUNT; i++) {
        fds [i] = s_connect ();
        if (fds [i] >= 0)
            opened++;
        if (i % 25 == 24)
            s_pump (http, 5);   //  keeps the listen backlog short
    }
    CHECK (opened == COUNT, "opened %d of %d", opened, COUNT);
    CHECK (s_wait_connections (http, HTTP_MAX_CONNECTIONS), "server holds %zu, at most %d",
           http_connections (http), HTTP_MAX_CONNECTIONS);
    s_pump (http, 100);
    CHECK (http_connections (http) == HTTP_MAX_CONNECTIONS, "still %zu", http_connections (http));
    s_read_all (http, fds, replies, COUNT, 500);
    int closed = 0;
    for (int i = 0; i < COUNT; i++)
        if (replies [i].eof && replies [i].size == 0)
            closed++;
    CHECK (closed == EXTRA, "closed beyond the cap: %d, expected %d", closed, EXTRA);
    //  Everyone else goes when idle too long
    http_expire (http, drv_now_ms () + HTTP_IDLE_MS + 1000);
    CHECK (http_connections (http) == 0, "all expired");
    s_read_all (http, fds, replies, COUNT, 5000);
    closed = 0;
    for (int i = 0; i < COUNT; i++) {
        if (replies [i].eof && replies [i].size == 0)
            closed++;
        s_reply_free (&replies [i]);
        if (fds [i] >= 0)
            close (fds [i]);
    }
    CHECK (closed == COUNT, "all closed silently: %d of %d", closed, COUNT);
    free (fds);
    free (replies);
    //  And the server still serves
    s_reply_t r = s_get (http, "GET /metrics HTTP/1.1\r\n\r\n");
    CHECK (s_status_is (&r, "HTTP/1.1 200 OK\r\n"), "served after the cap");
    s_reply_free (&r);
}

static void
s_test_endpoints (void)
{
    http_t *http = http_new ("tcp://127.0.0.1:*");
    CHECK (http, "bind to an OS-chosen port");
    if (!http)
        return;
    const char *endpoint = http_endpoint (http);
    CHECK (strncmp (endpoint, "tcp://127.0.0.1:", 16) == 0 && atoi (endpoint + 16) > 0,
           "endpoint %s", endpoint);
    //  The same port again cannot be bound
    http_t *again = http_new (endpoint);
    CHECK (again == NULL, "second bind of %s refused", endpoint);
    http_destroy (&again);
    CHECK (http_new ("tcp://no-such-interface-xyz:0") == NULL, "bad endpoint refused");
    http_destroy (&http);
    CHECK (http == NULL, "destroy clears the pointer");
    http_destroy (&http);
}

int
main (void)
{
    signal (SIGPIPE, SIG_IGN);
    drv_log_setup (DRV_LOG_ERROR, false);
    s_big = malloc (S_BIG_SIZE);
    for (size_t i = 0; i < S_BIG_SIZE; i++)
        s_big [i] = (char) ('a' + i % 26);

    s_test_endpoints ();
    http_t *http = http_new ("tcp://127.0.0.1:*");
    if (!http) {
        fprintf (stderr, "FAIL: cannot bind\n");
        return 1;
    }
    s_port = atoi (strrchr (http_endpoint (http), ':') + 1);

    s_test_get (http);
    s_test_head (http);
    s_test_not_found (http);
    s_test_bad_method (http);
    s_test_garbage (http);
    s_test_huge_head (http);
    s_test_split (http);
    s_test_slow_client (http);
    s_test_many (http);
    s_test_partial_limit (http);
    s_test_disconnect (http);
    s_test_connection_cap (http);
    CHECK (http_connections (http) == 0, "no connection left at the end");
    printf ("%llu requests answered\n", (unsigned long long) http_requests (http));

    http_destroy (&http);
    free (s_big);
    return CHECKS_RESULT ();
}
