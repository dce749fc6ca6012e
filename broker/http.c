/*  http.c - a tiny HTTP/1.1 server on a ZeroMQ STREAM socket.

    How a STREAM socket talks: every message is two frames, the peer's
    routing id and data. A connection announces itself with an empty data
    frame, and its end (when the peer closes) with another; sending the id
    with an empty frame closes it from our side, after what was sent
    before it has gone out. Closing from our side produces no notice, but
    a peer closing at the same moment does, for an id we have already
    forgotten: a short ring of recently closed ids tells that notice from
    a new connection. (A notice that still slips through only creates an
    empty connection that http_expire removes.)

    Connections are kept in a hash table by id and in a list ordered by
    last activity, oldest first, so expiry and eviction look at the head
    only. The request head goes into a buffer of HTTP_MAX_HEAD bytes taken
    when the first byte arrives, so memory per connection is bounded and
    only connections holding a partial request (at most HTTP_MAX_PARTIAL)
    have one.

    libzmq finishes closing a connection when the socket next processes its
    commands, i.e. when the owner polls it again, as the broker's loop does.
*/
#include "http.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_BATCH         256             //  messages read per http_handle call
#define S_CLOSED_RING   128             //  recently closed ids remembered
#define S_ID_MAX        32              //  longest id kept in the ring (STREAM ids are 5 bytes)
#define S_METHOD_MAX    16              //  longest method name we bother to read

typedef struct _s_conn_t s_conn_t;

struct _s_conn_t {
    char key [2 * 255 + 1];             //  routing id in hex, the hash key
    uint8_t id [255];                   //  routing id
    size_t id_size;                     //  its length
    char *head;                         //  request bytes so far (HTTP_MAX_HEAD), or NULL
    size_t len;                         //  bytes in head
    uint64_t last;                      //  monotonic ms of the last bytes received (or connect)
    s_conn_t *prev;                     //  activity list, towards the oldest
    s_conn_t *next;                     //  activity list, towards the newest
};

typedef struct {
    uint8_t id [S_ID_MAX];              //  routing id
    size_t size;                        //  its length; 0 = free slot
} s_closed_t;

struct _http_t {
    zsock_t *sock;                      //  the STREAM socket
    void *handle;                       //  its libzmq handle
    char *endpoint;                     //  endpoint bound, with the real port
    zhashx_t *conns;                    //  hex id -> s_conn_t (owned)
    s_conn_t *oldest;                   //  head of the activity list
    s_conn_t *newest;                   //  tail of the activity list
    size_t partial;                     //  connections with some bytes of a request
    s_closed_t closed [S_CLOSED_RING];  //  ids we closed, whose notice may still come
    size_t closed_next;                 //  next ring slot to overwrite
    char *out;                          //  response buffer, kept between requests
    size_t out_cap;                     //  its size
    uint64_t requests;                  //  requests answered
};


//  Connections --------------------------------------------------------------

static void
s_hex (const uint8_t *id, size_t size, char *key)
{
    static const char digits [] = "0123456789abcdef";
    for (size_t i = 0; i < size; i++) {
        key [2 * i] = digits [id [i] >> 4];
        key [2 * i + 1] = digits [id [i] & 15];
    }
    key [2 * size] = '\0';
}

static void
s_list_unlink (http_t *self, s_conn_t *conn)
{
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        self->oldest = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    else
        self->newest = conn->prev;
    conn->prev = conn->next = NULL;
}

static void
s_list_append (http_t *self, s_conn_t *conn)
{
    conn->prev = self->newest;
    conn->next = NULL;
    if (self->newest)
        self->newest->next = conn;
    else
        self->oldest = conn;
    self->newest = conn;
}

//  The hash table's destructor: only frees (callers unlink first).
static void
s_conn_free (void **item_p)
{
    s_conn_t *conn = (s_conn_t *) *item_p;
    if (conn) {
        free (conn->head);
        free (conn);
        *item_p = NULL;
    }
}

//  Forgets a connection (it is closed or gone).
static void
s_conn_drop (http_t *self, s_conn_t *conn)
{
    s_list_unlink (self, conn);
    if (conn->len > 0) {
        assert (self->partial > 0);
        self->partial--;
    }
    zhashx_delete (self->conns, conn->key);
}

static bool
s_closed_take (http_t *self, const uint8_t *id, size_t size)
{
    for (size_t i = 0; i < S_CLOSED_RING; i++) {
        s_closed_t *slot = &self->closed [i];
        if (slot->size == size && memcmp (slot->id, id, size) == 0) {
            slot->size = 0;
            return true;
        }
    }
    return false;
}

