#!/usr/bin/env python3
"""End to end: the miss path does not wait for memcached (issue 18).

The agent answers a store as soon as it has decided: the client gets its
Miss while memcached still holds the set unanswered, and the set finishes
in the background. Its outcome is counted (spoe_cache_stores_total,
spoe_cache_store_failures_total{reason}); what background stores of one
worker hold is capped by memcached.store_backlog, past which a store is
refused (Bypass, spoe_cache_store_backlog_refusals_total) rather than
queued. An unsafe method's invalidation sends no body and its response is
not buffered: the client has the headers while the origin still holds the
body.

Nothing here is timed: every claim is an ordering. The fake memcached holds
the replies to sets until the test releases them and says what it holds;
the origin holds a body until the test releases it (origin.py hold=).

Fault injection: `test_async_store.py --holdmc PORT CTLPORT` is the fake
memcached: mg, ms, md and mn over an in-memory table, one reply per command
in order on each connection. Its control port takes a line and answers one:
"hold" (from now on a set's reply, and every reply after it on its
connection, waits), "release" (answer everything held: sets stored, HD),
"release ns" (held sets not stored, NS), "drop" (close every connection
holding a set), "state" (JSON: sets received, held, stored).
"""
import http.client
import json
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import HOST, free_port, main, test, wait_for, wait_port  # noqa: E402
from stack import Stack  # noqa: E402

# Enough connections per shard that a lookup never queues behind a held set
# on a pipelined connection: it would then wait for the release, and HAProxy
# would give up on it (timeout processing) instead.
POOL = "keepalive_pool_size = 16;"
# HAProxy waits this long for a body it will hand to the agent: long enough
# that a response waiting for it would outlive the client's timeout.
STORE_WAIT = {"SPOE_CACHE_STORE_WAIT": "60s"}


