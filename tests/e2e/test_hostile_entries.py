#!/usr/bin/env python3
"""End to end: a stored entry is as untrusted as the network (MISSION 5,
issue 15). Entries are overwritten in a real memcached with hostile ones
(interim and out-of-range statuses, CR, LF and NUL in names and values,
Transfer-Encoding beside Content-Length, hop-by-hop headers, an entry for
another key, crafted times), a rogue memcached answers every get with an
entry of its choosing, and with an entry secret configured forgeries and
copies are refused. Through HAProxy running the shipped template: HAProxy
stays up, every request is answered by the origin (a Miss), nothing of the
hostile entry reaches the client, the next request is a Hit of what the
origin said, and each refusal is counted by reason. The Lua service refuses
a status outside 200-599 whatever hands it one.

Fault injection: `test_hostile_entries.py --rogue PORT MODE` is the rogue
memcached (the one allowed fake).
"""
import hashlib
import hmac
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import entryfmt  # noqa: E402
from harness import HAPROXY, HOST, ROOT, free_port, main, test, wait_port  # noqa: E402
from stack import Stack, talk  # noqa: E402

SECRET = "an entry secret of the pool, 40 bytes!!!"
EVIL = (b"EVIL", b"evil", b"X-Ev", b"stolen", b"ROGUE", b"X-Rogue")
CT = "Content-Type: text/plain\r\n"


def raw_set(port, key, value):
    c = socket.create_connection((HOST, port))
    c.sendall(b"set %s 0 60 %d\r\n%s\r\n" % (key.encode(), len(value), value))
    assert c.recv(100).startswith(b"STORED")
    c.close()


def raw_get(port, key):
    """The value memcached holds under key, or None."""
    c = socket.create_connection((HOST, port))
    c.sendall(b"get %s\r\n" % key.encode())
    buf = b""
    while not (buf.endswith(b"END\r\n")):
        d = c.recv(65536)
        if not d:
            break
        buf += d
    c.close()
    if not buf.startswith(b"VALUE "):
        return None
    head, rest = buf.split(b"\r\n", 1)
    return rest[:int(head.split()[3])]


def plant(s, key, value):
    """value under key on every shard (whichever one owns key)."""
    for m in s.shards:
        raw_set(m.port, key, value)


def stored(s, key):
    for m in s.shards:
        v = raw_get(m.port, key)
        if v is not None:
            return v
    return None


def http_raw(port, path):
    """GET path on a fresh connection: the whole response as bytes, split
    into (status line, header lines, body)."""
    # the Host http.client sends, so that this is the key s.get() saw
    buf = talk((HOST, port), b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
               % (path.encode(), HOST.encode(), port))
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    return buf, lines[0], lines[1:], body


def header(lines, name):
    """Every value of header name in the response's header lines."""
    return [l.split(b":", 1)[1].strip() for l in lines
            if l.split(b":", 1)[0].strip().lower() == name.encode().lower()]


def rejected(s, reason):
    return s.metrics().get('spoe_cache_entries_rejected_total{reason="%s"}' % reason, 0)


def alive(s):
    assert s.haproxy.poll() is None, "HAProxy died:\n" + s.procs.log_text(s.haproxy)[-3000:]
    assert s.agent.poll() is None, "the agent died:\n" + s.procs.log_text(s.agent)[-3000:]


def served_by_origin(s, path, key, want_body, label="Miss"):
    """path (whose key is key) through HAProxy: answered by the origin with
    want_body, labelled, with nothing hostile in the bytes the client gets."""
    before = s.origin_count(path)
    raw, status, lines, body = http_raw(s.http_port, path)
    assert status.startswith(b"HTTP/1.1 200 "), (path, raw[:300])
    assert body == want_body, (path, raw[:300])
    assert header(lines, "x-cache-status") == [label.encode()], (path, raw[:300])
    assert raw.count(b"HTTP/1.") == 1, (path, raw[:300])
    for word in EVIL:
        assert word not in raw, (path, word, raw[:300])
    for l in lines:
        assert b":" in l and b"\0" not in l, (path, raw[:300])
    assert header(lines, "content-length") == [str(len(want_body)).encode()], raw[:300]
    assert not header(lines, "transfer-encoding"), raw[:300]
    assert all(not a.startswith(b"-") for a in header(lines, "age")), raw[:300]
    assert s.origin_count(path) == before + 1, path
    assert header(lines, "x-cache-key") == [key.encode()], (path, raw[:300])
    alive(s)


