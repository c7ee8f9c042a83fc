#!/usr/bin/env python3
"""An HTTP server for the remote-shard tests: serves the files of a folder on 127.0.0.1 with Range requests
(206, Content-Range) as object stores do, and misbehaves on demand.

    shard_server.py ROOT [--port 0] [--log requests.jsonl] [--fault PATH=SPEC ...]

Prints the port on its first line once it listens. Each request is appended to --log as a JSON line
{"path", "range", "status", "sent"}. Faults, per path (the URL path without the leading '/'):
    503x3        the first 3 requests answer 503 (503barex3: with an empty body)
    drop@N       the first request sends N bytes of the body, then closes the connection
    stall@N:S    the first request sends N bytes, then sends nothing for S seconds (then the rest)
    stallevery@N:S   every request does
    slow:BPS     every request sends at most BPS bytes per second
    norange      Range is ignored: 200 with the whole file
    newetag      the ETag changes with every request (the object replaced between two requests): If-Match fails
Answers carry an ETag; a request whose If-Match differs from it gets 412. A missing file is 404.
"""
import argparse
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def record(self, path, rng, status, sent):
        srv = self.server
        with srv.lock:
            if srv.log:
                with open(srv.log, "a") as f:
                    f.write(json.dumps({"path": path, "range": rng, "status": status, "sent": sent}) + "\n")

    def answer(self, path, rng, status, body):
        """An answer that is not the file: an error status with a short body."""
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.record(path, rng, status, 0)

    def do_GET(self):
        srv = self.server
        path = self.path.split("?", 1)[0].lstrip("/")
        rng = self.headers.get("Range")
        faults = srv.faults.get(path, [])
        with srv.lock:
            count = srv.counts.get(path, 0)
            srv.counts[path] = count + 1
        for f in faults:
            m = re.fullmatch(r"503(bare)?x(\d+)", f)
            if m and count < int(m.group(2)):
                return self.answer(path, rng, 503, b"" if m.group(1) else b"busy")
        full = os.path.join(srv.root, path)
        if not os.path.isfile(full):
            return self.answer(path, rng, 404, b"<Error><Code>NoSuchKey</Code></Error>")
        data = open(full, "rb").read()
        etag = '"%s"' % hashlib.sha1(data).hexdigest()[:16]
        if "newetag" in faults:
            etag = '"%s-%d"' % (etag.strip('"'), count)
        if_match = self.headers.get("If-Match")
        if if_match is not None and if_match != etag:
            return self.answer(path, rng, 412, b"")
        start = 0
        status = 200
        if rng and "norange" not in faults:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
            start = int(m.group(1))
            end = int(m.group(2)) + 1 if m.group(2) else len(data)
            status = 206
        else:
            end = len(data)
        body = data[start:end]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        self.end_headers()
        limit, stall, bps = None, None, None
        for f in faults:
            if count == 0 and (m := re.fullmatch(r"drop@(\d+)", f)):
                limit = int(m.group(1))
            if (m := re.fullmatch(r"stall(every)?@(\d+):([\d.]+)", f)) and (count == 0 or m.group(1)):
                stall = (int(m.group(2)), float(m.group(3)))
            if m := re.fullmatch(r"slow:(\d+)", f):
                bps = int(m.group(1))
        sent = 0
        try:
            while sent < len(body):
                n = min(len(body) - sent, 64 * 1024 if bps is None else max(1, bps // 10))
                if limit is not None:
                    n = min(n, limit - sent)
                if stall is not None and sent < stall[0]:
                    n = min(n, stall[0] - sent)
                if n <= 0 and limit is not None:
                    break
                self.wfile.write(body[sent:sent + n])
                self.wfile.flush()
                sent += n
                if stall is not None and sent == stall[0]:
                    time.sleep(stall[1])
                    stall = None
                if bps is not None:
                    time.sleep(n / bps)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.record(path, rng, status, sent)
        if sent < len(body):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that hangs up early is not an error here
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log")
    ap.add_argument("--fault", action="append", default=[])
    a = ap.parse_args()
    server = Server(("127.0.0.1", a.port), Handler)
    server.root = a.root
    server.log = a.log
    server.lock = threading.Lock()
    server.counts = {}
    server.faults = {}
    for f in a.fault:
        path, spec = f.split("=", 1)
        server.faults.setdefault(path, []).append(spec)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
