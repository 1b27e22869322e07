#!/usr/bin/env python3
"""origin.py PORT - the demo and test origin, HTTP/1.1 on 127.0.0.1.

Fixed endpoints show the representative cases; /gen lets a test describe the
response it wants in the query string; /reflect builds its page from what
a request carries, as a reflecting origin would (for the poisoning tests). Every request is counted by
"METHOD path?query"; GET /__count?u=/path%3Fq returns that count, GET
/__counts all of them, POST /__reset clears them. Counting lives in the
origin so a test can prove a Hit never reached it.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

counts = {}
lock = threading.Lock()
serial = [0]
failing = [0]       # POST /__fail?status=N: /gen?failable=1 answers N (0: not failing)
stalling = [0]      # POST /__fail?stall=MS: /gen?failable=1 answers that much later
holds = {}      # name -> threading.Event: see gen(), hold=


def hold_event(name):
    with lock:
        return holds.setdefault(name, threading.Event())


def binary_body():
    # Every byte value, NULs included, twice.
    return bytes(range(256)) * 2


class Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "spoe-cache-origin"

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, ctype="text/plain", headers=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def count(self):
        with lock:
            k = "%s %s" % (self.command, self.path)
            counts[k] = counts.get(k, 0) + 1
            serial[0] += 1
            return serial[0]

    def do_GET(self):
        u = urlsplit(self.path)
        if u.path == "/__count":
            q = dict(parse_qsl(u.query))
            with lock:
                n = counts.get(q.get("u", ""), 0)
            return self.send(200, str(n))
        if u.path == "/__counts":
            with lock:
                return self.send(200, json.dumps(counts), "application/json")
        if self.command == "POST" and u.path == "/__fail":
            fq = dict(parse_qsl(u.query))
            failing[0] = int(fq.get("status", "0"))
            stalling[0] = int(fq.get("stall", "0"))
            return self.send(200, "ok")
        if self.command == "POST" and u.path == "/__reset":
            with lock:
                counts.clear()
            return self.send(200, "ok")
        if self.command == "POST" and u.path == "/__release":
            hold_event(dict(parse_qsl(u.query)).get("hold", "")).set()
            return self.send(200, "released")
        n = self.count()
        length = int(self.headers.get("Content-Length") or 0)
        reqbody = self.rfile.read(length) if length else b""
        q = parse_qsl(u.query, keep_blank_values=True)
        if u.path == "/json":
            return self.send(200, json.dumps({"hello": "world", "serial": n}),
                             "application/json")
        if u.path == "/text":
            return self.send(200, "hello from the origin, response %d\n" % n)
        if u.path == "/binary":
            return self.send(200, binary_body(), "application/octet-stream",
                             [("X-Serial", str(n))])
        if u.path == "/max-age":
            return self.send(200, "fresh for 30 s, response %d\n" % n, "text/plain",
                             [("Cache-Control", "public, max-age=30")])
        if u.path == "/cookie":
            return self.send(200, "sets a cookie, response %d\n" % n, "text/plain",
                             [("Set-Cookie", "session=%d; Path=/" % n)])
        if u.path == "/slow":
            time.sleep(float(dict(q).get("ms", "500")) / 1000.0)
            return self.send(200, "slow response %d\n" % n)
        if u.path.startswith("/gen"):
            return self.gen(q, n, reqbody)
        if u.path == "/reflect":
            return self.reflect(u, q, n, reqbody)
        return self.send(404, "not found %d\n" % n)

    def read_chunked(self):
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return body
            body += self.rfile.read(size)
            self.rfile.readline()

    def reflect(self, u, q, n, reqbody):
        """A page built the way origins build links and pick routes: from the
        routing headers (X-Forwarded-Host over Host, ...), the request target
        as sent, the first of a repeated parameter a, the last X-Tenant line
        and the body (Content-Length or chunked). text/plain, cacheable;
        cc=VALUE (repeatable) adds a Cache-Control line."""
        h = self.headers
        if "chunked" in (h.get("Transfer-Encoding") or "").lower():
            reqbody = self.read_chunked()
        first = {}
        for k, v in q:
            first.setdefault(k, v)
        lines = [
            "host=%s" % (h.get("X-Forwarded-Host") or h.get("Host") or ""),
            "proto=%s" % (h.get("X-Forwarded-Proto") or h.get("X-Forwarded-Scheme") or "http"),
            "url=%s" % (h.get("X-Original-URL") or h.get("X-Rewrite-URL") or u.path),
            "method=%s" % (h.get("X-HTTP-Method-Override") or self.command),
            "forwarded=%s" % (h.get("Forwarded") or ""),
            "target=%s" % self.path,
            "a=%s" % first.get("a", ""),
            "tenant=%s" % (h.get_all("X-Tenant") or [""])[-1],
            "body=%s" % reqbody.decode("utf-8", "replace"),
            "serial=%d" % n,
        ]
        return self.send(200, "\n".join(lines) + "\n", "text/plain",
                         [("Cache-Control", v) for k, v in q if k == "cc"])

    def gen(self, q, n, reqbody):
        """status=, ct=, h=Name:Value (repeatable), body=, size=N (bytes,
        every value), serial=1 (append the serial), echo=1 (body = request
        body), te=chunked (no Content-Length), cl=N (lie about length),
        delay=MS (answer that much later), etag=V (ETag V; If-None-Match: V
        gets a 304 with the h= fields and X-Revalidated), failable=1 (answer
        the status POST /__fail set, when one is, and only after the
        stall it set),
        mstatus=METHOD:CODE (that status for that method only), nocl=1 (no
        Content-Length at all, as a 204 has none), ranges=1 (answer a
        single "bytes=A-B" Range with a 206 of the body), hold=NAME (methods
        other than GET and HEAD: the headers and the first byte of the body
        at once, the rest only after POST /__release?hold=NAME)."""
        status, ctype, headers, body = 200, "text/plain", [], b""
        chunked = nocl = ranges = False
        hold = None
        qd = dict(q)
        if qd.get("failable") and stalling[0]:
            time.sleep(stalling[0] / 1000.0)
        if qd.get("failable") and failing[0]:
            return self.send(failing[0], "the origin is failing\n")
        if "etag" in qd and self.headers.get("If-None-Match") == qd["etag"]:
            # a validator that matches: 304 with the response's fields and
            # one that changed, no body and no Content-Length
            self.send_response(304)
            self.send_header("ETag", qd["etag"])
            for k, v in q:
                if k == "h":
                    name, _, value = v.partition(":")
                    self.send_header(name, value.lstrip())
            self.send_header("X-Revalidated", str(n))
            self.end_headers()
            return
        if "etag" in qd:
            headers.append(("ETag", qd["etag"]))
        for k, v in q:
            if k == "status":
                status = int(v)
            elif k == "ct":
                ctype = v
            elif k == "h":
                name, _, value = v.partition(":")
                headers.append((name, value.lstrip()))
            elif k == "body":
                body += v.encode()
            elif k == "size":
                size = int(v)
                body += (bytes(range(256)) * (size // 256 + 1))[:size]
            elif k == "serial":
                body += b"serial=%d" % n
            elif k == "echo":
                body += reqbody
            elif k == "te":
                chunked = True
            elif k == "delay":
                time.sleep(int(v) / 1000.0)
            elif k == "mstatus":
                m, _, code = v.partition(":")
                if m == self.command:
                    status = int(code)
            elif k == "nocl":
                nocl = True
            elif k == "ranges":
                ranges = True
            elif k == "hold" and self.command not in ("GET", "HEAD"):
                hold = v
        rng = self.headers.get("Range") or ""
        if ranges and status == 200 and rng.startswith("bytes=") and "," not in rng:
            a, _, b = rng[6:].partition("-")
            if a:
                first, last = int(a), min(int(b) if b else len(body) - 1, len(body) - 1)
                if first < len(body):
                    headers.append(("Content-Range", "bytes %d-%d/%d" % (first, last, len(body))))
                    status, body = 206, body[first:last + 1]
        if nocl:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            return
        if chunked:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command != "HEAD":
                if body:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
                self.wfile.write(b"0\r\n\r\n")
            return
        if hold is not None and body:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:1])
            self.wfile.flush()
            hold_event(hold).wait(timeout=60)   # bounded: a failed test never releases
            self.wfile.write(body[1:])
            return
        return self.send(status, body, ctype, headers)

    do_HEAD = do_GET
    do_POST = do_GET
    do_PUT = do_GET
    do_DELETE = do_GET
    do_PATCH = do_GET

    def __getattr__(self, name):
        # Any other method (M-SEARCH, PROPFIND, an extension) is served as
        # GET is, so a test can see what it invalidates (RFC 9111 4.4).
        if name.startswith("do_"):
            return self.do_GET
        raise AttributeError(name)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024   # socketserver's default backlog of 5 drops SYNs under load


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    srv = Server(("127.0.0.1", port), Origin)
    srv.serve_forever()


if __name__ == "__main__":
    main()
