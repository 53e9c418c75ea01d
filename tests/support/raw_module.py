#!/usr/bin/env python3
"""A conveyor module that speaks the NATS client protocol directly over TCP.

It was written from conveyor's public contract alone (subjects, step headers,
the step body and the Orch-Error/Orch-Retry reply headers), without reading the
orchestrator's source. Tests use it to check that a module built only from
the contract works with the orchestrator unchanged. Only the Python 3 standard
library is used. It never connects to any host but 127.0.0.1.

It behaves like `nats reply SUBJECT BODY` of the nats CLI. It subscribes to
<prefix>.dispatch.<subsystem> and replies to each step on the message's reply
subject, which it treats as opaque. Its reply is chosen by the options:
  --answer TEXT   replies with exactly TEXT;
  --echo          replies with the JSON object {"seen_step": body.step,
                  "seen_attempt": body.attempt, "seen_header_step": the
                  Orch-Step header or null, "seen_params": body.params,
                  "request": body.data.request};
  --error MSG     replies with an empty body and `Orch-Error: MSG`, plus
                  `Orch-Retry: false` with --permanent;
  none of these   replies with an empty body.
A step body that is not a valid step gets an Orch-Error reply. The module
prints `raw-module ready` to stderr once the server has confirmed its SUB, logs
one line per step to stderr, and exits 0 after --max-messages steps or
--seconds, whichever comes first. It exits 1 when the connection fails and 2
on invalid options.

    python3 raw_module.py --server nats://127.0.0.1:4222 --subsystem find-deal --echo
"""

import argparse
import json
import re
import socket
import sys
import time
import urllib.parse

TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
CONNECT_OPTIONS = {"verbose": False, "pedantic": False, "headers": True,
                   "no_responders": True, "protocol": 1}
HANDSHAKE_SECONDS = 10.0
FLUSH_SECONDS = 2.0
MAX_LINE = 64 * 1024
PARSE_ERROR = "module could not parse the step body"


class DeadlineReached(Exception):
    """Raised when a read has waited until its deadline."""


def log(text):
    print(text, file=sys.stderr, flush=True)


class Connection:
    """A NATS client connection with a read buffer. Every read takes a deadline."""

    def __init__(self, host, port, deadline):
        timeout = max(0.1, deadline - time.monotonic())
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""

    def send(self, data):
        self.sock.sendall(data)

    def fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineReached("timed out waiting for the server")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise DeadlineReached("timed out waiting for the server") from None
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def read_line(self, deadline):
        while b"\r\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE:
                raise ConnectionError("protocol line exceeds %d bytes" % MAX_LINE)
            self.fill(deadline)
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def read_exact(self, size, deadline):
        while len(self.buffer) < size:
            self.fill(deadline)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_control(self, deadline):
        """Read the next line that is not a PING, +OK or INFO, and send PONG for each PING."""
        while True:
            line = self.read_line(deadline)
            verb = line.split(" ", 1)[0].upper()
            if verb == "PING":
                self.send(b"PONG\r\n")
            elif verb == "-ERR":
                raise ConnectionError("server error: " + line[5:].strip())
            elif verb not in ("+OK", "INFO", ""):
                return verb, line

    def round_trip(self, deadline):
        """Send PING and wait for PONG, so that the server has handled all we sent.

        Returns the messages that arrived before the PONG, as read_message does.
        """
        self.send(b"PING\r\n")
        early = []
        while True:
            verb, line = self.read_control(deadline)
            if verb == "PONG":
                return early
            if verb not in ("MSG", "HMSG"):
                raise ConnectionError("expected PONG, got: " + line[:200])
            early.append(read_message(self, verb, line, deadline))


def parse_headers(block):
    """Parse a NATS/1.0 header block into a dict whose keys are lowercased."""
    lines = block.decode("utf-8", "replace").split("\r\n")
    if not lines[0].startswith("NATS/1.0"):
        raise ValueError("header block does not start with NATS/1.0")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() not in headers:
            headers[name.strip().lower()] = value.strip()
    return headers


def read_message(conn, verb, line, deadline):
    """Read the payload after a MSG or HMSG line.

    Returns (subject, reply subject or None, header block bytes, body bytes).
    """
    fields = line.split()
    header_size = 0
    if verb == "MSG" and len(fields) in (4, 5):
        total = int(fields[-1])
    elif verb == "HMSG" and len(fields) in (5, 6):
        header_size, total = int(fields[-2]), int(fields[-1])
    else:
        raise ConnectionError("invalid %s line: %s" % (verb, line[:200]))
    reply = fields[3] if len(fields) == (6 if verb == "HMSG" else 5) else None
    payload = conn.read_exact(total + 2, deadline)
    if payload[-2:] != b"\r\n":
        raise ConnectionError("message payload is not followed by CRLF")
    return fields[1], reply, payload[:header_size], payload[header_size:total]


def parse_step(body):
    """Check the step body: a JSON object with string `step` and integer `attempt`."""
    step = json.loads(body.decode("utf-8"))
    if not isinstance(step, dict):
        raise ValueError("step body is not a JSON object")
    if not isinstance(step.get("step"), str):
        raise ValueError("step body is missing the string field `step`")
    attempt = step.get("attempt")
    if not isinstance(attempt, int) or isinstance(attempt, bool):
        raise ValueError("step body is missing the integer field `attempt`")
    for key in ("params", "data"):
        if not isinstance(step.get(key, {}), dict):
            raise ValueError("step body field `%s` is not an object" % key)
    return step


def echo_reply(step, headers):
    """Build the --echo reply: step, attempt, Orch-Step header, params and data.request."""
    data = step.get("data", {})
    return json.dumps({"seen_step": step["step"], "seen_attempt": step["attempt"],
                       "seen_header_step": headers.get("orch-step"),
                       "seen_params": step.get("params"),
                       "request": data.get("request")}).encode("utf-8")


