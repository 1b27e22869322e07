#!/usr/bin/env python3
"""Wire tests of the running agent (the ASan+UBSan build) over SPOP, with a
scripted HAProxy peer (tests/lib/spopclient.py) and real memcached shards.

MISSION.md 4.1 and 5: the handshake, every DISCONNECT status the agent
owes a bad peer, pipelining and completion-order ACKs, reassembly of
fragmented NOTIFY frames, ACK size limits, backpressure, and binary junk.
A malformed frame must close only its own connection: every error case
keeps a well-behaved connection open across it and checks it is still
served afterwards, and that the agent is still alive.

Every ACK the client receives is checked to be at most the negotiated
max-frame-size - 1 bytes (Client.recv_frame). Every test ends by stopping
the agent with SIGTERM and requiring a clean exit (LeakSanitizer runs then).
No wall-clock assertions beyond generous bounded waits.
"""
import os
import random
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import main, test, wait_for  # noqa: E402
import spopclient as sc  # noqa: E402
import wireagent  # noqa: E402

HOSTHDR = "wire.example"
BASE_HDRS = [("host", HOSTHDR), ("user-agent", "spopclient"), ("accept", "*/*")]


class Agent(wireagent.Agent):
    """The agent under test (the sanitizer build) with its memcached shards,
    all owned by procs; one worker thread unless a test asks for more."""

    def __init__(self, procs, threads=1, **kw):
        super().__init__(procs, threads=threads, **kw)


_ids = [1000]


def next_id():
    _ids[0] += 1
    return _ids[0]


def lookup(c, url, policy="default", method="GET", headers=None, sid=None, fid=1, timeout=None):
    sid = next_id() if sid is None else sid
    return c.lookup(sid, fid, policy, method, url, headers or BASE_HDRS, timeout=timeout)


def check_served(c, tag=""):
    """A well-behaved connection still gets correct ACKs: a Bypass (unknown
    policy, answered at once) and a real lookup (memcached round trip)."""
    sid = next_id()
    a = c.lookup(sid, 7, "no-such-policy", "GET", "/x", BASE_HDRS)
    assert (a.sid, a.fid) == (sid, 7) and a["status"] == "Bypass", (tag, a)
    a = lookup(c, "/served-check/%d" % next_id())
    assert a["status"] in ("Miss", "Hit"), (tag, a)
    assert len(a["key"]) == 64, (tag, a)


def std_response_headers(body):
    return [("content-type", "text/plain"), ("content-length", str(len(body))),
            ("cache-control", "max-age=300")]


def store_entry(c, url, body, headers=None):
    """lookup (Miss + ctx) then store: returns (lookup ack, store ack)."""
    a = lookup(c, url, headers=headers)
    assert a["status"] == "Miss", a
    assert isinstance(a["ctx"], bytes) and len(a["key"]) == 64, a
    s = c.store(next_id(), 1, a["ctx"], 200, std_response_headers(body), body)
    c.agent.wait_stored()
    return a, s


# ---------------------------------------------------------------- handshake

@test
def test_handshake(procs):
    ag = Agent(procs, agent_extra="max_frame_size = 8192;")
    # offered below ours: the offer wins
    c = ag.client()
    h = c.hello(max_frame_size=1024)
    assert h["version"] == "2.0", h
    assert h["max-frame-size"] == 1024, h
    caps = [x.strip() for x in h["capabilities"].split(",")]
    for cap in ("pipelining", "async", "fragmentation"):
        assert cap in caps, h
    f = c.received[-1]
    assert (f.type, f.sid, f.fid) == (sc.FRM_AGENT_HELLO, 0, 0) and f.flags & sc.FL_FIN, f
    check_served(c)
    # offered above ours: ours wins
    c2 = ag.client()
    h2 = c2.hello(max_frame_size=65536)
    assert h2["max-frame-size"] == 8192, h2
    check_served(c2)
    # pipelining and async only when HAProxy offered them (3.1+ offers
    # pipelining alone, and never fragments: a frame size below HAProxy's is
    # worth a warning); fragmentation is what the agent can receive
    c4 = ag.client()
    h4 = c4.hello(max_frame_size=65536, capabilities="pipelining")
    assert h4["capabilities"] == "pipelining,fragmentation", h4
    check_served(c4)
    wait_for(lambda: "never fragments" in ag.log(), what="the frame-size warning")
    c5 = ag.client()
    h5 = c5.hello(capabilities="")
    assert h5["capabilities"] == "fragmentation", h5
    # several versions offered, one of them 2.x
    c3 = ag.client()
    assert c3.hello(versions="1.0, 2.0, 3.1")["version"] == "2.0"
    # the healthcheck HELLO: AGENT-HELLO, then the agent closes (no DISCONNECT)
    hc = ag.client()
    hc.send_raw(sc.hello_frame(healthcheck=True, capabilities="", engine_id=None))
    f = hc.recv_frame()
    assert f.type == sc.FRM_AGENT_HELLO, f
    assert sc.decode_agent_hello(f.payload)["version"] == "2.0"
    hc.expect_closed()
    assert [x.type for x in hc.received] == [sc.FRM_AGENT_HELLO], hc.received
    check_served(c)
    ag.finish()


HELLO_ERRORS = [
    ("missing supported-versions", dict(versions=None), sc.ST_NO_VSN),
    ("missing max-frame-size", dict(max_frame_size=None), sc.ST_NO_FRAME_SIZE),
    ("missing capabilities", dict(capabilities=None), sc.ST_NO_CAP),
    ("version 1.0 only", dict(versions="1.0"), sc.ST_BAD_VSN),
    ("max-frame-size 100", dict(max_frame_size=100), sc.ST_BAD_FRAME_SIZE),
]