# (name, entry fields, the reason it is refused)
HOSTILE = [
    ("status_100", dict(status=100), "status"),
    ("status_101", dict(status=101, headers="Upgrade: h2c\r\nConnection: Upgrade\r\n"), "status"),
    ("status_150", dict(status=150), "status"),
    ("status_199", dict(status=199), "status"),
    ("status_600", dict(status=600), "status"),
    ("cr_in_name", dict(headers=CT + "X-Ev\ril: 1\r\n"), "header_name"),
    ("lf_in_name", dict(headers=CT + "X-Ev\nil: 1\r\n"), "header_name"),
    ("nul_in_name", dict(headers=CT + "X-Ev\0il: 1\r\n"), "header_name"),
    ("split_response", dict(headers=CT + "X-A: 1\r\n\r\nHTTP/1.1 200 OK\r\nX-Evil: 1\r\n"),
     "header_name"),
    ("cr_in_value", dict(headers=CT + "X-A: 1\rSet-Cookie: evil=1\r\n"), "header_value"),
    ("lf_in_value", dict(headers=CT + "X-A: 1\nSet-Cookie: evil=1\r\n"), "header_value"),
    ("nul_in_value", dict(headers=CT + "X-A: ev\0il\r\n"), "header_value"),
    ("te_chunked_and_cl", dict(headers=CT + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                               body=b"4\r\nEVIL\r\n0\r\n\r\n"), "framing"),
    ("content_length_lie", dict(headers=CT + "Content-Length: 400\r\n"), "framing"),
    ("connection", dict(headers=CT + "Connection: close, X-Evil\r\nX-Evil: 1\r\n"), "hop_by_hop"),
    ("keep_alive", dict(headers=CT + "Keep-Alive: timeout=1\r\n"), "hop_by_hop"),
    ("set_cookie", dict(headers=CT + "Set-Cookie: session=stolen\r\n"), "forbidden"),
    ("forged_tier", dict(headers=CT + "X-Cache-Tier: L1\r\n"), "forbidden"),
    ("no_space", dict(headers=CT + "X-Evil:1\r\n"), "header_line"),
    ("other_version", dict(version=1), "version"),
]


@test
def test_hostile_entries_are_misses(procs):
    s = Stack(procs)
    for name, fields, reason in HOSTILE:
        path = "/gen?body=origin-%s" % name
        want = ("origin-%s" % name).encode()
        st, h, b = s.get(path)
        assert h.get("x-cache-status") == "Miss" and b == want, (name, h)
        key = h["x-cache-key"]
        f = dict(dict(status=200, headers=CT, body=b"EVIL"), **fields)
        plant(s, key, entryfmt.encode(key, **f))
        n = rejected(s, reason)
        served_by_origin(s, path, key, want)
        assert rejected(s, reason) == n + 1, (name, reason, s.metrics())
        # the response to the miss overwrote it
        st, h, b = s.get(path)
        assert st == 200 and h.get("x-cache-status") == "Hit" and b == want, (name, h, b)
        # spoe-cache-ctl get refuses what a lookup refuses, and says why
        plant(s, key, entryfmt.encode(key, **f))
        rc, out, err = s.ctl("get", key, "--body", procs.path("body-" + name))
        assert rc == 1 and "entry refused (%s)" % reason in out, (name, rc, out, err)
        assert not os.path.exists(procs.path("body-" + name)), name
        st, _, body = s.request("GET", "/cache/" + key, port=s.admin_port)
        assert st == 422 and reason.encode() in body, (name, st, body)