def publish(conn, subject, body, headers=None):
    if not headers:
        conn.send(b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(body), body))
        return
    block = "NATS/1.0\r\n"
    for name, value in headers:
        # A CR or LF inside a value would end the header block early.
        block += "%s: %s\r\n" % (name, " ".join(value.splitlines()))
    block = (block + "\r\n").encode("utf-8")
    conn.send(b"HPUB %s %d %d\r\n%s%s\r\n"
              % (subject.encode(), len(block), len(block) + len(body), block, body))


def answer_step(conn, args, subject, reply, header_block, body):
    try:
        headers = parse_headers(header_block) if header_block else {}
        step = parse_step(body)
    except ValueError as error:  # also invalid JSON and invalid UTF-8
        log("step rejected subject=%s error=%s" % (subject, error))
        if reply:
            publish(conn, reply, b"", [("Orch-Error", PARSE_ERROR)])
        return
    log("step received subject=%s step=%s attempt=%s" % (subject, step["step"], step["attempt"]))
    if not reply:
        log("step has no reply subject, so no reply is sent subject=%s" % subject)
    elif args.error is not None:
        error_headers = [("Orch-Error", args.error)]
        if args.permanent:
            error_headers.append(("Orch-Retry", "false"))
        publish(conn, reply, b"", error_headers)
    elif args.echo:
        publish(conn, reply, echo_reply(step, headers))
    else:
        publish(conn, reply, (args.answer or "").encode("utf-8"))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True, help="nats://127.0.0.1:PORT")
    parser.add_argument("--subsystem", required=True, help="subsystem name (a subject token)")
    parser.add_argument("--prefix", default="orch", help="subject prefix (default orch)")
    parser.add_argument("--queue", help="queue group to subscribe in")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--answer", metavar="JSON_TEXT", help="reply with exactly this text")
    mode.add_argument("--echo", action="store_true",
                      help="reply with what was read from the step")
    mode.add_argument("--error", metavar="MESSAGE",
                      help="reply with an empty body and the header Orch-Error: MESSAGE")
    parser.add_argument("--permanent", action="store_true",
                        help="with --error, also send the header Orch-Retry: false")
    parser.add_argument("--max-messages", type=int, default=0, metavar="N",
                        help="exit after N steps (default 0: no limit)")
    parser.add_argument("--seconds", type=float, default=60.0, metavar="S",
                        help="exit after S seconds (default 60)")
    args = parser.parse_args(argv)

    url = urllib.parse.urlsplit(args.server)
    if url.scheme != "nats" or url.hostname != "127.0.0.1" or not url.port:
        parser.error("--server must be nats://127.0.0.1:PORT, got %r" % args.server)
    args.port = url.port
    if not TOKEN.match(args.subsystem):
        parser.error("--subsystem must match [A-Za-z0-9_-]+, got %r" % args.subsystem)
    if not all(TOKEN.match(part) for part in args.prefix.split(".")):
        parser.error("--prefix must be dot-separated subject tokens, got %r" % args.prefix)
    if args.queue is not None and not TOKEN.match(args.queue):
        parser.error("--queue must match [A-Za-z0-9_-]+, got %r" % args.queue)
    if args.permanent and args.error is None:
        parser.error("--permanent needs --error")
    if args.max_messages < 0 or args.seconds <= 0:
        parser.error("--max-messages must be >= 0 and --seconds > 0")
    return args


def serve(args, deadline):
    handshake_deadline = min(deadline, time.monotonic() + HANDSHAKE_SECONDS)
    conn = Connection("127.0.0.1", args.port, handshake_deadline)
    line = conn.read_line(handshake_deadline)
    if not line.upper().startswith("INFO "):
        raise ConnectionError("expected INFO from the server, got: " + line[:200])
    subject = "%s.dispatch.%s" % (args.prefix, args.subsystem)
    queue = " " + args.queue if args.queue else ""
    options = json.dumps(CONNECT_OPTIONS, separators=(",", ":"))
    conn.send(b"CONNECT %s\r\n" % options.encode())
    conn.send(b"SUB %s%s 1\r\n" % (subject.encode(), queue.encode()))
    if args.max_messages:
        # The server stops delivering after N messages, so that a step sent while this module
        # replies to its last one goes to another member of the queue group, not to this module.
        conn.send(b"UNSUB 1 %d\r\n" % args.max_messages)
    # Steps that arrive before the PONG are kept and answered first.
    pending = conn.round_trip(handshake_deadline)
    log("raw-module ready")

    handled = 0
    try:
        while args.max_messages == 0 or handled < args.max_messages:
            if pending:
                message = pending.pop(0)
            else:
                verb, line = conn.read_control(deadline)
                if verb not in ("MSG", "HMSG"):
                    continue
                message = read_message(conn, verb, line, deadline)
            answer_step(conn, args, *message)
            handled += 1
    except DeadlineReached:
        log("time limit reached after %d steps" % handled)

    # UNSUB before the final PING, so that other members of a queue group get the next steps.
    conn.send(b"UNSUB 1\r\n")
    unanswered = pending + conn.round_trip(time.monotonic() + FLUSH_SECONDS)
    for msg_subject, _reply, _header_block, _body in unanswered:
        log("step left unanswered at exit subject=%s" % msg_subject)
    conn.sock.close()


def main(argv):
    args = parse_args(argv)
    deadline = time.monotonic() + args.seconds
    try:
        serve(args, deadline)
    except (OSError, ConnectionError, DeadlineReached, ValueError) as error:
        log("raw-module failed server=%s error=%s" % (args.server, error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