class HoldMc:
    """The fake memcached, as a process of procs, and its control port."""

    def __init__(self, procs):
        self.port, self.ctl_port = free_port(), free_port()
        self.proc = procs.spawn([sys.executable, os.path.abspath(__file__), "--holdmc",
                                 str(self.port), str(self.ctl_port)], name="holdmc")
        wait_port(self.port, proc=self.proc)
        wait_port(self.ctl_port, proc=self.proc)
        self.pid = self.proc.pid

    def ctl(self, line):
        c = socket.create_connection((HOST, self.ctl_port), timeout=30)
        try:
            c.sendall(line.encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                d = c.recv(65536)
                if not d:
                    break
                buf += d
            return buf.decode().strip()
        finally:
            c.close()

    def state(self):
        return json.loads(self.ctl("state"))


def stack(procs, mc, **kw):
    kw.setdefault("pool_extra", POOL)
    return Stack(procs, shards=[mc], weights=(100,), timeout_ms=60000, threads=1,
                 haproxy_extra_env=STORE_WAIT, **kw)


def metric(s, name):
    return s.metrics().get(name, 0)


@test
def test_miss_answered_while_memcached_holds_the_store(procs):
    mc = HoldMc(procs)
    s = stack(procs, mc)
    path = "/gen?body=async-miss"
    assert mc.ctl("hold") == "ok"
    st, h, b = s.get(path)
    # The client has its Miss while the fake answers no set at all (the
    # agent counts the store in its backlog before it answers)...
    assert st == 200 and h.get("x-cache-status") == "Miss" and b == b"async-miss", (st, h, b)
    assert metric(s, "spoe_cache_store_backlog_bytes") > len(b)
    # ...and the set was sent: it sits unanswered in memcached.
    wait_for(lambda: mc.state()["held"] == 1, what="the set held by memcached")
    state = mc.state()
    assert state["sets"] == 1 and state["stored"] == 0, state
    m = s.metrics()
    assert m.get("spoe_cache_stores_total", 0) == 0, m
    assert m.get("spoe_cache_store_backlog_bytes", 0) > len(b), m
    # Released: the store completes in the background and is counted.
    assert mc.ctl("release") == "ok"
    wait_for(lambda: metric(s, "spoe_cache_stores_total") == 1, what="the store counted")
    assert metric(s, "spoe_cache_store_backlog_bytes") == 0
    assert mc.state()["stored"] == 1
    st, h, b = s.wait_cached(path)
    assert b == b"async-miss", b
    assert s.origin_count(path) == 1


@test
def test_store_failures_are_counted_not_labelled(procs):
    """The label went out before memcached answered: a store it declines or
    loses is a Miss for that client, and a count."""
    mc = HoldMc(procs)
    s = stack(procs, mc)
    assert mc.ctl("hold") == "ok"
    st, h, b = s.get("/gen?body=declined")
    assert h.get("x-cache-status") == "Miss", h
    wait_for(lambda: mc.state()["held"] == 1, what="the set held by memcached")
    assert mc.ctl("release ns") == "ok"
    wait_for(lambda: metric(s, 'spoe_cache_store_failures_total{reason="not_stored"}') == 1,
             what="the declined store counted")
    assert mc.ctl("hold") == "ok"
    st, h, b = s.get("/gen?body=lost")
    assert h.get("x-cache-status") == "Miss", h
    wait_for(lambda: mc.state()["held"] == 1, what="the set held by memcached")
    assert mc.ctl("drop") == "ok"
    wait_for(lambda: metric(s, 'spoe_cache_store_failures_total{reason="error"}') == 1,
             what="the lost store counted")
    m = s.metrics()
    assert m.get("spoe_cache_stores_total", 0) == 0, m
    assert m.get("spoe_cache_store_backlog_bytes", 0) == 0, m
    assert mc.ctl("release") == "ok"
    # Nothing was stored: the next request of each is a Miss again.
    for p in ("/gen?body=declined", "/gen?body=lost"):
        assert s.get(p)[1].get("x-cache-status") == "Miss"
    assert s.origin_count("/gen?body=lost") == 2


@test
def test_store_backlog_cap_refuses_rather_than_queues(procs):
    """One worker, store_backlog 64 KiB, every set held: two 30 KB entries
    fit, the third would go past the cap and is refused (Bypass, counted);
    once memcached answers, stores are taken again."""
    mc = HoldMc(procs)
    s = stack(procs, mc, pool_extra=POOL + " max_item_size = 49152; store_backlog = 65536;")
    paths = ["/gen?size=30000&body=cap%d" % i for i in range(3)]
    assert mc.ctl("hold") == "ok"
    labels = [s.get(p)[1].get("x-cache-status") for p in paths]
    assert labels == ["Miss", "Miss", "Bypass"], labels
    m = s.metrics()
    assert m.get("spoe_cache_store_backlog_refusals_total", 0) == 1, m
    assert 60000 < m.get("spoe_cache_store_backlog_bytes", 0) <= 65536, m
    wait_for(lambda: mc.state()["held"] == 2, what="the two sets held by memcached")
    assert mc.ctl("release") == "ok"
    wait_for(lambda: metric(s, "spoe_cache_stores_total") == 2, what="the two stores")
    assert metric(s, "spoe_cache_store_backlog_bytes") == 0
    # The refused one is stored by its next request, the others are hits.
    assert s.get(paths[2])[1].get("x-cache-status") == "Miss"
    for p in paths:
        s.wait_cached(p)
    assert metric(s, "spoe_cache_store_backlog_refusals_total") == 1


@test
def test_invalidation_does_not_buffer_the_response(procs):
    """A POST to a cached URL: the client has the response headers (Bypass)
    while the origin still holds the body, and the entry is gone by then;
    HAProxy would otherwise wait for the whole body (up to 60 s here)."""
    s = Stack(procs, haproxy_extra_env=STORE_WAIT)
    path = "/gen?body=%s&hold=inval" % ("p" * 5000)
    assert s.get(path)[1].get("x-cache-status") == "Miss"
    s.wait_cached(path)
    c = http.client.HTTPConnection(HOST, s.http_port, timeout=20)
    try:
        c.request("POST", path, body=b"", headers={"Content-Length": "0"})
        r = c.getresponse()     # the headers: the origin holds the body meanwhile
        assert r.status == 200 and r.getheader("X-Cache-Status") == "Bypass", r.getheaders()
        assert metric(s, "spoe_cache_invalidations_total") == 1
        # Invalidated before the headers went out: another client misses.
        assert s.get(path)[1].get("x-cache-status") == "Miss"
        s.request("POST", "/__release?hold=inval", port=s.origin_port)
        assert r.read() == b"p" * 5000
    finally:
        c.close()
    s.wait_cached(path)
    assert s.origin_count(path, "POST") == 1


# ---- the fake memcached ----------------------------------------------------------

class Conn:
    """One client connection: replies in command order; once a set is held,
    every later reply waits behind it."""

    def __init__(self, sock):
        self.sock = sock
        self.queue = []         # held replies: (kind, key, value, reply-builder)
        self.lock = threading.Lock()


class HoldState:
    def __init__(self):
        self.lock = threading.Lock()
        self.table = {}
        self.hold = False
        self.conns = set()
        self.sets = self.stored = 0

    def held(self):
        return sum(1 for c in self.conns for q in c.queue if q[0] == "ms")


def reply_for(st, cmd, key, val, op, ns=False):
    """What memcached answers to cmd now (and what it does to the table)."""
    if cmd == b"mg":
        v = st.table.get(key)
        if v is None:
            return b"EN O%s\r\n" % op
        return b"VA %d f0 t300 O%s\r\n%s\r\n" % (len(v), op, v)
    if cmd == b"ms":
        if ns:
            return b"NS O%s\r\n" % op
        st.table[key] = val
        st.stored += 1
        return b"HD O%s\r\n" % op
    if cmd == b"md":
        return (b"HD O%s\r\n" if st.table.pop(key, None) is not None else b"NF O%s\r\n") % op
    if cmd == b"mn":
        return b"MN\r\n"
    return b"ERROR\r\n"


def holdmc_serve(st, c):
    buf = b""
    try:
        while True:
            d = c.sock.recv(65536)
            if not d:
                return
            buf += d
            while b"\r\n" in buf:
                line, rest = buf.split(b"\r\n", 1)
                parts = line.split() or [b""]
                val = None
                if parts[0] == b"ms":
                    size = int(parts[2])
                    if len(rest) < size + 2:
                        break
                    val, rest = rest[:size], rest[size + 2:]
                buf = rest
                key = parts[1] if len(parts) > 1 else b""
                op = next((p[1:] for p in parts[1:] if p.startswith(b"O")), b"")
                with st.lock:
                    if parts[0] == b"ms":
                        st.sets += 1
                    if c.queue or (st.hold and parts[0] == b"ms"):
                        c.queue.append((parts[0].decode(), key, val, op))
                        continue
                    out = reply_for(st, parts[0], key, val, op)
                with c.lock:
                    c.sock.sendall(out)
    except OSError:
        pass
    finally:
        with st.lock:
            st.conns.discard(c)
        try:
            c.sock.close()
        except OSError:
            pass


def holdmc_control(st, sock):
    f = sock.makefile("rwb")
    line = f.readline().decode().strip()
    with st.lock:
        if line == "hold":
            st.hold = True
            answer = "ok"
        elif line in ("release", "release ns"):
            st.hold = False
            for c in list(st.conns):
                out = b"".join(reply_for(st, k.encode(), key, val, op,
                                         ns=(line == "release ns" and k == "ms"))
                               for k, key, val, op in c.queue)
                c.queue = []
                with c.lock:
                    try:
                        c.sock.sendall(out)
                    except OSError:
                        pass
            answer = "ok"
        elif line == "drop":
            for c in list(st.conns):
                if any(q[0] == "ms" for q in c.queue):
                    c.queue = []
                    try:
                        c.sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            answer = "ok"
        elif line == "state":
            answer = json.dumps({"sets": st.sets, "held": st.held(), "stored": st.stored})
        else:
            answer = "error"
    f.write(answer.encode() + b"\n")
    f.flush()
    sock.close()


def holdmc_main(port, ctl_port):
    st = HoldState()
    srv, ctl = socket.socket(), socket.socket()
    for s, p in ((srv, port), (ctl, ctl_port)):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, p))
        s.listen(64)

    def control_loop():
        while True:
            cs, _ = ctl.accept()
            holdmc_control(st, cs)
    threading.Thread(target=control_loop, daemon=True).start()
    while True:
        cs, _ = srv.accept()
        c = Conn(cs)
        with st.lock:
            st.conns.add(c)
        threading.Thread(target=holdmc_serve, args=(st, c), daemon=True).start()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--holdmc":
        holdmc_main(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
