#!/usr/bin/env python3
"""A stand-in for droverd's HTTP endpoint, for testing `drover health`.

usage: fake_http.py MODE PORTFILE
  MODE 200     answers every request "200 OK" with the body "ready"
  MODE 503     answers "503 Service Unavailable" with the body "starting"
  MODE open    answers like 200 but leaves the connection open afterwards
  MODE silent  accepts connections and never answers
Listens on 127.0.0.1 on a port the OS picks, writes that port to PORTFILE
(atomically, once listening) and serves until killed. Each request is
logged to stderr as its request line.
"""
import os
import socket
import sys
import threading

mode, port_file = sys.argv[1], sys.argv[2]
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(16)
with open(port_file + ".tmp", "w") as f:
    f.write("%d\n" % server.getsockname()[1])
os.rename(port_file + ".tmp", port_file)
held = []


def serve(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    if mode == "silent":
        held.append(conn)
        return
    status, body = ("503 Service Unavailable", "starting") if mode == "503" else ("200 OK", "ready")
    conn.sendall(("HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                  "\r\n%s\n" % (status, len(body) + 1, body)).encode())
    if mode == "open":
        held.append(conn)
    else:
        conn.close()


while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
