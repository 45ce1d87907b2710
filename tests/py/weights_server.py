#!/usr/bin/python3
"""weights_server.py: a small HTTP server on 127.0.0.1 for the download tests.

    weights_server.py DIR PORTFILE [LIFETIME_SECONDS]

Binds a free port, then writes "PORT CLOSED_PORT" to PORTFILE (CLOSED_PORT was free a moment
ago and nothing listens on it: connecting there fails at once). Serves:
    GET /files/NAME      DIR/NAME
    GET /truncate/NAME   announces DIR/NAME's full length, sends half, closes the connection
    anything else        404
Every request path is appended to DIR/requests.log. Exits by itself after LIFETIME_SECONDS
(default 120), so a test that dies cannot leave it running.
"""
import http.server
import os
import socket
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(os.path.join(ROOT, "requests.log"), "a") as log:
            log.write(self.path + "\n")
        parts = self.path.split("/")
        name = parts[2] if len(parts) == 3 else ""
        path = os.path.join(ROOT, name)
        if parts[1] not in ("files", "truncate") or not name or "/" in name or not os.path.isfile(path):
            self.send_error(404)
            return
        data = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if parts[1] == "truncate":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self.wfile.write(data)

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
