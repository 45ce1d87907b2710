#!/usr/bin/python3
"""file_server.py: an HTTP server on 127.0.0.1 for the download tests (test_weights.lua,
test_untar.lua).

    file_server.py DIR PORTFILE [LIFETIME_SECONDS]

Binds a free port, then writes "PORT CLOSED_PORT" to PORTFILE (CLOSED_PORT was free a moment
ago and nothing listens on it: connecting there fails at once). Serves:
    GET /files/NAME      DIR/NAME, honouring "Range: bytes=N-" (206 with the rest)
    GET /cut/NAME        the same, but a request without a Range header gets half the bytes (the
                         full length announced) and then the connection is closed
    GET /truncate/NAME   always half the bytes, the full length announced, then closed
    anything else        404
Each request is appended to DIR/requests.log as "PATH RANGE" (RANGE "-" when none). Exits by
itself after LIFETIME_SECONDS (default 120), so a test that dies cannot leave it running.
"""
import http.server
import os
import re
import socket
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        rng = self.headers.get("Range")
        with open(os.path.join(ROOT, "requests.log"), "a") as log:
            log.write("%s %s\n" % (self.path, rng or "-"))
        parts = self.path.split("/")
        name = parts[2] if len(parts) == 3 else ""
        path = os.path.join(ROOT, name)
        if parts[1] not in ("files", "cut", "truncate") or not name or "/" in name or not os.path.isfile(path):
            self.send_error(404)
            return
        data = open(path, "rb").read()
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m:
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(data))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if parts[1] == "truncate" or (parts[1] == "cut" and not rng):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


if __name__ == "__main__":
    ROOT = sys.argv[1]
    lifetime = float(sys.argv[3]) if len(sys.argv) > 3 else 120
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    timer = threading.Timer(lifetime, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    tmp = sys.argv[2] + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (server.server_address[1], closed_port()))
    os.rename(tmp, sys.argv[2])
    server.serve_forever()
