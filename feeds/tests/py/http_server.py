#!/usr/bin/env python3
"""Independent HTTP/1.1 keep-alive server for the keep-alive client tests (Python's standard
`http.server`, protocol HTTP/1.1, so connections persist and pipelined requests are answered in
order). Prints its port on the first line of standard output, then serves until killed.

Paths (any method; the request body is read by Content-Length):
  /echo            200, Content-Length body: "<conn> <n> <request body>" where <conn> numbers the
                   TCP connection (from 1) and <n> the request on it (from 1)
  /chunked         200, chunked body "<conn> <n> " then the request body, sent in 3 chunks with
                   a chunk extension and a trailer
  /close           200 "<conn> <n> bye" with Connection: close, then the server closes
  /reset           closes with SO_LINGER 0 (a TCP reset) without answering
  /malformed       "HTTP/1.1 abc OK" status line
  /big?n=N         200 with N bytes of 'x'
  /slow?ms=M       waits M ms, then answers like /echo
"""

import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

counter_lock = threading.Lock()
connections = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with counter_lock:
            connections[0] += 1
            self.conn_id = connections[0]
        self.n = 0

    def log_message(self, *args):
        pass

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status, body, extra=()):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def handle_any(self):
        self.n += 1
        url = urlparse(self.path)
        q = parse_qs(url.query)
        body = self._body()
        tag = f"{self.conn_id} {self.n} ".encode()
        if url.path == "/echo":
            self._send(200, tag + body)
        elif url.path == "/slow":
            time.sleep(int(q["ms"][0]) / 1000)
            self._send(200, tag + body)
        elif url.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            parts = [tag, body[: len(body) // 2], body[len(body) // 2 :]]
            for i, p in enumerate(parts):
                if p:
                    self.wfile.write(b"%x;part=%d\r\n%s\r\n" % (len(p), i, p))
                    self.wfile.flush()
            self.wfile.write(b"0\r\nX-Trailer: done\r\n\r\n")
            self.wfile.flush()
        elif url.path == "/close":
            self._send(200, tag + b"bye", [("Connection", "close")])
            self.close_connection = True
        elif url.path == "/reset":
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            self.close_connection = True
            self.connection.close()
        elif url.path == "/malformed":
            self.wfile.write(b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n")
            self.wfile.flush()
        elif url.path == "/big":
            self._send(200, b"x" * int(q["n"][0]))
        else:
            self._send(404, b"no such path")

    do_GET = handle_any
    do_POST = handle_any


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