@test
def test_entry_of_another_key_or_corrupt_is_a_miss(procs):
    s = Stack(procs)
    st, h, _ = s.get("/gen?body=other")
    other = h["x-cache-key"]
    st, h, b = s.get("/gen?body=mine")
    key = h["x-cache-key"]
    # a valid entry, checksum and all, made for another key: copied under
    # this one by whoever can write to the shard
    plant(s, key, stored(s, other))
    n = rejected(s, "key")
    served_by_origin(s, "/gen?body=mine", key, b"mine")
    assert rejected(s, "key") == n + 1
    plant(s, key, entryfmt.encode(other, 200, CT, b"EVIL"))
    served_by_origin(s, "/gen?body=mine", key, b"mine")
    assert rejected(s, "key") == n + 2
    # one flipped byte
    v = bytearray(entryfmt.encode(key, 200, CT, b"EVIL"))
    v[-6] ^= 1
    n = rejected(s, "corrupt")
    plant(s, key, bytes(v))
    served_by_origin(s, "/gen?body=mine", key, b"mine")
    assert rejected(s, "corrupt") == n + 1
    assert s.get("/gen?body=mine")[1].get("x-cache-status") == "Hit"


@test
def test_crafted_times_never_overflow(procs):
    """The issue's stored_at: the release build replayed a negative Age and
    took the entry as fresh forever. Now the age saturates: stale, a Refresh
    from the origin, and no negative Age."""
    s = Stack(procs)
    big = 2 ** 63 - 1
    for i, (stored_at, lifetime, age0) in enumerate([(-2 ** 63, big, 0), (-2 ** 63, big, big),
                                                     (-2 ** 63 + 1, big, big - 1), (0, big, big)]):
        path = "/gen?body=times%d" % i
        st, h, b = s.get(path)
        plant(s, h["x-cache-key"], entryfmt.encode(h["x-cache-key"], 200, CT, b"EVIL",
                                                   stored_at=stored_at, lifetime=lifetime,
                                                   age0=age0))
        served_by_origin(s, path, h["x-cache-key"], b"times%d" % i, label="Refresh")
        assert s.get(path)[1].get("x-cache-status") == "Hit"
    log = procs.log_text(s.agent)
    assert "runtime error" not in log, log[-2000:]


# ---- a rogue memcached ----------------------------------------------------------

def rogue(procs, mode):
    port = free_port()
    p = procs.spawn([sys.executable, os.path.abspath(__file__), "--rogue", str(port), mode],
                    name="rogue-%s" % mode)
    wait_port(port, proc=p)
    p.port = port
    return p


