#!/usr/bin/env python3
"""An HTTP module for the integration tests of conveyor's HTTP transport.

Serves HTTP/1.1 with keep-alive on 127.0.0.1, on a free port that it prints
as "listening port=N" on stdout, and exits on SIGTERM. Only the Python
standard library is used.

Routes:
  /ok/...               200, JSON echo: method, path, query, headers, body
  /missing              404 with a short text body
  /flaky/<key>          500 the first time per key, then as /ok
  /slow?ms=N            200 after N milliseconds
  /big?bytes=N          200 with a JSON body of exactly N bytes (N >= 10)
                        (&chunked=1 sends it chunked, without Content-Length)
  /redirect             302 to /ok/redirected
  /text                 200 text/plain that is not JSON
  /stats                {"connections": C, "requests": R}

C counts the TCP connections that carried at least one request other than
/stats, and R those requests, so a test that reads /stats does not change
the figures it reads.
"""

import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
STATS = {"connections": 0, "requests": 0}
FLAKY_SEEN = set()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.counted = False

    def log_message(self, format, *args):
        sys.stderr.write("request %s\n" % (format % args))

    def count(self, path):
        if path == "/stats":
            return
        with LOCK:
            STATS["requests"] += 1
            if not self.counted:
                STATS["connections"] += 1
                self.counted = True

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send(self, status, body, content_type="application/json", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, value):
        self.send(status, json.dumps(value).encode())

    def echo(self, raw_body):
        parts = urlsplit(self.path)
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = {"unparsed": raw_body.decode("utf-8", "replace")}
        self.send_json(200, {
            "method": self.command,
            "path": parts.path,
            "query": parts.query,
            "headers": {name: value for name, value in self.headers.items()},
            "body": body,
        })

    def send_big(self, size, chunked):
        # {"pad":"xxx..."} is 10 bytes around the padding.
        body = ('{"pad":"' + "x" * max(size - 10, 0) + '"}').encode()
        if not chunked:
            self.send(200, body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(body), 4096):
            chunk = body[start:start + 4096]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def route(self):
        raw_body = self.read_body()
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        path = parts.path
        self.count(path)
        if path.startswith("/ok/"):
            self.echo(raw_body)
        elif path == "/missing":
            self.send(404, b"no such deal\r\nsecond line", "text/plain")
        elif path.startswith("/flaky/"):
            with LOCK:
                first = path not in FLAKY_SEEN
                FLAKY_SEEN.add(path)
            if first:
                self.send(500, b"try again later", "text/plain")
            else:
                self.echo(raw_body)
        elif path == "/slow":
            time.sleep(int(query.get("ms", ["0"])[0]) / 1000.0)
            self.send_json(200, {"slow": True})
        elif path == "/big":
            self.send_big(int(query.get("bytes", ["0"])[0]), query.get("chunked") == ["1"])
        elif path == "/redirect":
            self.send(302, b"", "text/plain", {"Location": "/ok/redirected"})
        elif path == "/text":
            self.send(200, b"hello, this is not JSON", "text/plain")
        elif path == "/stats":
            with LOCK:
                self.send_json(200, dict(STATS))
        else:
            self.send(404, b"unknown route", "text/plain")

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout or max_response), so nothing can be sent.
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = route


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    server = Server(("127.0.0.1", 0), Handler)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print("listening port=%d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