def bad_peer(ag, good, data, status, what, hello_first=False, hello_max=16380,
             statuses=None):
    """Send data on a fresh connection: AGENT-DISCONNECT with the status,
    then close; the good connection (opened earlier) is still served, and
    the agent is alive."""
    b = ag.client()
    if hello_first:
        b.hello(max_frame_size=hello_max)
    b.send_raw(data)
    try:
        d = b.expect_disconnect()
    except sc.Closed:
        raise AssertionError("%s: closed without AGENT-DISCONNECT (got %r)" % (what, b.received))
    f = d.pop("_frame")
    assert (f.sid, f.fid) == (0, 0) and f.flags & sc.FL_FIN, (what, f)
    ok = statuses if statuses is not None else (status,)
    assert d.get("status-code") in ok, "%s: DISCONNECT %r, expected %r" % (what, d, ok)
    assert isinstance(d.get("message"), str), (what, d)
    assert b.eof, what
    b.close()
    assert ag.alive(), "%s: agent died" % what
    check_served(good, what)


@test
def test_hello_errors(procs):
    ag = Agent(procs)
    good = ag.ready()
    for what, kw, st in HELLO_ERRORS:
        bad_peer(ag, good, sc.hello_frame(**kw), st, what)
    # a HELLO item with the wrong type, and a truncated KV list
    bad_peer(ag, good, sc.build_frame(sc.FRM_HAPROXY_HELLO, sc.FL_FIN, 0, 0,
                                      sc.haproxy_hello(max_frame_size="16380")),
             sc.ST_INVALID, "max-frame-size as a string")
    pl = sc.haproxy_hello()
    bad_peer(ag, good, sc.build_frame(sc.FRM_HAPROXY_HELLO, sc.FL_FIN, 0, 0, pl[:-3]),
             sc.ST_INVALID, "truncated HELLO KV list")
    ag.finish()


# ------------------------------------------------------------ frame errors

def lookup_payload(url="/p"):
    return sc.notify_payload([sc.lookup_message("default", "GET", url, BASE_HDRS)])