static void
s_closed_put (http_t *self, const uint8_t *id, size_t size)
{
    if (size == 0 || size > S_ID_MAX)
        return;
    s_closed_t *slot = &self->closed [self->closed_next];
    memcpy (slot->id, id, size);
    slot->size = size;
    self->closed_next = (self->closed_next + 1) % S_CLOSED_RING;
}


//  Sending ------------------------------------------------------------------

static const char *
s_reason (int status)
{
    switch (status) {
        case 200: return "OK";
        case 204: return "No Content";
        case 301: return "Moved Permanently";
        case 302: return "Found";
        case 304: return "Not Modified";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 503: return "Service Unavailable";
        case 505: return "HTTP Version Not Supported";
        default:  return status < 300? "OK": status < 400? "Redirect": status < 500? "Client Error": "Server Error";
    }
}

//  Sends data to the connection; a peer gone or a full pipe just loses it.
static void
s_send (http_t *self, const uint8_t *id, size_t id_size, const void *data, size_t size)
{
    if (zmq_send (self->handle, id, id_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0
    ||  zmq_send (self->handle, data, size, ZMQ_DONTWAIT) < 0)
        drv_log (DRV_LOG_DEBUG, "http", "cannot send to a connection: %s", zmq_strerror (errno));
}

//  Closes the connection (after what was sent) and forgets it.
static void
s_close (http_t *self, s_conn_t *conn)
{
    s_send (self, conn->id, conn->id_size, "", 0);
    s_closed_put (self, conn->id, conn->id_size);
    s_conn_drop (self, conn);
}

//  Sends a whole response and closes the connection.
static void
s_respond (http_t *self, s_conn_t *conn, const http_response_t *response, bool head_only)
{
    int status = response->status >= 100 && response->status <= 999? response->status: 500;
    const char *type = response->content_type? response->content_type: "text/plain; charset=utf-8";
    size_t size = response->body? response->size: 0;
    const char *extra = status == 405? "Allow: GET, HEAD\r\n": "";
    char header [512];
    int header_size = snprintf (header, sizeof header,
        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
        "Connection: close\r\nCache-Control: no-store\r\n\r\n",
        status, s_reason (status), type, size, extra);
    if (header_size < 0 || (size_t) header_size >= sizeof header) {
        //  Only a content type of hundreds of bytes gets here
        header_size = snprintf (header, sizeof header,
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        size = 0;
    }
    size_t body_size = head_only? 0: size;
    size_t total = (size_t) header_size + body_size;
    if (total > self->out_cap) {
        char *out = realloc (self->out, total);
        if (!out) {
            drv_log (DRV_LOG_WARN, "http", "out of memory for a %zu-byte response", total);
            s_close (self, conn);
            self->requests++;
            return;
        }
        self->out = out;
        self->out_cap = total;
    }
    memcpy (self->out, header, (size_t) header_size);
    if (body_size)
        memcpy (self->out + header_size, response->body, body_size);
    s_send (self, conn->id, conn->id_size, self->out, total);
    s_close (self, conn);
    self->requests++;
}

//  An error response with a one-line text body.
static void
s_fail (http_t *self, s_conn_t *conn, int status, const char *text)
{
    http_response_t response = {status, NULL, text, strlen (text)};
    s_respond (self, conn, &response, false);
}


//  Parsing ------------------------------------------------------------------

//  RFC 9110 token characters (method and header names).
static bool
s_tchar (unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr ("!#$%&'*+-.^_`|~", c) != NULL;
}

//  Offset just past the blank line that ends the head in buf [0, len), or
//  0 if it is not there yet. from is where new bytes begin.
static size_t
s_head_end (const char *buf, size_t len, size_t from)
{
    size_t i = from > 2? from - 2: 0;
    for (; i < len; i++) {
        if (buf [i] != '\n')
            continue;
        if (i + 1 < len && buf [i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf [i + 1] == '\r' && buf [i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

//  Length of the line at p (before "\n" or "\r\n"), within end; sets *next.
static size_t
s_line (const char *p, const char *end, const char **next)
{
    const char *nl = memchr (p, '\n', (size_t) (end - p));
    if (!nl)
        nl = end;
    *next = nl < end? nl + 1: end;
    size_t len = (size_t) (nl - p);
    if (len > 0 && p [len - 1] == '\r')
        len--;
    return len;
}

//  Serves the complete head buf [0, size).
static void
s_request (http_t *self, s_conn_t *conn, size_t size, http_handler_fn *handler, void *arg)
{
    const char *buf = conn->head;
    const char *end = buf + size;
    for (size_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char) buf [i];
        if ((c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7F) {
            s_fail (self, conn, 400, "bad request: control character\n");
            return;
        }
    }
    //  Request line: METHOD SP TARGET SP HTTP/1.x
    const char *next;
    const char *line = buf;
    size_t len = s_line (line, end, &next);
    size_t m = 0;
    while (m < len && s_tchar ((unsigned char) line [m]))
        m++;
    if (m == 0 || m >= len || line [m] != ' ') {
        s_fail (self, conn, 400, "bad request line\n");
        return;
    }
    const char *target = line + m + 1;
    const char *line_end = line + len;
    const char *space = memchr (target, ' ', (size_t) (line_end - target));
    if (!space || space == target || *target != '/') {
        s_fail (self, conn, 400, "bad request target\n");
        return;
    }
    const char *version = space + 1;
    size_t version_len = (size_t) (line_end - version);
    if (version_len != 8 || memcmp (version, "HTTP/", 5) != 0 || version [6] != '.'
    ||  version [5] < '0' || version [5] > '9' || version [7] < '0' || version [7] > '9') {
        s_fail (self, conn, 400, "bad HTTP version\n");
        return;
    }
    //  Header lines: name ":" value, no folding, up to the blank line
    for (const char *p = next; p < end; ) {
        size_t hlen = s_line (p, end, &next);
        if (hlen == 0)
            break;
        size_t n = 0;
        while (n < hlen && s_tchar ((unsigned char) p [n]))
            n++;
        if (n == 0 || n >= hlen || p [n] != ':') {
            s_fail (self, conn, 400, "bad header line\n");
            return;
        }
        p = next;
    }
    if (version [5] != '1') {
        s_fail (self, conn, 505, "HTTP/1.x only\n");
        return;
    }
    char method [S_METHOD_MAX + 1];
    bool get = m == 3 && memcmp (line, "GET", 3) == 0;
    bool head = m == 4 && memcmp (line, "HEAD", 4) == 0;
    if (!get && !head) {
        s_fail (self, conn, 405, "only GET and HEAD\n");
        return;
    }
    memcpy (method, line, m);
    method [m] = '\0';

    //  The path, without query or fragment, NUL-terminated in the buffer
    //  (the head is done with once the handler has run)
    const char *cut = target;
    while (cut < space && *cut != '?' && *cut != '#')
        cut++;
    size_t path_len = (size_t) (cut - target);
    char *path = (char *) target;
    path [path_len] = '\0';

    http_response_t response = {404, NULL, "not found\n", 10};
    handler (method, path, &response, arg);
    s_respond (self, conn, &response, head);
}


//  Receiving ----------------------------------------------------------------

//  Handles one message from the socket: a connect or disconnect notice, or
//  bytes of a request.
static void
s_message (http_t *self, zmq_msg_t *id_msg, zmq_msg_t *data, http_handler_fn *handler,
           void *arg, uint64_t now)
{
    const uint8_t *id = zmq_msg_data (id_msg);
    size_t id_size = zmq_msg_size (id_msg);
    if (id_size == 0 || id_size > sizeof ((s_conn_t *) 0)->id)
        return;
    char key [2 * 255 + 1];
    s_hex (id, id_size, key);
    s_conn_t *conn = (s_conn_t *) zhashx_lookup (self->conns, key);
    size_t size = zmq_msg_size (data);

    if (size == 0) {
        if (conn) {
            //  The peer went away (mid-request, or before sending one)
            s_conn_drop (self, conn);
            return;
        }
        if (s_closed_take (self, id, id_size))
            return;             //  the notice of a connection we closed
        if (zhashx_size (self->conns) >= HTTP_MAX_CONNECTIONS && self->oldest)
            s_close (self, self->oldest);
        conn = (s_conn_t *) calloc (1, sizeof *conn);
        if (!conn) {
            s_send (self, id, id_size, "", 0);
            return;
        }
        memcpy (conn->key, key, strlen (key) + 1);
        memcpy (conn->id, id, id_size);
        conn->id_size = id_size;
        conn->last = now;
        if (zhashx_insert (self->conns, conn->key, conn) != 0) {
            free (conn);
            return;
        }
        s_list_append (self, conn);
        return;
    }
    if (!conn)
        return;                 //  bytes after we answered or closed: ignored

    if (!conn->head) {
        conn->head = (char *) malloc (HTTP_MAX_HEAD + 1);
        if (!conn->head) {
            s_close (self, conn);
            return;
        }
    }
    bool was_partial = conn->len > 0;
    size_t room = HTTP_MAX_HEAD - conn->len;
    size_t take = size < room? size: room;
    size_t from = conn->len;
    memcpy (conn->head + conn->len, zmq_msg_data (data), take);
    conn->len += take;
    conn->last = now;
    s_list_unlink (self, conn);
    s_list_append (self, conn);
    if (!was_partial)
        self->partial++;

    size_t end = s_head_end (conn->head, conn->len, from);
    if (end) {
        conn->head [end] = '\0';
        s_request (self, conn, end, handler, arg);
        return;
    }
    if (conn->len >= HTTP_MAX_HEAD) {
        s_fail (self, conn, 431, "request head too large\n");
        return;
    }
    if (self->partial > HTTP_MAX_PARTIAL) {
        //  Too many half-requests: drop the one idle longest (not this one,
        //  which is now the newest)
        s_conn_t *oldest = self->oldest;
        while (oldest && oldest->len == 0)
            oldest = oldest->next;
        if (oldest && oldest != conn) {
            drv_log (DRV_LOG_DEBUG, "http", "too many partial requests, closing one");
            s_close (self, oldest);
        }
    }
}


//  Public API -----------------------------------------------------------------

http_t *
http_new (const char *endpoint)
{
    assert (endpoint);
    http_t *self = (http_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->sock = zsock_new (ZMQ_STREAM);
    self->conns = zhashx_new ();
    if (!self->sock || !self->conns) {
        drv_log (DRV_LOG_ERROR, "http", "cannot create the HTTP socket");
        http_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->conns, s_conn_free);
    self->handle = zsock_resolve (self->sock);
    int notify = 1;
    zmq_setsockopt (self->handle, ZMQ_STREAM_NOTIFY, &notify, sizeof notify);
    if (zsock_bind (self->sock, "%s", endpoint) < 0) {
        drv_log (DRV_LOG_ERROR, "http", "cannot bind HTTP endpoint %s: %s", endpoint,
                 zmq_strerror (zmq_errno ()));
        http_destroy (&self);
        return NULL;
    }
    self->endpoint = zsock_last_endpoint (self->sock);
    if (!self->endpoint) {
        drv_log (DRV_LOG_ERROR, "http", "cannot read the bound HTTP endpoint");
        http_destroy (&self);
        return NULL;
    }
    return self;
}

void
http_destroy (http_t **self_p)
{
    assert (self_p);
    http_t *self = *self_p;
    if (!self)
        return;
    //  Closing the socket closes every connection
    zhashx_destroy (&self->conns);
    zsock_destroy (&self->sock);
    zstr_free (&self->endpoint);
    free (self->out);
    free (self);
    *self_p = NULL;
}

const char *
http_endpoint (http_t *self)
{
    assert (self);
    return self->endpoint;
}

zsock_t *
http_socket (http_t *self)
{
    assert (self);
    return self->sock;
}

void
http_handle (http_t *self, http_handler_fn *handler, void *arg)
{
    assert (self);
    assert (handler);
    uint64_t now = drv_now_ms ();
    zmq_msg_t id, data, extra;
    zmq_msg_init (&id);
    zmq_msg_init (&data);
    zmq_msg_init (&extra);
    for (int i = 0; i < S_BATCH; i++) {
        if (zmq_msg_recv (&id, self->handle, ZMQ_DONTWAIT) < 0)
            break;              //  EAGAIN: nothing more now
        if (!zmq_msg_more (&id))
            continue;           //  not the shape STREAM delivers; ignore
        if (zmq_msg_recv (&data, self->handle, ZMQ_DONTWAIT) < 0)
            continue;
        bool more = zmq_msg_more (&data);
        while (more && zmq_msg_recv (&extra, self->handle, ZMQ_DONTWAIT) >= 0)
            more = zmq_msg_more (&extra);
        s_message (self, &id, &data, handler, arg, now);
    }
    zmq_msg_close (&id);
    zmq_msg_close (&data);
    zmq_msg_close (&extra);
}

void
http_expire (http_t *self, uint64_t now_ms)
{
    assert (self);
    while (self->oldest && now_ms > self->oldest->last
       &&  now_ms - self->oldest->last > HTTP_IDLE_MS) {
        if (self->oldest->len > 0)
            s_fail (self, self->oldest, 408, "request timeout\n");
        else
            s_close (self, self->oldest);   //  never said anything: just close
    }
}

size_t
http_connections (http_t *self)
{
    assert (self);
    return zhashx_size (self->conns);
}

uint64_t
http_requests (http_t *self)
{
    assert (self);
    return self->requests;
}
