#!/usr/bin/env python3
"""Wire tests: SPOP is bounded (issue 15). What the issue reproduced: 300
connections holding partial frames added 409 MB, 100 that never read their
ACKs held 248 MB, connections never timed out after HELLO, and at the file
descriptor limit the agent spun in accept() at 100% CPU writing millions of
log lines. Here: hostile connections cost at most agent.max_buffered (the
ones holding the most are closed) while a well-behaved connection keeps
being answered; a peer that does not read gets Bypass for large ACKs once
agent.max_output is queued; a silent connection is closed after
agent.idle_timeout with DISCONNECT "timeout"; agent.max_connections
refuses the next one; under a low RLIMIT_NOFILE accepting pauses (low CPU,
one log line per interval) and resumes; the agent can listen on a unix
socket with the mode and owner configured; -t warns about SPOP on a
non-loopback address.

Memory and CPU are measured on the release build (tests/lib/wireagent.py
says why); the rest on the sanitizer build.
"""
import os
import signal
import socket
import stat
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import AGENT_ASAN, HOST, main, test, wait_for  # noqa: E402
from wireagent import (BASE_HDRS, Agent, check_config, check_served, line_of, next_id,  # noqa: E402
                       settle, store)
import spopclient as sc  # noqa: E402

MB = 1 << 20
MAX_FRAME = 262140          # the agent's default max_frame_size


