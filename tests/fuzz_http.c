/*  fuzz_http.c - the broker's HTTP endpoint fed arbitrary bytes.

    The metrics port is the one network input the broker reads without
    any authentication, so its request parser gets a fuzz target of its
    own. Each input is written, as one TCP client, to an http_t served in
    this process; the server is driven until it answers and closes (or,
    for an unfinished request, until an idle expiry forced by a clock far
    in the future closes it). Checked for every input: the server never
    crashes or hangs, and whatever it sends back is one well-formed HTTP
    response (status line, headers ending in a blank line, a body no
    longer than its Content-Length).

    Built with -DDROVER_LIBFUZZER under clang (-fsanitize=fuzzer); other
    compilers get a main() that runs generated inputs: valid requests,
    each truncation of one, byte flips, and random bytes.
*/
#include "http.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define INPUT_MAX (HTTP_MAX_HEAD * 2)

static http_t *s_http;
static int s_port;

static void
s_serve (const char *method, const char *path, http_response_t *response, void *arg)
{
    (void) method;
    (void) arg;
    if (strcmp (path, "/metrics") == 0) {
        response->status = 200;
        response->body = "drover_up 1\n";
        response->size = strlen (response->body);
    }
}

static void
s_fail (const char *what, const char *reply, size_t size)
{
    fprintf (stderr, "fuzz_http: %s; reply (%zu bytes): %.*s\n", what, size,
             (int) (size > 300? 300: size), reply);
    abort ();
}

static void
s_setup (void)
{
    if (s_http)
        return;
    drv_log_setup (DRV_LOG_ERROR, false);
    s_http = http_new ("tcp://127.0.0.1:*");
    if (!s_http)
        s_fail ("cannot bind", "", 0);
    const char *colon = strrchr (http_endpoint (s_http), ':');
    s_port = colon? atoi (colon + 1): 0;
}

//  Checks that reply is one HTTP response and its body fits its length.
static void
s_check_reply (const char *reply, size_t size)
{
    if (size == 0)
        return;                 //  closed without a word (nothing was asked)
    if (size < 12 || memcmp (reply, "HTTP/1.1 ", 9) != 0)
        s_fail ("reply is not an HTTP/1.1 status line", reply, size);
    const char *end = NULL;
    for (size_t i = 0; i + 3 < size; i++)
        if (memcmp (reply + i, "\r\n\r\n", 4) == 0) {
            end = reply + i + 4;
            break;
        }
    if (!end)
        s_fail ("reply headers do not end", reply, size);
    const char *length = strstr (reply, "Content-Length: ");
    if (!length || length > end)
        s_fail ("reply without Content-Length", reply, size);
    size_t body = (size_t) (reply + size - end);
    if (body > (size_t) strtoul (length + 16, NULL, 10))
        s_fail ("reply body longer than Content-Length", reply, size);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_setup ();
    if (size > INPUT_MAX)
        size = INPUT_MAX;
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) s_port)};
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    //  Closed with a reset, not a FIN: thousands of inputs a second would
    //  otherwise use up the ephemeral ports in TIME_WAIT
    struct linger hard_close = {1, 0};
    if (fd < 0 || setsockopt (fd, SOL_SOCKET, SO_LINGER, &hard_close, sizeof hard_close)
    ||  connect (fd, (struct sockaddr *) &address, sizeof address)) {
        char why [64];
        snprintf (why, sizeof why, "cannot connect: %s", strerror (errno));
        s_fail (why, "", 0);
    }
    size_t sent = 0;
    static char reply [65536];
    size_t got = 0;
    bool closed = false, reset = false;
    //  Drive both ends: write the input, let the server read and answer,
    //  collect the reply until the server closes the connection
    for (int round = 0; round < 2000 && !closed; round++) {
        if (sent < size) {
            ssize_t n = send (fd, data + sent, size - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t) n;
        }
        zmq_pollitem_t item = {zsock_resolve (http_socket (s_http)), 0, ZMQ_POLLIN, 0};
        zmq_poll (&item, 1, 2);
        http_handle (s_http, s_serve, NULL);
        struct pollfd pfd = {fd, POLLIN, 0};
        while (poll (&pfd, 1, 0) > 0) {
            ssize_t n = recv (fd, reply + got, sizeof reply - 1 - got, MSG_DONTWAIT);
            if (n <= 0) {
                //  A reset (the server closed with input of ours still
                //  unread, as after a 431) may discard reply bytes in
                //  flight: such a reply is not judged
                reset = n < 0 && errno == ECONNRESET;
                closed = n == 0 || reset;
                break;
            }
            got += (size_t) n;
            if (got >= sizeof reply - 1)
                s_fail ("reply larger than 64 KiB", reply, got);
        }
        //  All sent and no answer yet: the request is unfinished; jump the
        //  server's clock past its idle limit so it gives up on it (again
        //  each round: on a loaded machine the bytes may reach it later)
        if (!closed && sent == size && round >= 3)
            http_expire (s_http, drv_now_ms () + 10 * HTTP_IDLE_MS);
    }
    close (fd);
    if (!closed)
        s_fail ("the server neither answered nor closed the connection", reply, got);
    if (!reset)
        s_check_reply (reply, got);
    //  Let the server see the client go before the next input
    for (int i = 0; i < 5; i++) {
        zmq_pollitem_t item = {zsock_resolve (http_socket (s_http)), 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 0) <= 0)
            break;
        http_handle (s_http, s_serve, NULL);
    }
    return 0;
}

#ifndef DROVER_LIBFUZZER
static uint64_t s_seed = 0x2545f4914f6cdd1dULL;

static uint64_t
s_rand (void)
{
    s_seed ^= s_seed << 13;
    s_seed ^= s_seed >> 7;
    s_seed ^= s_seed << 17;
    return s_seed;
}

int
main (void)
{
    const char *requests [] = {
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        "HEAD /healthz HTTP/1.0\r\n\r\n",
        "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        "GET /metrics?x=1 HTTP/1.1\r\nA: b\r\nC: d\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "\r\n\r\n",
        "GET\r\n\r\n",
    };
    size_t count = 0;
    uint8_t input [1024];
    for (size_t r = 0; r < sizeof requests / sizeof requests [0]; r++) {
        size_t len = strlen (requests [r]);
        //  The request, then each truncation of it
        for (size_t cut = len; cut > 0; cut -= (cut > 8? 7: 1), count++)
            LLVMFuzzerTestOneInput ((const uint8_t *) requests [r], cut);
        //  Byte flips
        for (int flip = 0; flip < 40; flip++, count++) {
            memcpy (input, requests [r], len);
            input [s_rand () % len] = (uint8_t) s_rand ();
            LLVMFuzzerTestOneInput (input, len);
        }
    }
    for (int i = 0; i < 200; i++, count++) {
        size_t len = 1 + s_rand () % sizeof input;
        for (size_t k = 0; k < len; k++)
            input [k] = (uint8_t) s_rand ();
        LLVMFuzzerTestOneInput (input, len);
    }
    http_destroy (&s_http);
    printf ("fuzz_http: %zu inputs, every reply well formed\n", count);
    return 0;
}
#endif
