#!/usr/bin/env python3
"""Wire tests: the admin endpoint is bounded (issue 15). The two attacks of
the issue, a 400 MB body to /healthz and an endless header line (which took
the agent from 9 MB to 318 MB and 500 MB), leave its peak RSS within a few
MB of where it was, and the endpoint answers other clients meanwhile; a
request must arrive whole within agent.admin.timeout, even a byte at a
time; at most agent.admin.max_connections are open, the next one waits
until one closes; `-t` and start-up refuse a non-loopback admin address
without a token.

Memory is measured on the release build (see tests/lib/wireagent.py); the
rest runs on the sanitizer build.
"""
import os
import socket
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import AGENT_ASAN, HOST, main, test, wait_for  # noqa: E402
from wireagent import Agent, check_config, line_of  # noqa: E402

MB = 1 << 20


def get(port, path, timeout=30, headers=None):
    req = urllib.request.Request("http://%s:%d%s" % (HOST, port, path), headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Pinger(threading.Thread):
    """Another client asking for /healthz and /metrics over and over while
    an attack runs: every answer must be right."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop, self.ok, self.bad = port, False, 0, []

    def run(self):
        while not self.stop:
            for path in ("/healthz", "/metrics"):
                try:
                    st, body = get(self.port, path)
                    if st == 200 and (body == b"ok\n" or b"spoe_cache_lookups_total" in body):
                        self.ok += 1
                    else:
                        self.bad.append((path, st, body[:80]))
                except OSError as e:
                    self.bad.append((path, repr(e)))
            time.sleep(0.02)


def pump(port, head, chunk, total):
    """Send head, then chunk repeatedly up to total bytes or until the agent
    closes; returns the bytes sent after head."""
    s = socket.create_connection((HOST, port), timeout=30)
    sent = 0
    try:
        s.sendall(head)
        while sent < total:
            s.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass
    # what the agent answered, if anything reached us before the close
    try:
        s.settimeout(5)
        s.recv(65536)
    except OSError:
        pass
    s.close()
    return sent


def attack(ag, head, chunk, total, what):
    """Run one attack with a Pinger alongside; returns (peak growth in kB,
    bytes the attacker got through)."""
    for _ in range(20):     # the endpoint's working set, before measuring
        assert get(ag.admin_port, "/metrics")[0] == 200
    base = ag.rss_kb()
    pinger = Pinger(ag.admin_port)
    pinger.start()
    sent = pump(ag.admin_port, head, chunk, total)
    wait_for(lambda: pinger.ok >= 10, timeout=60, what="the other client's answers")
    pinger.stop = True
    pinger.join(60)
    assert not pinger.bad, (what, pinger.bad[:5])
    grew = ag.peak_kb() - base
    sys.stderr.write("%s: peak RSS +%d kB (from %d kB), attacker sent %d MB before the close\n"
                     % (what, grew, base, sent // MB))
    assert ag.alive(), what
    return grew, sent


@test
def test_huge_body_to_healthz(procs):
    """The issue's attack: 400 MB after "Content-Length: 400000000" to
    /healthz; the same chunked; the same on GET. evhttp answers 413 and
    closes at ADMIN_MAX_BODY."""
    ag = Agent(procs, release=True)
    chunk = b"x" * 65536
    for what, head in (
            ("POST content-length", b"POST /healthz HTTP/1.1\r\nHost: a\r\n"
                                    b"Content-Length: 400000000\r\n\r\n"),
            ("POST chunked", b"POST /healthz HTTP/1.1\r\nHost: a\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n"),
            ("GET content-length", b"GET /healthz HTTP/1.1\r\nHost: a\r\n"
                                   b"Content-Length: 400000000\r\n\r\n")):
        body = chunk if "chunked" not in what else b"10000\r\n" + chunk + b"\r\n"
        grew, sent = attack(ag, head, body, 400 * MB, what)
        assert grew < 8 * 1024, "%s: peak RSS grew by %d kB" % (what, grew)
        assert sent < 100 * MB, "%s: the agent took %d MB of a body" % (what, sent // MB)
    assert get(ag.admin_port, "/healthz") == (200, b"ok\n")
    ag.finish()


@test
def test_endless_header_line(procs):
    """An endless header line, and an endless request line: closed at
    ADMIN_MAX_HEADERS, the memory of a few MB at most."""
    ag = Agent(procs, release=True)
    for what, head in (("endless header", b"GET /healthz HTTP/1.1\r\nX-Long: "),
                       ("endless request line", b"GET /"),
                       ("endless header count", b"GET /healthz HTTP/1.1\r\n")):
        chunk = b"a" * 65536 if what != "endless header count" else b"X-H: v\r\n" * 8192
        grew, sent = attack(ag, head, chunk, 500 * MB, what)
        assert grew < 8 * 1024, "%s: peak RSS grew by %d kB" % (what, grew)
        assert sent < 100 * MB, "%s: the agent read %d MB of headers" % (what, sent // MB)
    assert get(ag.admin_port, "/healthz") == (200, b"ok\n")
    ag.finish()


@test
def test_request_must_arrive_in_time(procs):
    """A byte a second never lets evhttp's per-read timeout fire; the
    agent.admin.timeout deadline closes it anyway, and counts it. A client
    that opens and says nothing is closed too. A slow memcached does not
    count against a request that has arrived (it is ours to answer)."""
    ag = Agent(procs, admin_extra="timeout = 2;")
    trickle = socket.create_connection((HOST, ag.admin_port), timeout=30)
    silent = socket.create_connection((HOST, ag.admin_port), timeout=30)
    closed = {}

    def drip():
        try:
            for b in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"s" * 10000:
                trickle.send(bytes([b]))
                time.sleep(0.5)
        except OSError:
            closed["trickle"] = True
    t = threading.Thread(target=drip, daemon=True)
    t.start()
    silent.settimeout(60)
    assert silent.recv(100) == b"", "the silent connection got an answer"
    t.join(60)
    assert closed.get("trickle"), "a request a byte at a time was never closed"
    wait_for(lambda: ag.metric("spoe_cache_admin_slow_closes_total") >= 1, timeout=30,
             what="the slow close counted")
    assert get(ag.admin_port, "/healthz") == (200, b"ok\n")
    trickle.close()
    silent.close()
    ag.finish()


@test
def test_connection_cap(procs):
    """agent.admin.max_connections = 4: with four open, a fifth waits in the
    backlog (the listener pauses) and is served once they close."""
    ag = Agent(procs, admin_extra="max_connections = 4; timeout = 3;")
    idle = [socket.create_connection((HOST, ag.admin_port), timeout=60) for _ in range(4)]
    answer = {}

    def fifth():
        answer["r"] = get(ag.admin_port, "/metrics", timeout=60)
        # which of the four had been closed by then
        answer["closed"] = 0
        for s in idle:
            s.setblocking(False)
            try:
                if s.recv(100) == b"":
                    answer["closed"] += 1
            except BlockingIOError:
                pass
            except OSError:
                answer["closed"] += 1
    t = threading.Thread(target=fifth, daemon=True)
    t.start()
    t.join(90)
    assert "r" in answer, "the fifth connection was never served"
    st, body = answer["r"]
    assert st == 200, answer
    assert answer["closed"] >= 1, "the fifth was served while four others were open"
    m = {l.rpartition(" ")[0]: float(l.rpartition(" ")[2])
         for l in body.decode().splitlines() if l and not l.startswith("#")}
    assert m["spoe_cache_admin_pauses_total"] >= 1, m
    assert m["spoe_cache_admin_connections"] <= 4, m
    for s in idle:
        s.close()
    # and it keeps taking connections
    for _ in range(10):
        assert get(ag.admin_port, "/healthz") == (200, b"ok\n")
    ag.finish()


@test
def test_admin_off_loopback_needs_a_token(procs):
    """-t (and start-up) refuse a non-loopback admin address without a
    token, naming the file, the line and the setting; loopback addresses,
    "" (off) and a token are fine."""
    base = """agent: {
  admin: {
    listen = "%s";
    %s
  };
};
memcached: { hosts = ( { host = "127.0.0.1"; } ); };
"""
    for addr in ("0.0.0.0", "::", "10.1.2.3", "admin.example.com", "[::]"):
        text = base % (addr, "")
        p = procs.write("bad.conf", text)
        rc, out, err = check_config(p)
        assert rc == 1 and out == "", (addr, rc, out, err)
        want = "%s:%d: agent.admin.listen: " % (p, line_of(text, "listen ="))
        assert err.startswith("spoe-cache-agent: " + want), (addr, err)
        assert "agent.admin.token" in err, err
        # start-up refuses it the same way, before listening
        r = procs.spawn([AGENT_ASAN, "-c", p], name="refused")
        assert r.wait(60) == 1, addr
        assert want in procs.log_text(r), procs.log_text(r)
    for addr, extra in (("127.0.0.1", ""), ("127.9.9.9", ""), ("::1", ""), ("localhost", ""),
                        ("", ""), ("0.0.0.0", 'token = "s3cret";')):
        p = procs.write("good.conf", base % (addr, extra))
        rc, out, err = check_config(p)
        assert rc == 0 and "configuration OK" in out and err == "", (addr, rc, out, err)
    # an empty token is no token
    p = procs.write("empty.conf", base % ("0.0.0.0", 'token = "";'))
    rc, out, err = check_config(p)
    assert rc == 1 and "agent.admin.listen" in err, (rc, err)


if __name__ == "__main__":
    main()
