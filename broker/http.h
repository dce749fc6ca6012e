/*  http.h - a tiny HTTP/1.1 server on a ZeroMQ STREAM socket.

    Serves the broker's /metrics, /healthz and /readyz from the broker's
    own thread, in its own poll loop: no threads, no blocking. Each
    connection carries one request: its head (up to the blank line) is
    collected, the handler fills a response, the response goes out with
    Content-Length and "Connection: close", and the connection is closed.
    Request bodies are ignored.

        http_t *http = http_new ("tcp://127.0.0.1:*");
        //  in the loop: poll http_socket (http) with the others, then
        http_handle (http, s_serve, self);     //  when it is readable
        http_expire (http, drv_now_ms ());     //  once per turn

    Bounds: a request head larger than HTTP_MAX_HEAD bytes is answered 431;
    at most HTTP_MAX_PARTIAL connections may hold part of a request (beyond
    that the one idle longest is closed), at most HTTP_MAX_CONNECTIONS may
    be open at all (beyond that the one idle longest is closed); a
    connection idle HTTP_IDLE_MS without a complete request is closed by
    http_expire (with a 408 if it had sent part of one). Only GET and HEAD
    are served (405 otherwise); anything that is not a request line and
    header lines is answered 400. Nothing a peer sends can crash or block
    the caller.

    Not thread-safe: one thread (the broker actor) owns an http_t.
*/
#ifndef BROKER_HTTP_H_INCLUDED
#define BROKER_HTTP_H_INCLUDED

#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEAD           8192    //  bytes of request line + headers
#define HTTP_MAX_PARTIAL        64      //  connections holding part of a request
#define HTTP_MAX_CONNECTIONS    1024    //  connections open at all
#define HTTP_IDLE_MS            5000    //  an incomplete request waits this long

typedef struct _http_t http_t;

//  What the handler answers. Before the handler runs it holds a 404 with
//  a short text body; the handler sets what it serves. content_type NULL
//  means "text/plain; charset=utf-8". body may be NULL when size is 0; it
//  must stay valid until http_handle returns (the handler can point it
//  into a buffer it keeps, such as a prom_t).
typedef struct {
    int status;                 //  HTTP status code, e.g. 200
    const char *content_type;   //  Content-Type header value
    const char *body;           //  response body (not sent for HEAD)
    size_t size;                //  body bytes
} http_response_t;

//  Called once per complete GET or HEAD request. method is "GET" or
//  "HEAD"; path is the request target without its query string (from
//  "/metrics?x=1", "/metrics"), NUL-terminated. arg is http_handle's arg.
typedef void (http_handler_fn) (const char *method, const char *path,
                                http_response_t *response, void *arg);

//  Binds a STREAM socket to endpoint, e.g. "tcp://*:9090" or
//  "tcp://127.0.0.1:*". Returns NULL after logging why when the endpoint
//  cannot be bound.
http_t *http_new (const char *endpoint);

//  Closes every connection and the socket; sets *self_p to NULL; harmless
//  on NULL.
void http_destroy (http_t **self_p);

//  The endpoint actually bound, with its real port ("tcp://0.0.0.0:9090",
//  "tcp://127.0.0.1:41234"). Owned by the http_t.
const char *http_endpoint (http_t *self);

//  The socket, to poll for ZMQ_POLLIN beside the broker's others.
zsock_t *http_socket (http_t *self);

//  Reads whatever the socket has ready (at most a bounded number of
//  messages per call, so other sockets get their turn) and answers each
//  request completed by it. Never blocks.
void http_handle (http_t *self, http_handler_fn *handler, void *arg);

//  Closes every connection that has received nothing for over HTTP_IDLE_MS
//  before now_ms (monotonic milliseconds, as drv_now_ms) without completing
//  its request; one that sent part of a request is answered 408 first.
void http_expire (http_t *self, uint64_t now_ms);

//  Connections open and waiting for (the rest of) a request.
size_t http_connections (http_t *self);

//  Requests answered since creation, whatever their status.
uint64_t http_requests (http_t *self);

#endif