def rogue_main(port, mode):
    """Answers every mg with an entry of its own, bound to the very key it
    was asked for (a rogue shard knows the key): status 100, or a valid
    200 it would like served. Takes every store and delete."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((HOST, port))
    srv.listen(64)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=rogue_serve, args=(c, mode), daemon=True).start()


def rogue_entry(mode, key):
    if mode == "status100":
        return entryfmt.encode(key, 100, "X-Rogue: 1\r\n", b"ROGUE")
    if mode == "status103":
        return entryfmt.encode(key, 103, "Link: </evil>; rel=preload\r\n", b"")
    if mode == "valid":
        return entryfmt.encode(key, 200, CT + "X-Rogue: 1\r\n", b"ROGUE")
    if mode == "signed-badly":
        return entryfmt.encode(key, 200, CT + "X-Rogue: 1\r\n", b"ROGUE", secret=SECRET[::-1])
    raise ValueError(mode)


def rogue_serve(c, mode):
    buf = b""
    try:
        while True:
            d = c.recv(65536)
            if not d:
                return
            buf += d
            while b"\r\n" in buf:
                line, rest = buf.split(b"\r\n", 1)
                parts = line.split() or [b""]
                if parts[0] == b"ms":
                    size = int(parts[2])
                    if len(rest) < size + 2:
                        break
                    rest = rest[size + 2:]
                buf = rest
                op = next((p[1:] for p in parts[1:] if p.startswith(b"O")), b"")
                if parts[0] == b"mg":
                    v = rogue_entry(mode, parts[1].decode())
                    c.sendall(b"VA %d f0 t60 O%s\r\n%s\r\n" % (len(v), op, v))
                elif parts[0] in (b"ms", b"md"):
                    c.sendall(b"HD O%s\r\n" % op)
                elif parts[0] == b"mn":
                    c.sendall(b"MN\r\n")
                else:
                    c.sendall(b"ERROR\r\n")
    except OSError:
        pass
    finally:
        c.close()


class Load:
    """n requests over paths from 4 threads; every answer checked."""

    def __init__(self, s, paths, n, label="Miss"):
        self.s, self.paths, self.label = s, paths, label
        self.errors, self.done = [], 0
        self.lock = threading.Lock()
        self.left = n
        ts = [threading.Thread(target=self.run) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert self.done == n and not self.errors, (self.done, self.errors[:5])

    def run(self):
        while True:
            with self.lock:
                if self.left == 0:
                    return
                self.left -= 1
                i = self.left
            path = self.paths[i % len(self.paths)]
            try:
                raw, status, lines, body = http_raw(self.s.http_port, path)
                want = path.split("=", 1)[1].encode()
                bad = (not status.startswith(b"HTTP/1.1 200 ") or body != want or
                       header(lines, "x-cache-status") != [self.label.encode()] or
                       any(w in raw for w in EVIL))
                if bad:
                    self.errors.append((path, raw[:200]))
            except OSError as e:
                self.errors.append((path, repr(e)))
            with self.lock:
                self.done += 1


@test
def test_rogue_memcached_answering_status_100(procs):
    """The issue's crash: HAProxy 2.6 died on a 1xx replayed by the hit
    service. Every lookup now finds a status-100 entry, and every request
    is served by the origin."""
    for mode in ("status100", "status103"):
        r = rogue(procs, mode)
        s = Stack(procs, shards=[r], weights=(100,))
        paths = ["/gen?body=rogue%d" % i for i in range(20)]
        Load(s, paths, 200)
        alive(s)
        assert rejected(s, "status") >= 200, s.metrics()
        for p in paths:
            assert s.origin_count(p) == 10, p
        procs.stop(s.haproxy)
        procs.stop(s.agent)
        procs.stop(r)


@test
def test_entry_secret_refuses_what_a_rogue_shard_writes(procs):
    """A rogue shard that writes valid entries for the keys it is asked for
    is served without a secret (why one is needed) and refused with one."""
    r = rogue(procs, "valid")
    s = Stack(procs, shards=[r], weights=(100,))
    st, h, b = s.get("/gen?body=plain")
    assert h.get("x-cache-status") == "Hit" and b == b"ROGUE", (h, b)
    procs.stop(s.haproxy)
    procs.stop(s.agent)
    for mode, reason in (("valid", "unsigned"), ("signed-badly", "signature")):
        r2 = rogue(procs, mode)
        s = Stack(procs, shards=[r2], weights=(100,),
                  pool_extra='entry_secret = "%s";' % SECRET)
        paths = ["/gen?body=%s%d" % (reason, i) for i in range(10)]
        Load(s, paths, 50)
        alive(s)
        assert rejected(s, reason) >= 50, (reason, s.metrics())
        procs.stop(s.haproxy)
        procs.stop(s.agent)
        procs.stop(r2)


# ---- signed entries in a real pool ------------------------------------------------

@test
def test_signed_entries(procs):
    sec = procs.write("entry.secret", SECRET + "\n", mode=0o600)
    s = Stack(procs, pool_extra='entry_secret_file = "%s";' % sec)
    st, h, b = s.get("/gen?body=signed")
    key = h["x-cache-key"]
    assert h.get("x-cache-status") == "Miss"
    assert s.get("/gen?body=signed")[1].get("x-cache-status") == "Hit"
    # what the agent stored: bound to the key, signed with HMAC-SHA-256 as
    # any implementation computes it (the file's line end is not the secret)
    v = stored(s, key)
    assert v[:5] == b"SCE\x03\x01" and v[43] == 64 and v[44:108] == key.encode(), v[:108]
    assert hmac.compare_digest(hmac.new(SECRET.encode(), v[:-32], hashlib.sha256).digest(),
                               v[-32:])
    rc, out, err = s.ctl("get", key)
    assert rc == 0 and "status: 200" in out, (rc, out, err)
    # a writer without the secret: unsigned, or signed with a guess
    for forged, reason in ((entryfmt.encode(key, 200, CT, b"EVIL"), "unsigned"),
                           (entryfmt.encode(key, 200, CT, b"EVIL", secret=SECRET + "?"),
                            "signature"),
                           (entryfmt.encode(key, 200, CT, b"EVIL", secret=SECRET,
                                            tag_kind=entryfmt.TAG_CRC32C), "unsigned")):
        plant(s, key, forged)
        n = rejected(s, reason)
        served_by_origin(s, "/gen?body=signed", key, b"signed")
        assert rejected(s, reason) == n + 1, reason
        plant(s, key, forged)
        rc, out, err = s.ctl("get", key)
        assert rc == 1 and "entry refused (%s)" % reason in out, (reason, rc, out, err)
    # a signed entry copied under another key
    st, h, b = s.get("/gen?body=elsewhere")
    plant(s, key, stored(s, h["x-cache-key"]))
    n = rejected(s, "key")
    served_by_origin(s, "/gen?body=signed", key, b"signed")
    assert rejected(s, "key") == n + 1
    # and one made with the secret, by another implementation, is served
    plant(s, key, entryfmt.encode(key, 200, CT + "X-Made: elsewhere\r\n", b"made elsewhere",
                                  secret=SECRET))
    st, h, b = s.get("/gen?body=signed")
    assert h.get("x-cache-status") == "Hit" and b == b"made elsewhere" and \
        h.get("x-made") == "elsewhere", (h, b)
    alive(s)


# ---- the Lua service on its own --------------------------------------------------

LUA_CFG = """global
.if version_atleast(3.2)
    tune.lua.bool-sample-conversion normal