@test
def test_protocol_errors(procs):
    ag = Agent(procs, threads=1)
    good = ag.ready()
    check_served(good)
    N = sc.FRM_NOTIFY

    bad_peer(ag, good, sc.build_frame(N, sc.FL_FIN, 1, 1, lookup_payload()),
             sc.ST_INVALID, "NOTIFY before HELLO")
    bad_peer(ag, good, sc.build_frame(50, sc.FL_FIN, 0, 0, b""), sc.ST_INVALID,
             "unknown frame type before HELLO")
    # frame length above the negotiated max (1024): only the prefix matters
    bad_peer(ag, good, b"\x00\x00\x04\x01" + b"\x03" + b"\x00" * 40, sc.ST_TOO_BIG,
             "frame above negotiated max", hello_first=True, hello_max=1024)
    # exactly the max is fine on the way in
    c = ag.ready(max_frame=1024)
    # pad the message list with a message the agent ignores, to exactly 1024
    for n in range(1024, 0, -1):
        filler = sc.notify_payload([("zz", [("p", b"x" * n)])])
        full = sc.frame_body(N, sc.FL_FIN, 5, 5, filler + lookup_payload())
        if len(full) == 1024:
            break
    assert len(full) == 1024, len(full)
    c.send_raw(len(full).to_bytes(4, "big") + full)
    assert c.wait_ack(5, 5)["status"] == "Miss"
    # short frames
    for n in range(0, 7):
        bad_peer(ag, good, n.to_bytes(4, "big") + b"\x03" * n, sc.ST_INVALID,
                 "frame of %d bytes" % n, hello_first=True)
    # varints running past the end of the frame
    bad_peer(ag, good, (7).to_bytes(4, "big") + b"\x03\x00\x00\x00\x01\xf0\x80",
             sc.ST_INVALID, "frame-id varint past the end", hello_first=True)
    bad_peer(ag, good, (7).to_bytes(4, "big") + b"\x03\x00\x00\x00\x01\xff\xff",
             sc.ST_INVALID, "stream-id varint past the end", hello_first=True)
    bad_peer(ag, good, sc.build_frame(N, sc.FL_FIN, 1, 1, b"\xf5\x80"), sc.ST_INVALID,
             "message-name varint past the end", hello_first=True)
    pl = lookup_payload()
    bad_peer(ag, good, sc.build_frame(N, sc.FL_FIN, 1, 1, pl + b"\x04abcd\x01\x01\x61\x08\xf3"),
             sc.ST_INVALID, "string length varint past the end", hello_first=True)
    bad_peer(ag, good, sc.build_frame(N, sc.FL_FIN, 1, 1,
                                      pl + b"\x04abcd\x01\x01\x61\x08\xf0\x10xx"),
             sc.ST_INVALID, "string longer than the frame", hello_first=True)
    # truncated KV lists (arguments) at every cut of a real message
    for cut in (1, 3, 9, len(pl) // 2, len(pl) - 1):
        bad_peer(ag, good, sc.build_frame(N, sc.FL_FIN, 1, 1, pl[:cut]), sc.ST_INVALID,
                 "NOTIFY payload cut at %d" % cut, hello_first=True)
    # unknown data types 10..15
    for t in range(10, 16):
        msg = [("cache-lookup", [("policy", "default"), ("x", sc.raw_data(bytes([t, 0, 0])))])]
        bad_peer(ag, good, sc.build_frame(N, sc.FL_FIN, 1, 1, sc.notify_payload(msg)),
                 sc.ST_INVALID, "data type %d" % t, hello_first=True)
    # NB-ARGS larger than what follows
    msg = [("cache-lookup", [("policy", "default"), ("method", "GET")], 3)]
    bad_peer(ag, good, sc.build_frame(N, sc.FL_FIN, 1, 1, sc.notify_payload(msg)),
             sc.ST_INVALID, "NB-ARGS 3 with 2 args", hello_first=True)
    # unknown frame type after HELLO, and agent-side types from the peer
    for t in (50, 4, 255, sc.FRM_ACK, sc.FRM_AGENT_HELLO):
        bad_peer(ag, good, sc.build_frame(t, sc.FL_FIN, 1, 1, b""), sc.ST_INVALID,
                 "frame type %d" % t, hello_first=True)
    bad_peer(ag, good, sc.hello_frame(), sc.ST_INVALID, "second HELLO", hello_first=True)
    # UNSET with nothing pending
    bad_peer(ag, good, sc.build_frame(sc.FRM_UNSET, sc.FL_FIN, 1, 1, b"x"),
             sc.ST_FRAMEID_NOTFOUND, "UNSET with nothing pending", hello_first=True)
    # a fragment of another stream while one is pending
    frags = sc.fragments(N, 9, 1, lookup_payload(), [10])
    other = sc.build_frame(sc.FRM_UNSET, sc.FL_FIN, 10, 1, b"x")
    bad_peer(ag, good, frags[0] + other, sc.ST_INTERLACED,
             "fragment of another stream", hello_first=True)
    other = sc.build_frame(sc.FRM_UNSET, sc.FL_FIN, 9, 2, b"x")
    bad_peer(ag, good, frags[0] + other, sc.ST_INTERLACED,
             "fragment of another frame-id", hello_first=True)
    bad_peer(ag, good, frags[0] + sc.build_frame(N, sc.FL_FIN, 11, 1, lookup_payload()),
             sc.ST_INTERLACED, "NOTIFY while a fragmented one is pending", hello_first=True)
    # HAPROXY-DISCONNECT: status 0 and close, before and after HELLO
    bad_peer(ag, good, sc.disconnect_frame(), sc.ST_NORMAL, "HAPROXY-DISCONNECT",
             hello_first=True)
    bad_peer(ag, good, sc.disconnect_frame(sc.ST_TIMEOUT, "timeout"), sc.ST_NORMAL,
             "HAPROXY-DISCONNECT with an error status", hello_first=True)
    bad_peer(ag, good, sc.disconnect_frame(), sc.ST_NORMAL, "HAPROXY-DISCONNECT before HELLO")
    # a DISCONNECT status is what a NOTIFY in flight on that connection gets;
    # the pipelined good frames before a bad one on the same connection are
    # still ACKed or dropped, never mixed up: only the ids we sent come back
    b = ag.ready()
    b.send_raw(b"".join(sc.Client.lookup_frame(100 + i, 1, "no-such-policy", "GET", "/", BASE_HDRS)
                        for i in range(5)) + sc.build_frame(50, sc.FL_FIN, 0, 0))
    d = b.expect_disconnect()
    assert d["status-code"] == sc.ST_INVALID, d
    acks = [sc.Ack(f) for f in b.received if f.type == sc.FRM_ACK]
    assert {(a.sid, a.fid) for a in acks} <= {(100 + i, 1) for i in range(5)}, acks
    check_served(good, "after pipelined bad frame")
    ag.finish()


# -------------------------------------------------------------- pipelining

@test
def test_pipelining_200(procs):
    ag = Agent(procs, nshards=3, threads=2)
    c = ag.ready(max_frame=65536)
    # ten entries stored through the agent's own store message
    for i in range(10):
        _, s = store_entry(c, "/pipe/hit/%d" % i, b"body-%d" % i)
        assert s["status"] == "Miss", s
    frames, want = [], {}
    for i in range(200):
        sid, fid = (1 << 40) + 7 * i, 3 + (i % 5) * 1000
        kind = i % 3
        if kind == 0:
            frames.append(c.lookup_frame(sid, fid, "default", "GET", "/pipe/hit/%d" % (i % 10),
                                         BASE_HDRS))
            want[(sid, fid)] = "Hit"
        elif kind == 1:
            frames.append(c.lookup_frame(sid, fid, "nope", "GET", "/pipe/x", BASE_HDRS))
            want[(sid, fid)] = "Bypass"
        else:
            frames.append(c.lookup_frame(sid, fid, "default", "GET", "/pipe/miss/%d" % i,
                                         BASE_HDRS))
            want[(sid, fid)] = "Miss"
    c.send_raw(b"".join(frames))
    acks = c.recv_acks(200, timeout=60)
    got = {(a.sid, a.fid): a for a in acks}
    assert len(got) == 200 and set(got) == set(want), (len(got), set(want) - set(got))
    for k, a in got.items():
        assert a["status"] == want[k], (k, a, want[k])
        if want[k] == "Hit":
            i = [j for j in range(10) if a["body"] == b"body-%d" % j]
            assert len(i) == 1, a
    order = [want[(a.sid, a.fid)] for a in acks]
    arrival = [want[k] for k in want]
    # Bypasses are answered while lookups wait for memcached: the ACK order
    # is completion order, not arrival order.
    assert order != arrival, "ACKs came back exactly in arrival order"
    assert c.no_frame(0.3)
    ag.finish()


@test
def test_acks_in_completion_order(procs):
    """A lookup stuck on a stopped memcached (timeout 300 ms) is ACKed after
    a Bypass sent behind it on the same connection."""
    ag = Agent(procs, nshards=1, threads=1, timeout_ms=300, pool_extra="fail_threshold = 1000;")
    c = ag.ready()
    check_served(c)
    os.kill(ag.shards[0].pid, signal.SIGSTOP)
    try:
        for rnd in range(3):
            s1, s2 = next_id(), next_id()
            c.send_raw(c.lookup_frame(s1, 1, "default", "GET", "/slow/%d" % rnd, BASE_HDRS) +
                       c.lookup_frame(s2, 2, "nope", "GET", "/fast", BASE_HDRS))
            a, b = c.recv_acks(2, timeout=20)
            assert (a.sid, a.fid, a["status"]) == (s2, 2, "Bypass"), (a, b)
            assert (b.sid, b.fid, b["status"]) == (s1, 1, "Miss"), (a, b)
            # sent separately too: the Bypass overtakes the pending lookup
            c.send_raw(c.lookup_frame(s1 + 10000, 1, "default", "GET", "/slow2/%d" % rnd,
                                      BASE_HDRS))
            c.lookup(s2 + 10000, 2, "nope", "GET", "/fast", BASE_HDRS, wait=False)
            a, b = c.recv_acks(2, timeout=20)
            assert a.sid == s2 + 10000 and b.sid == s1 + 10000, (a, b)
    finally:
        os.kill(ag.shards[0].pid, signal.SIGCONT)
    check_served(c)
    ag.finish()


# ---------------------------------------------------- lookup / store / hit

@test
def test_lookup_store_lookup(procs):
    ag = Agent(procs, nshards=2, threads=2)
    c = ag.ready(max_frame=16380)
    body = bytes(range(256))
    a = lookup(c, "/cycle?x=1")
    assert a["status"] == "Miss", a
    key, ctx = a["key"], a["ctx"]
    assert len(key) == 64 and isinstance(ctx, bytes) and ctx, a
    assert "serve" not in a, a
    hdrs = [("content-type", "text/plain"), ("content-length", str(len(body))),
            ("x-origin", "yes")]
    s = c.store(next_id(), 1, ctx, 200, hdrs, body)
    assert s["status"] == "Miss", s
    # The store was answered once decided; memcached takes it in the
    # background, and the agent counts it once it did.
    wait_for(lambda: ag.metric("spoe_cache_stores_total") == 1, timeout=10,
             what="the background store")
    assert ag.metric("spoe_cache_store_backlog_bytes") == 0
    h = lookup(c, "/cycle?x=1")
    assert h["status"] == "Hit", h
    assert h["serve"] is True and h["code"] == 200, h
    assert h["key"] == key, h
    assert h["body"] == body, h
    hl = dict(sc.parse_headers_block(h["headers"]))
    assert hl.get("x-cache-status") == "Hit", hl
    assert hl.get("content-type") == "text/plain", hl
    assert hl.get("content-length") == "256", hl
    assert hl.get("x-origin") == "yes", hl
    assert hl.get("x-cache-key") == key, hl
    # another connection (maybe another worker) sees the same entry
    c2 = ag.ready()
    h2 = lookup(c2, "/cycle?x=1")
    assert h2["status"] == "Hit" and h2["body"] == body, h2
    # a different URL is still a Miss; the store of a garbage ctx is refused
    assert lookup(c2, "/cycle?x=2")["status"] == "Miss"
    s = c2.store(next_id(), 1, b"\x09garbage", 200, hdrs, body)
    assert s["status"] == "Bypass", s
    ag.finish()


@test
def test_l1life_argument(procs):
    """l1life (the L1's lifetime, s) decides whether a Hit carries an L1
    grant: none when 0 or longer than what the policy and entry allow;
    absent, or not a usable integer, the agent grants as without it."""
    ag = Agent(procs, policies=wireagent.DEFAULT_POLICIES.replace(
        "cache_ttl = 300;", "cache_ttl = 300; l1_ttl = 60;"))
    c = ag.ready()
    store_entry(c, "/l1life", b"granted or not")

    def hit(*extra):
        sid = next_id()
        msg = sc.lookup_message("default", "GET", "/l1life", BASE_HDRS)
        c.send_raw(sc.notify_frame(sid, 1, [(msg[0], msg[1] + list(extra))]))
        a = c.wait_ack(sid, 1)
        assert a["status"] == "Hit" and a["body"] == b"granted or not", (extra, a)
        return a.get("l1")

    assert 0 < hit() <= 60000
    assert hit(("l1life", 0)) is None
    assert 0 < hit(("l1life", 30)) <= 60000
    assert hit(("l1life", 60)) is not None
    assert hit(("l1life", 61)) is None
    assert hit(("l1life", sc.u64(2**40))) is None
    assert hit(("l1life", sc.i32(-5))) is not None
    assert hit(("l1life", "60")) is not None
    assert hit(("l1life", None)) is not None
    check_served(c)
    ag.finish()


@test
def test_large_entries_round_trip(procs):
    """Large entries, and 60 of 200 KB sent to a frozen shard: its socket
    buffers fill, the sets wait in the agent's output, and each store is
    answered only once its set has left the agent (so that a lookup made
    after the answer cannot overtake it). Once the shard thaws, every
    answer comes, and every byte comes back."""
    ag = Agent(procs, nshards=1, timeout_ms=60000)
    c = ag.ready(max_frame=262140)
    rnd = random.Random(18)
    bodies = {}
    for i, size in enumerate((70000, 150000, 240000)):
        bodies["/large/%d" % i] = bytes(rnd.randrange(256) for _ in range(size))
        store_entry(c, "/large/%d" % i, bodies["/large/%d" % i])
    chunk = os.urandom(200000)
    ctxs = {}
    for i in range(60):
        url = "/large/frozen/%d" % i
        bodies[url] = chunk[i:] + chunk[:i]
        a = lookup(c, url)
        assert a["status"] == "Miss", a
        ctxs[url] = a["ctx"]
    os.kill(ag.shards[0].pid, signal.SIGSTOP)
    try:
        for sid, (url, ctx) in enumerate(ctxs.items(), 9000):
            c.send_raw(c.store_frame(sid, 1, ctx, 200, std_response_headers(bodies[url]),
                                     bodies[url]))
        wait_for(lambda: ag.metric("spoe_cache_store_backlog_bytes") > 60 * 200000,
                 timeout=30, what="the 60 stores taken")
    finally:
        os.kill(ag.shards[0].pid, signal.SIGCONT)
    acks = c.recv_acks(60, timeout=60)
    assert sorted(a.sid for a in acks) == list(range(9000, 9060)), acks
    assert all(a["status"] == "Miss" for a in acks), acks
    ag.wait_stored()
    assert ag.metric("spoe_cache_stores_total") == 63
    for url, body in bodies.items():
        h = lookup(c, url)
        assert h["status"] == "Hit" and h["body"] == body, (url, h["status"])
    ag.finish()


@test
def test_failed_store_is_counted(procs):
    """A store is answered before memcached's answer (its label is Miss), so
    one memcached did not take is counted as a failure instead."""
    ag = Agent(procs, nshards=1, timeout_ms=300)
    c = ag.ready()
    body = b"x" * 10
    a = lookup(c, "/lost")
    assert a["status"] == "Miss", a
    procs.stop(ag.shards[0], sig=signal.SIGKILL)
    s = c.store(next_id(), 1, a["ctx"], 200, std_response_headers(body), body)
    assert s["status"] == "Miss", s
    wait_for(lambda: ag.metric('spoe_cache_store_failures_total{reason="error"}') == 1,
             timeout=10, what="the failed store to be counted")
    assert ag.metric("spoe_cache_stores_total") == 0
    assert ag.metric("spoe_cache_store_backlog_bytes") == 0
    ag.finish()


# ----------------------------------------------------------- fragmentation

def store_payload(ctx, body, extra_hdrs=()):
    hdrs = std_response_headers(body) + list(extra_hdrs)
    return sc.notify_payload([sc.store_message(ctx, 200, hdrs, body)])


@test
def test_fragmented_store_reassembled(procs):
    ag = Agent(procs, nshards=2)
    c = ag.ready(max_frame=16380)
    body = bytes(random.Random(7).randrange(256) for _ in range(3000))
    a = lookup(c, "/frag/ok")
    assert a["status"] == "Miss", a
    pl = store_payload(a["ctx"], body)
    at = pl.index(body[:32])  # cut inside the body string, twice
    cuts = [at + 1000, at + 2000]
    frames = sc.fragments(sc.FRM_NOTIFY, 77, 3, pl, cuts)
    assert len(frames) == 3
    assert frames[0][4] == sc.FRM_NOTIFY and frames[1][4] == sc.FRM_UNSET
    c.send_raw(frames[0])
    assert c.no_frame(0.2)  # nothing until the last fragment
    c.send_raw(frames[1])
    assert c.no_frame(0.2)
    c.send_raw(frames[2])
    s = c.wait_ack(77, 3)
    assert s["status"] == "Miss", s
    ag.wait_stored()
    h = lookup(c, "/frag/ok")
    assert h["status"] == "Hit" and h["body"] == body, h
    # a lookup split in many small fragments works too
    pl = lookup_payload("/frag/ok")
    for f in sc.fragments(sc.FRM_NOTIFY, 78, 1, pl, list(range(5, len(pl), 7))):
        c.send_raw(f)
    h = c.wait_ack(78, 1)
    assert h["status"] == "Hit" and h["body"] == body, h
    ag.finish()


@test
def test_fragmented_notify_aborted_by_haproxy(procs):
    ag = Agent(procs)
    c = ag.ready(max_frame=16380)
    body = b"a" * 2000
    a = lookup(c, "/frag/abort")
    pl = store_payload(a["ctx"], body)
    frames = sc.fragments(sc.FRM_NOTIFY, 88, 1, pl, [500, 1500])
    c.send_raw(frames[0] + frames[1])
    # HAProxy gives up: UNSET with ABORT|FIN, no ACK expected
    c.send_frame(sc.FRM_UNSET, sc.FL_ABORT | sc.FL_FIN, 88, 1, b"")
    assert c.no_frame(0.5)
    # the connection keeps working, and the aborted store did not happen
    a2 = lookup(c, "/frag/abort")
    assert a2["status"] == "Miss", a2
    # the same ids may be used again for a new fragmented NOTIFY
    for f in sc.fragments(sc.FRM_NOTIFY, 88, 1, store_payload(a2["ctx"], body), [700]):
        c.send_raw(f)
    assert c.wait_ack(88, 1)["status"] == "Miss"
    ag.wait_stored()
    assert lookup(c, "/frag/abort")["status"] == "Hit"
    # a NOTIFY aborted on its first frame gets no ACK either
    c.send_raw(sc.build_frame(sc.FRM_NOTIFY, sc.FL_ABORT | sc.FL_FIN, 90, 1, lookup_payload()))
    assert c.no_frame(0.3)
    check_served(c)
    ag.finish()


@test
def test_fragmented_notify_too_large(procs):
    ag = Agent(procs, agent_extra="max_frag_size = 4096;")
    c = ag.ready(max_frame=16380)
    body = bytes(range(256)) * 20  # 5120 bytes: above max_frag_size reassembled
    a = lookup(c, "/frag/big")
    pl = store_payload(a["ctx"], body)
    frames = sc.fragments(sc.FRM_NOTIFY, 99, 4, pl, [1500, 3000, 4500])
    assert len(frames) == 4
    c.send_raw(frames[0] + frames[1])
    assert c.no_frame(0.2)
    c.send_raw(frames[2])  # 4500 > 4096: aborted now
    f = c.recv_frame()
    assert f.type == sc.FRM_ACK and (f.sid, f.fid) == (99, 4), f
    assert f.flags & sc.FL_ABORT and f.flags & sc.FL_FIN, f
    # the last fragment is ignored: no ACK, no DISCONNECT
    c.send_raw(frames[3])
    assert c.no_frame(0.3)
    check_served(c)
    assert lookup(c, "/frag/big")["status"] == "Miss"
    # the same, with the FIN fragment itself going over the limit
    frames = sc.fragments(sc.FRM_NOTIFY, 100, 1, pl, [2000])
    c.send_raw(frames[0] + frames[1])
    f = c.recv_frame()
    assert f.type == sc.FRM_ACK and (f.sid, f.fid) == (100, 1) and f.flags & sc.FL_ABORT, f
    assert c.no_frame(0.3)
    # and with the first fragment alone over the limit, then more fragments
    big = sc.build_frame(sc.FRM_NOTIFY, 0, 101, 1, pl[:4500])
    c.send_raw(big)
    f = c.recv_frame()
    assert f.type == sc.FRM_ACK and (f.sid, f.fid) == (101, 1) and f.flags & sc.FL_ABORT, f
    c.send_raw(sc.build_frame(sc.FRM_UNSET, 0, 101, 1, pl[4500:4600]))
    c.send_raw(sc.build_frame(sc.FRM_UNSET, sc.FL_FIN, 101, 1, pl[4600:]))
    assert c.no_frame(0.3)
    check_served(c)
    # a reassembled NOTIFY just under the limit still works
    small = bytes(range(256)) * 12
    a = lookup(c, "/frag/small")
    pl = store_payload(a["ctx"], small)
    assert len(pl) < 4096
    for fr in sc.fragments(sc.FRM_NOTIFY, 102, 1, pl, [1000, 2000]):
        c.send_raw(fr)
    assert c.wait_ack(102, 1)["status"] == "Miss"
    ag.wait_stored()
    assert lookup(c, "/frag/small")["body"] == small
    ag.finish()


# ---------------------------------------------------------------- ACK size

@test
def test_ack_size_limit(procs):
    ag = Agent(procs, nshards=1)
    big = ag.ready(max_frame=65536)
    body = bytes(range(256)) * 8  # 2048 bytes: a Hit ACK cannot fit 1024
    _, s = store_entry(big, "/big", body)
    assert s["status"] == "Miss", s
    h = lookup(big, "/big")
    assert h["status"] == "Hit" and h["body"] == body, h
    assert h.size > 1024, h
    small = ag.ready(max_frame=1024)
    assert small.max_frame == 1024
    for _ in range(3):
        a = lookup(small, "/big")
        assert a["status"] != "Hit", a
        assert a.size <= 1023, a
        assert "body" not in a, a
    # a Hit that fits is still a Hit at 1024
    _, s = store_entry(big, "/small", b"tiny")
    assert s["status"] == "Miss", s
    h = lookup(small, "/small")
    assert h["status"] == "Hit" and h["body"] == b"tiny" and h.size <= 1023, h
    # a store on the small connection of something it could not replay as
    # a Hit there is refused (the NOTIFY fits, the Hit ACK would not)
    a = lookup(small, "/big2")
    b600 = b"y" * 600
    s = small.store(next_id(), 1, a["ctx"], 200, std_response_headers(b600), b600)
    assert s["status"] == "Bypass", s
    assert lookup(big, "/big2")["status"] == "Miss"
    # many vars with long names/values cannot push an ACK over the max:
    # a huge URL makes the key computation fail or a Bypass, never a big ACK
    a = lookup(small, "/" + "q" * 600)
    assert a.size <= 1023, a

    # The exact boundary, with the smallest max-frame-size (256): measured
    # on the big connection, a padding header (the ctx carries the request
    # headers) and the stream-id varint tune a Miss ACK to exactly 255 bytes
    # (allowed) or 256 (one too many: the agent must send a smaller one).
    def edge_hdrs(n):
        return [("host", HOSTHDR), ("x-pad", "p" * n)]

    # every lookup names a path of its own (same length, so the same ACK
    # size): a second Miss on one key would wait for the first one's fill
    paths = ("/edge%04d" % i for i in range(10000))
    found = {}
    for n in range(0, 200):
        for sid in (1, 300):
            a = big.lookup(sid, 1, "default", "GET", next(paths), edge_hdrs(n))
            assert a["status"] == "Miss", a
            found.setdefault(a.size, (n, sid))
        if 255 in found and 256 in found:
            break
    assert 255 in found and 256 in found, sorted(found)

    tiny = ag.ready(max_frame=256)
    assert tiny.max_frame == 256
    n, sid = found[255]
    a = tiny.lookup(sid, 1, "default", "GET", next(paths), edge_hdrs(n))
    assert a.size == 255 and a["status"] == "Miss", a
    n, sid = found[256]
    a = tiny.lookup(sid, 1, "default", "GET", next(paths), edge_hdrs(n))
    assert a.size <= 255 and a["status"] != "Miss", a
    check_served(tiny)
    ag.finish()


# ------------------------------------------------------------ backpressure

@test
def test_backpressure(procs):
    ag = Agent(procs, nshards=1, threads=1, timeout_ms=300,
               agent_extra="max_inflight = 4;", pool_extra="fail_threshold = 1000;")
    c = ag.ready()
    other = ag.ready()
    check_served(c)
    assert ag.metric("spoe_cache_inflight") == 0
    os.kill(ag.shards[0].pid, signal.SIGSTOP)
    try:
        ids = [(next_id(), 1) for _ in range(50)]
        c.send_raw(b"".join(c.lookup_frame(s, f, "default", "GET", "/bp/%d" % s, BASE_HDRS)
                            for s, f in ids))
        # while they drain, the in-flight count never exceeds max_inflight
        seen = []
        acks = []
        deadline = time.time() + 90
        served_other = False
        while len(acks) < 50 and time.time() < deadline:
            try:
                acks.append(c.recv_ack(0.05))
            except socket.timeout:
                pass
            seen.append(ag.metric("spoe_cache_inflight"))
            if not served_other and len(acks) >= 4:
                # another connection is served while this one is stalled
                a = other.lookup(next_id(), 1, "nope", "GET", "/", BASE_HDRS, timeout=10)
                assert a["status"] == "Bypass", a
                served_other = len(acks) < 50
        assert len(acks) == 50, "only %d of 50 ACKs" % len(acks)
        assert {(a.sid, a.fid) for a in acks} == set(ids)
        assert all(a["status"] == "Miss" for a in acks), [a for a in acks if a["status"] != "Miss"]
        assert served_other, "the other connection was not served while this one drained"
        assert max(seen) <= 4, "in flight %r above max_inflight 4" % max(seen)
        assert max(seen) >= 1, seen
    finally:
        os.kill(ag.shards[0].pid, signal.SIGCONT)
    assert ag.alive()
    check_served(other)
    check_served(c)
    ag.finish()


@test
def test_backpressure_peer_not_reading(procs):
    """A peer that sends and does not read: once max_output is queued the
    agent stops reading it (frames_in stops far below what was sent), keeps
    serving others, and answers everything once the peer reads again."""
    ag = Agent(procs, threads=1, agent_extra="max_output = 65536;")
    big = ag.ready(max_frame=65536)
    body = bytes(range(256)) * 10
    store_entry(big, "/out", body)
    c = ag.ready(max_frame=16380)
    frame = c.lookup_frame(1, 1, "default", "GET", "/out", BASE_HDRS)
    base = ag.metric('spoe_cache_spop_frames_total{direction="in"}')
    c.sock.setblocking(False)
    sent, blocked_since = 0, None
    deadline = time.time() + 10
    while sent < (2 << 20) and time.time() < deadline:
        try:
            sent += c.sock.send(frame * 64)
            blocked_since = None
        except BlockingIOError:
            blocked_since = blocked_since or time.time()
            if time.time() - blocked_since > 1:
                break
            time.sleep(0.02)
    c.sock.setblocking(True)
    nframes = sent // len(frame)
    time.sleep(0.5)
    got1 = ag.metric('spoe_cache_spop_frames_total{direction="in"}') - base
    time.sleep(0.5)
    got2 = ag.metric('spoe_cache_spop_frames_total{direction="in"}') - base
    assert got1 == got2, "agent still reading a peer that does not read (%d -> %d)" % (got1, got2)
    assert got2 < nframes / 2, "agent read %d of %d frames with nobody reading its ACKs" % (
        got2, nframes)
    other = ag.ready()
    check_served(other)
    check_served(big)
    # the peer reads again: every whole frame it sent gets its ACK
    if sent % len(frame):
        c.send_raw(frame[sent % len(frame):])
        nframes += 1
    acks = 0
    while acks < nframes:
        a = c.recv_ack(timeout=60)
        assert (a.sid, a.fid) == (1, 1) and a["status"] == "Hit", a
        acks += 1
    assert c.no_frame(0.2)
    assert ag.alive()
    ag.finish()


# ------------------------------------------- peers leaving, agent stopping

@test
def test_peer_gone_with_requests_in_flight(procs):
    """Requests still waiting for memcached when their connection goes away
    (EOF, HAPROXY-DISCONNECT, EOF while stalled) are detached: their
    callbacks run later against no connection, and nothing else is hurt."""
    ag = Agent(procs, nshards=1, threads=1, timeout_ms=300,
               agent_extra="max_inflight = 4;", pool_extra="fail_threshold = 1000;")
    good = ag.ready()
    check_served(good)
    os.kill(ag.shards[0].pid, signal.SIGSTOP)
    try:
        def slow(c, n, tag):
            c.send_raw(b"".join(c.lookup_frame(next_id(), 1, "default", "GET",
                                               "/gone/%s/%d" % (tag, i), BASE_HDRS)
                                for i in range(n)))
        a = ag.ready()
        slow(a, 3, "eof")
        time.sleep(0.05)
        a.close()
        b = ag.ready()
        slow(b, 3, "disc")
        b.disconnect()
        d = b.expect_disconnect()
        assert d["status-code"] == sc.ST_NORMAL, d
        c = ag.ready()
        slow(c, 20, "stalled")  # 4 in flight, 16 waiting in buffers
        time.sleep(0.05)
        c.close()
        e = ag.ready()
        frags = sc.fragments(sc.FRM_NOTIFY, 5, 5, lookup_payload("/gone/frag"), [10])
        e.send_raw(frags[0])
        time.sleep(0.05)
        e.close()
        # a Bypass on the good connection is answered at once meanwhile
        a = good.lookup(next_id(), 1, "nope", "GET", "/", BASE_HDRS, timeout=10)
        assert a["status"] == "Bypass", a
        # let every detached request time out against memcached
        wait_for(lambda: ag.metric("spoe_cache_inflight") == 0, timeout=30,
                 what="detached requests to finish")
    finally:
        os.kill(ag.shards[0].pid, signal.SIGCONT)
    assert ag.alive()
    check_served(good)
    ag.finish()


@test
def test_sigterm_disconnects_peers(procs):
    """On SIGTERM the agent says AGENT-DISCONNECT to each connected peer
    (SPOP: "DISCONNECT + close()"), with requests in flight, a fragment
    pending or nothing going on, and exits 0 (leak check included)."""
    ag = Agent(procs, nshards=1, threads=2, timeout_ms=2000, pool_extra="fail_threshold = 1000;")
    idle = [ag.ready() for _ in range(4)]
    busy = ag.ready()
    check_served(busy)
    frag = ag.ready()
    frag.send_raw(sc.fragments(sc.FRM_NOTIFY, 5, 5, lookup_payload("/term/frag"), [10])[0])
    os.kill(ag.shards[0].pid, signal.SIGSTOP)
    try:
        busy.send_raw(b"".join(busy.lookup_frame(next_id(), 1, "default", "GET", "/term/%d" % i,
                                                 BASE_HDRS) for i in range(5)))
        time.sleep(0.1)
        ag.proc.send_signal(signal.SIGTERM)
        for c in idle + [busy, frag]:
            d = c.expect_disconnect(timeout=20)
            assert d["status-code"] == sc.ST_NORMAL, d
        rc = ag.proc.wait(30)
        assert rc == 0, "agent exit status %r on SIGTERM" % rc
    finally:
        os.kill(ag.shards[0].pid, signal.SIGCONT)
    for c in ag.clients:
        c.close()


# -------------------------------------------------------------------- junk

@test
def test_mutated_frames(procs):
    """Valid lookup and store NOTIFY frames with random bytes of their
    payload changed (a fixed seed): each one gets an ACK with its own ids
    or DISCONNECT 4 and a close; never a crash, a sanitizer report, a hang
    or an ACK for ids that were not sent."""
    ag = Agent(procs, nshards=2, threads=2)
    good = ag.ready()
    a, _ = store_entry(good, "/mut", b"mutant body")
    ctx = a["ctx"]
    hdrs = BASE_HDRS + [("cache-control", "max-stale=10"), ("if-none-match", '"x"'),
                        ("accept-encoding", "gzip")]
    seeds = [
        sc.notify_payload([sc.lookup_message("default", "GET", "/mut?a=1&b=2", hdrs)]),
        sc.notify_payload([sc.lookup_message("default", "HEAD", "https://wire.example/mut", hdrs,
                                             tls=True, consumer="c1")]),
        sc.notify_payload([sc.store_message(ctx, 200, std_response_headers(b"mutant body") +
                                            [("vary", "accept-encoding"), ("etag", '"x"')],
                                            b"mutant body")]),
        sc.notify_payload([sc.lookup_message("default", "POST", "/mut", hdrs)]),
    ]
    rnd = random.Random(1234)
    c = ag.ready()
    acks = discs = 0
    for i in range(600):
        pl = bytearray(rnd.choice(seeds))
        for _ in range(rnd.choice((1, 1, 2, 3, 8))):
            k = rnd.randrange(len(pl))
            pl[k] = rnd.choice((0, 1, 0x7f, 0x80, 0xef, 0xf0, 0xff, rnd.randrange(256)))
        if rnd.random() < 0.1:
            pl = pl[:rnd.randrange(len(pl))]
        sid = 10 + i
        c.send_raw(sc.build_frame(sc.FRM_NOTIFY, sc.FL_FIN, sid, 1, bytes(pl)))
        f = c.recv_frame(timeout=15)
        if f.type == sc.FRM_ACK:
            ack = sc.Ack(f)
            assert (ack.sid, ack.fid) == (sid, 1), (i, ack)
            assert "status" in ack, (i, ack)
            acks += 1
        else:
            assert f.type == sc.FRM_AGENT_DISCONNECT, (i, f)
            d = sc.decode_disconnect(f.payload)
            assert d["status-code"] == sc.ST_INVALID, (i, d)
            c.expect_closed()
            c.close()
            discs += 1
            c = ag.ready()
        if i % 100 == 0:
            assert ag.alive(), i
            check_served(good, "mutation %d" % i)
    assert acks > 50 and discs > 50, (acks, discs)
    sys.stderr.write("mutated frames: %d ACKs, %d DISCONNECTs\n" % (acks, discs))
    check_served(good)
    ag.finish()



def _blast(sock, data):
    try:
        sock.sendall(data)
    except OSError:
        pass


@test
def test_junk(procs):
    ag = Agent(procs, threads=2)
    good = ag.ready()
    check_served(good)
    for seed, hello in ((1, False), (2, False), (3, True), (4, True)):
        rnd = random.Random(seed)
        junk = bytes(rnd.getrandbits(8) for _ in range(1 << 20))
        b = ag.client()
        if hello:
            b.hello()
        t = threading.Thread(target=_blast, args=(b.sock, junk), daemon=True)
        t.start()
        d = b.expect_disconnect(timeout=20)
        assert d["status-code"] in (sc.ST_TOO_BIG, sc.ST_INVALID), (seed, d)
        t.join(20)
        b.close()
        assert ag.alive()
        check_served(good, "junk seed %d" % seed)
    # a plausible length prefix followed by junk
    b = ag.client()
    b.hello()
    t = threading.Thread(target=_blast, args=(b.sock, (1000).to_bytes(4, "big") +
                                              bytes(random.Random(5).getrandbits(8)
                                                    for _ in range(1000))), daemon=True)
    t.start()
    d = b.expect_disconnect()
    assert d["status-code"] in (sc.ST_TOO_BIG, sc.ST_INVALID), d
    t.join(20)
    check_served(good)

    # 500 idle connections, some before HELLO, some after
    idle = []
    for i in range(500):
        s = ag.client()
        if i % 5 == 0:
            s.send_raw(sc.hello_frame())
        idle.append(s)
    for i in range(5):
        check_served(good, "with 500 idle connections (%d)" % i)
    fresh = ag.ready()
    check_served(fresh, "fresh connection among 500 idle ones")

    # half a frame, then silence
    half = ag.ready()
    full = sc.Client.lookup_frame(1, 1, "default", "GET", "/half", BASE_HDRS)
    half.send_raw(full[:len(full) // 2])
    silent = ag.client()
    silent.send_raw(sc.hello_frame()[:9])
    for i in range(3):
        check_served(good, "with a half frame pending (%d)" % i)
        check_served(fresh, "with a half frame pending (%d)" % i)
    # the half-frame connection finishes its frame later and is answered
    half.send_raw(full[len(full) // 2:])
    assert half.wait_ack(1, 1)["status"] == "Miss"
    # a peer that never finishes its HELLO is told so (status 2) within
    # about HELLO_TIMEOUT_SEC (10 s), and so is one that never sends a byte
    d = silent.expect_disconnect(timeout=30)
    assert d["status-code"] == sc.ST_TIMEOUT, d
    d = idle[1].expect_disconnect(timeout=30)
    assert d["status-code"] == sc.ST_TIMEOUT, d
    # one that did say HELLO is left alone
    f = idle[0].recv_frame(timeout=5)
    assert f.type == sc.FRM_AGENT_HELLO, f
    assert idle[0].no_frame(0.2)
    for s in idle:
        s.close()
    assert ag.alive()
    check_served(good)
    check_served(half)
    ag.finish()


if __name__ == "__main__":
    main()