def raw_hello(port, rcvbuf=None):
    """A socket that has said HELLO (max-frame MAX_FRAME) and read the answer."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(30)
    s.connect((HOST, port))
    s.sendall(sc.hello_frame(max_frame_size=MAX_FRAME))
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
        d = s.recv(65536)
        assert d, "closed during HELLO"
        buf += d
    f = sc.parse_frame(buf[4:4 + struct.unpack(">I", buf[:4])[0]])
    assert f.type == sc.FRM_AGENT_HELLO, f
    return s


def send_quietly(s, data):
    """sendall, False once the agent has closed the connection."""
    try:
        s.sendall(data)
        return True
    except OSError:
        return False


def grew_mb(ag, base_kb):
    return (ag.peak_kb() - base_kb) / 1024.0


# ------------------------------------------------------- buffered bytes

@test
def test_hostile_partial_frames_cost_bounded_memory(procs):
    """300 connections: half hold a partial frame of nearly max_frame_size,
    half a fragmented NOTIFY of nearly max_frag_size (1 MiB) then a partial
    frame: about 1.3 MB each, 390 MB in all, where agent.max_buffered is
    32 MiB. The connections holding the most are closed; a connection that
    was there before keeps getting answers; peak RSS stays within twice the
    budget (buffers are allocated in powers of two) plus a working set."""
    budget = 32 * MB
    ag = Agent(procs, release=True, agent_extra="max_buffered = %d;" % budget)
    good = ag.ready()
    check_served(good)
    for _ in range(3):
        ag.metrics()
    base = ag.rss_kb()
    partial = sc.build_frame(sc.FRM_NOTIFY, sc.FL_FIN, 1, 1, b"p" * (MAX_FRAME - 16))[:-1000]
    first = sc.build_frame(sc.FRM_NOTIFY, 0, 3, 1, b"f" * (MAX_FRAME - 16))
    more = sc.build_frame(sc.FRM_UNSET, 0, 3, 1, b"g" * (MAX_FRAME - 16))
    held = []
    for i in range(300):
        s = raw_hello(ag.port)
        send_quietly(s, partial if i % 2 == 0 else first + more + more + more[:-1000])
        held.append(s)
        if i % 50 == 49:
            check_served(good, "after %d hostile connections" % (i + 1))
    settle(0.5)
    check_served(good, "after the flood")
    m = ag.metrics()
    g = grew_mb(ag, base)
    sys.stderr.write("300 hostile: peak RSS +%.1f MB (from %d kB), %d evictions, %.1f MB "
                     "buffered now\n" % (g, base, m["spoe_cache_spop_evictions_total"],
                                         m["spoe_cache_spop_buffered_bytes"] / MB))
    assert m["spoe_cache_spop_evictions_total"] >= 100, m
    assert m["spoe_cache_spop_buffered_bytes"] <= budget, m
    # what is held takes up to twice its size (libevent sizes buffers in
    # powers of two), plus the working set of the traffic around it
    assert g < 2 * 32 + 24, "peak RSS grew by %.1f MB with max_buffered 32 MiB" % g
    assert ag.log().count("more than agent.max_buffered") <= 4, "eviction logged per event"
    for s in held:
        s.close()
    wait_for(lambda: ag.metric("spoe_cache_spop_buffered_bytes") < 1 * MB, timeout=30,
             what="the hostile connections' bytes released")
    check_served(good)
    ag.finish()


@test
def test_unread_acks_cost_bounded_memory(procs):
    """100 connections that send 40 lookups each of a 32 KiB entry and never
    read: their large ACKs turn into Bypass once max_output (256 KiB here) is
    queued, the connections holding the most are closed above max_buffered,
    peak RSS stays bounded, and a reading connection keeps its Hits."""
    budget = 32 * MB
    ag = Agent(procs, release=True,
               agent_extra="max_buffered = %d; max_output = 262144;" % budget, timeout_ms=5000)
    good = ag.ready(max_frame=MAX_FRAME)
    body = bytes(range(256)) * 128
    store(good, "/big", body)
    a = good.lookup(next_id(), 1, "default", "GET", "/big", BASE_HDRS, timeout=30)
    assert a["status"] == "Hit" and a["body"] == body, a
    base = ag.rss_kb()
    frames = b"".join(sc.Client.lookup_frame(next_id(), 1, "default", "GET", "/big", BASE_HDRS)
                      for _ in range(40))
    held = []
    for i in range(100):
        s = raw_hello(ag.port, rcvbuf=4096)
        send_quietly(s, frames)
        held.append(s)
        if i % 25 == 24:
            a = good.lookup(next_id(), 1, "default", "GET", "/big", BASE_HDRS, timeout=30)
            assert a["status"] == "Hit" and a["body"] == body, (i, a)
    settle(1)
    a = good.lookup(next_id(), 1, "default", "GET", "/big", BASE_HDRS, timeout=30)
    assert a["status"] == "Hit" and a["body"] == body, a
    m = ag.metrics()
    g = grew_mb(ag, base)
    sys.stderr.write("100 not reading: peak RSS +%.1f MB, %d ACKs shed, %d evictions, %.1f MB "
                     "buffered\n" % (g, m["spoe_cache_spop_acks_shed_total"],
                                     m["spoe_cache_spop_evictions_total"],
                                     m["spoe_cache_spop_buffered_bytes"] / MB))
    assert m["spoe_cache_spop_acks_shed_total"] > 0, m
    assert m["spoe_cache_spop_buffered_bytes"] <= budget, m
    # what is held takes up to twice its size (libevent sizes buffers in
    # powers of two), plus the working set of the traffic around it
    assert g < 2 * 32 + 24, "peak RSS grew by %.1f MB with max_buffered 32 MiB" % g
    for s in held:
        s.close()
    ag.finish()


@test
def test_peer_not_reading_gets_bypass_past_max_output(procs):
    """One connection, no budget pressure: once max_output is queued its
    in-flight Hits are answered Bypass (a large ACK would grow the queue by
    up to max_inflight x max_frame_size), small ACKs stay whole, and it gets
    every ACK once it reads."""
    ag = Agent(procs, threads=1, agent_extra="max_output = 65536;")
    good = ag.ready(max_frame=MAX_FRAME)
    body = b"b" * 30000
    store(good, "/shed", body)
    c = sc.Client(ag.port, connect=False, timeout=30)
    c.sock = socket.socket()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.sock.settimeout(30)
    c.sock.connect((HOST, ag.port))
    ag.clients.append(c)
    c.hello(max_frame_size=MAX_FRAME)
    ids = [(next_id(), 1) for _ in range(200)]
    c.send_raw(b"".join(c.lookup_frame(s, f, "default", "GET", "/shed", BASE_HDRS)
                        for s, f in ids))
    wait_for(lambda: ag.metric("spoe_cache_spop_acks_shed_total") > 0, timeout=30,
             what="large ACKs shed")
    acks = c.recv_acks(200, timeout=60)
    assert {(a.sid, a.fid) for a in acks} == set(ids)
    st = [a["status"] for a in acks]
    assert st.count("Hit") >= 2 and st.count("Bypass") >= 1, st
    assert all(s in ("Hit", "Bypass") for s in st), st
    assert all(a["body"] == body for a in acks if a["status"] == "Hit")
    check_served(c)
    check_served(good)
    ag.finish()


# ------------------------------------------------------------- idle timeout

@test
def test_idle_connection_is_closed(procs):
    """agent.idle_timeout = 1: a silent connection after HELLO gets
    DISCONNECT status 2 (timeout) and is closed; one whose request waits on
    a stopped memcached is not idle and gets its answer first; a connection
    that keeps talking stays."""
    ag = Agent(procs, threads=1, agent_extra="idle_timeout = 1;",
               pool_extra="fail_threshold = 1000;", timeout_ms=3000)
    talker = ag.ready()
    silent = ag.ready()
    waiting = ag.ready()

    def ping():
        a = talker.lookup(next_id(), 1, "nope", "GET", "/", BASE_HDRS, timeout=30)
        assert a["status"] == "Bypass", a

    def next_frame(c, wait=0.3):
        """The next frame c receives while the talker keeps talking."""
        deadline = time.time() + 60
        while time.time() < deadline:
            ping()
            try:
                return c.recv_frame(timeout=wait)
            except socket.timeout:
                pass
        raise AssertionError("nothing came")
    os.kill(ag.shards[0].pid, signal.SIGSTOP)
    try:
        sid = next_id()
        waiting.send_raw(waiting.lookup_frame(sid, 1, "default", "GET", "/idle/wait", BASE_HDRS))
        f = next_frame(silent)
        assert f.type == sc.FRM_AGENT_DISCONNECT, f
        assert sc.decode_disconnect(f.payload)["status-code"] == sc.ST_TIMEOUT, f
        silent.expect_closed(timeout=30)
        # memcached times out (3 s, past two idle timeouts) while the
        # request waits: not idle, it gets its Miss first
        f = next_frame(waiting)
        assert f.type == sc.FRM_ACK and (f.sid, f.fid) == (sid, 1), f
        assert sc.Ack(f)["status"] == "Miss", f
    finally:
        os.kill(ag.shards[0].pid, signal.SIGCONT)
    f = next_frame(waiting)
    assert f.type == sc.FRM_AGENT_DISCONNECT, f
    assert sc.decode_disconnect(f.payload)["status-code"] == sc.ST_TIMEOUT, f
    assert ag.metric("spoe_cache_spop_idle_closes_total") >= 2
    check_served(talker)
    ag.finish()


# ------------------------------------------------------ connection limits

@test
def test_max_connections(procs):
    """agent.max_connections = 5: the sixth gets DISCONNECT "too many
    connections" (status 13) and is closed, counted, logged once per
    interval; the five keep working; once two close, new ones are taken."""
    ag = Agent(procs, agent_extra="max_connections = 5;")
    five = [ag.ready() for _ in range(5)]
    for _ in range(30):
        c = sc.Client(ag.port)
        try:
            f = c.recv_frame(timeout=30)
            assert f.type == sc.FRM_AGENT_DISCONNECT, f
            d = sc.decode_disconnect(f.payload)
            assert d["status-code"] == sc.ST_RES and "max_connections" in d["message"], d
        except (sc.Closed, ConnectionResetError):
            pass    # the close can overtake the frame (a reset)
        c.close()
    m = ag.metrics()
    assert m["spoe_cache_spop_refused_connections_total"] == 30, m
    assert m["spoe_cache_spop_connections"] == 5, m
    assert ag.log().count("refusing new ones") <= 2, "refusals logged per connection"
    for c in five:
        check_served(c)
    five[0].close()
    five[1].close()
    wait_for(lambda: ag.metric("spoe_cache_spop_connections") == 3, timeout=30,
             what="two connections closed")
    more = [ag.ready(), ag.ready()]
    for c in more + five[2:]:
        check_served(c)
    ag.finish()


@test
def test_fd_limit_pauses_accepting_without_spinning(procs):
    """Under RLIMIT_NOFILE 64 (agent.max_connections left at 1024, which
    start-up warns about), 150 connections: accept() fails with EMFILE, the
    listener pauses with a backoff: the agent's CPU time stays low, the
    condition is logged once per interval, the connections it has keep
    working, and once connections close it accepts and serves again."""
    ag = Agent(procs, release=True, nofile=64)
    assert "file descriptor limit 64" in ag.log(), ag.log()
    good = ag.ready()
    check_served(good)
    socks = []
    for _ in range(150):
        s = socket.create_connection((HOST, ag.port), timeout=30)
        s.sendall(sc.hello_frame(max_frame_size=16380))
        socks.append(s)
    wait_for(lambda: "new SPOP connections paused" in ag.log(), timeout=30,
             what="the accept pause logged")
    # the admin endpoint is out of descriptors too: its listener must not
    # spin either, and it answers once some are free
    admin = {}

    def ask():
        admin["m"] = ag.metrics()
    t = threading.Thread(target=ask, daemon=True)
    t.start()
    cpu0, t0 = ag.cpu_seconds(), time.time()
    settle(3)
    cpu, wall = ag.cpu_seconds() - cpu0, time.time() - t0
    sys.stderr.write("at the fd limit: %.2f s CPU in %.1f s\n" % (cpu, wall))
    assert cpu < 0.3 * wall, "agent spent %.2f s CPU in %.1f s at the fd limit" % (cpu, wall)
    assert ag.log().count("new SPOP connections paused") <= 2, "accept errors logged per try"
    assert 1 <= ag.log().count("admin: accept:") <= 2, "admin accept errors: %d lines" % \
        ag.log().count("admin: accept:")
    a = good.lookup(next_id(), 1, "nope", "GET", "/", BASE_HDRS, timeout=30)
    assert a["status"] == "Bypass", a
    for s in socks:
        s.close()
    t.join(60)
    assert "m" in admin, "the admin endpoint never answered"
    wait_for(lambda: ag.metric("spoe_cache_spop_connections") <= 1, timeout=60,
             what="the connections closed")
    c = ag.ready()
    check_served(c)
    check_served(good)
    assert ag.metric("spoe_cache_spop_accept_pauses_total") >= 1
    ag.finish()


# -------------------------------------------------------------- unix socket

@test
def test_unix_socket(procs):
    """agent.listen = "unix:PATH": the socket has socket_mode and
    socket_owner/socket_group, a stale socket file is replaced, SPOP works
    over it, and the file is removed at exit. A path taken by something
    else is refused."""
    path = procs.path("spop.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()       # a socket file nobody accepts on
    own = 'socket_owner = "nobody"; socket_group = "nogroup";' if os.geteuid() == 0 else \
        'socket_owner = "%d"; socket_group = "%d";' % (os.geteuid(), os.getegid())
    ag = Agent(procs, unix=path, agent_extra='socket_mode = "0640"; %s' % own)
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (65534, 65534), (st.st_uid, st.st_gid)
    c = ag.ready()
    check_served(c, "over the unix socket")
    store(c, "/unix", b"over unix")
    assert c.lookup(next_id(), 1, "default", "GET", "/unix", BASE_HDRS)["status"] == "Hit"
    # a second agent on the same path refuses to start: someone accepts there
    second = procs.spawn([AGENT_ASAN, "-c", ag.conf], name="second")
    assert second.wait(60) == 1
    assert "another process accepts on %s" % path in procs.log_text(second)
    check_served(c, "after the second agent gave up")
    ag.finish()
    assert not os.path.exists(path), "socket file left behind"
    # a regular file at the path is not replaced
    with open(path, "w") as f:
        f.write("not a socket\n")
    third = procs.spawn([AGENT_ASAN, "-c", ag.conf], name="third")
    assert third.wait(60) == 1
    assert "exists and is not a socket" in procs.log_text(third)
    assert open(path).read() == "not a socket\n"


@test
def test_check_listen_settings(procs):
    """-t: SPOP on a non-loopback address is a warning (SPOP has no
    authentication: file, line, setting, exit 0); the unix socket settings
    are checked (mode, owner, group, path length, only with unix:)."""
    hosts = 'memcached: { hosts = ( { host = "127.0.0.1"; } ); };\n'

    def conf(agent):
        return "agent: {\n  %s\n};\n%s" % (agent, hosts)
    for addr in ("0.0.0.0", "10.0.0.1", "::"):
        text = conf('listen = "%s";' % addr)
        p = procs.write("open.conf", text)
        rc, out, err = check_config(p)
        assert rc == 0 and "configuration OK" in out, (addr, rc, out, err)
        assert err.startswith("spoe-cache-agent: warning: %s:%d: agent.listen: " % (p, 2)), err
        assert "no authentication" in err, err
    for text in (conf('listen = "127.0.0.1";'), conf('listen = "unix:/run/x.sock";'),
                 conf('listen = "unix@/run/x.sock"; socket_mode = "0600";'), hosts):
        p = procs.write("closed.conf", text)
        rc, out, err = check_config(p)
        assert rc == 0 and err == "", (text, rc, err)
    bad = [
        ('listen = "127.0.0.1";\n  socket_mode = "0600";', "socket_mode", "only for a unix socket"),
        ('listen = "unix:/x";\n  socket_mode = "0999";', "socket_mode", "not an octal mode"),
        ('listen = "unix:/x";\n  socket_mode = 660;', "socket_mode", "expected an octal mode"),
        ('listen = "unix:/x";\n  socket_owner = "no-such-user-x";', "socket_owner", "no such user"),
        ('listen = "unix:/x";\n  socket_group = "no-such-group-x";', "socket_group", "no such group"),
        ('listen = "unix:/%s";' % ("d" * 120), "listen", "at most 107"),
        ('listen = "unix:";', "listen", "needs a path"),
        ('listen = "";', "listen", "empty"),
        ('max_connections = 0;', "max_connections", "out of range"),
        ('idle_timeout = 0;', "idle_timeout", "out of range"),
    ]
    for agent, setting, msg in bad:
        text = conf(agent)
        p = procs.write("bad.conf", text)
        rc, out, err = check_config(p)
        line = line_of(text, setting + " =") if setting != "listen" else line_of(text, "listen =")
        assert rc == 1 and out == "", (agent, rc, out, err)
        assert err.startswith("spoe-cache-agent: %s:%d: agent.%s: " % (p, line, setting)), \
            (agent, err)
        assert msg in err, (agent, err)


if __name__ == "__main__":
    main()