.endif
    lua-load-per-thread "%s/lua-glue/spoe-cache.lua"

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend replay
    bind 127.0.0.1:%d
    http-request set-var(txn.cache.code) url_param(code)
    http-request set-var(txn.cache.headers) str("x-replayed: yes\\r\\ncontent-length: 8\\r\\n")
    http-request set-var(txn.cache.body) str("replayed")
    http-request use-service lua.spoe_cache_hit
"""


@test
def test_lua_refuses_status_outside_200_599(procs):
    """Whatever sets txn.cache.code, the hit service answers 502 to a code
    HAProxy cannot replay (an interim 1xx killed HAProxy 2.6) and stays up."""
    port = free_port()
    cfg = procs.write("replay.cfg", LUA_CFG % (ROOT, port))
    hp = procs.spawn([HAPROXY, "-db", "-f", cfg], name="haproxy-replay")
    wait_port(port, proc=hp)
    for code in ("100", "101", "103", "150", "199", "600", "999", "0", "-200", "200.5",
                 "abc", "", None):
        path = "/" if code is None else "/?code=" + code
        raw, status, lines, body = http_raw(port, path)
        assert status.startswith(b"HTTP/1.1 502 "), (code, raw[:200])
        assert not header(lines, "x-replayed") and body == b"", (code, raw[:200])
        assert hp.poll() is None, (code, procs.log_text(hp)[-2000:])
    for code in ("200", "404", "599"):
        raw, status, lines, body = http_raw(port, "/?code=" + code)
        assert status.startswith(b"HTTP/1.1 %s " % code.encode()), (code, raw[:200])
        assert header(lines, "x-replayed") == [b"yes"] and body == b"replayed", (code, raw[:200])
    assert hp.poll() is None


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--rogue":
        rogue_main(int(sys.argv[2]), sys.argv[3])
    else:
        main()
