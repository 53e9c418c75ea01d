#!/usr/bin/env python3
"""A credit bureau for the credit-check step of customer-onboarding.

This is an HTTP module for conveyor, written with the Python standard
library alone. The node sends each step as

    POST /v1/score/<tax id>
    Orch-Instance, Orch-Process, Orch-Step, Orch-Attempt headers
    {"instance": ..., "process": ..., "step": ..., "attempt": n,
     "params": {...}, "data": {...}}

and the JSON body of a 2xx response becomes the step's output. A 4xx answer
fails the step for good; a 5xx answer, a timeout or a refused connection
may be retried, as the step's `retry` allows.

Answers:
  200  {"tax_id", "score", "band", "max_limit"} for a tax id in SCORES
  404  the tax id is not in SCORES: no credit file, asking again cannot help
  400  the body is not a conveyor step
  503  the first --unavailable N scoring requests, as a busy bureau answers

It listens on 127.0.0.1 only, prints "credit-bureau listening on URL" to
stderr once it accepts connections, logs one line per request, and exits
on SIGTERM or SIGINT.
"""

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The bureau's files: tax id -> score (300..850), band and the largest
# credit limit it recommends, in roubles.
SCORES = {
    "7701234567": {"score": 742, "band": "A", "max_limit": 500000},
    "5406123456": {"score": 655, "band": "B", "max_limit": 150000},
    "7810000002": {"score": 512, "band": "D", "max_limit": 0},
}

# Largest request body read; a step body for this module is far smaller.
MAX_BODY = 1024 * 1024

PATH_PREFIX = "/v1/score/"


class Bureau:
    """Counts the scoring requests so that the first few can be refused."""

    def __init__(self, unavailable):
        self.lock = threading.Lock()
        self.unavailable = unavailable
        self.requests = 0

    def is_busy(self):
        with self.lock:
            self.requests += 1
            return self.requests <= self.unavailable


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "credit-bureau/1"

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_step(self):
        """Returns the step body as a dict, or None when it is not one."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return None
        if length <= 0 or length > MAX_BODY:
            return None
        try:
            step = json.loads(self.rfile.read(length))
        except ValueError:
            return None
        if not isinstance(step, dict) or not isinstance(step.get("data"), dict):
            return None
        return step

    def do_POST(self):
        if not self.path.startswith(PATH_PREFIX):
            self.send_json(404, {"error": "no such endpoint: " + self.path})
            return
        tax_id = self.path[len(PATH_PREFIX):]
        step = self.read_step()
        if step is None:
            self.send_json(400, {"error": "the body is not a conveyor step"})
            return
        if self.server.bureau.is_busy():
            self.send_json(503, {"error": "the bureau is busy, try again"})
            return
        record = SCORES.get(tax_id)
        if record is None:
            self.send_json(404, {"error": "no credit file for tax id " + tax_id})
            return
        self.send_json(200, dict(record, tax_id=tax_id))

    def log_message(self, fmt, *args):
        sys.stderr.write("credit-bureau: %s instance=%s attempt=%s\n" % (
            fmt % args, self.headers.get("Orch-Instance", "-"),
            self.headers.get("Orch-Attempt", "-")))
        sys.stderr.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18080,
                        help="TCP port on 127.0.0.1 (default: 18080, the port the rules name)")
    parser.add_argument("--unavailable", type=int, default=0, metavar="N",
                        help="respond to the first N scoring requests with 503 (default: 0)")
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.bureau = Bureau(args.unavailable)
    # SystemExit leaves serve_forever in the main thread, so the socket is closed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    print("credit-bureau listening on http://127.0.0.1:%d" % args.port, file=sys.stderr,
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
