#!/usr/bin/env python3
"""End to end: every policy setting (Kong's vocabulary), the key, the entry
format, and sharing across proxies. Each test fails if its setting is
ignored: it checks the behaviour with and without it."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import HOST, main, test, wait_for  # noqa: E402
from stack import Stack  # noqa: E402


def policy(name="default", **kw):
    lines = []
    for k, v in kw.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (list, tuple)):
            v = "[" + ", ".join('"%s"' % x if isinstance(x, str) else str(x) for x in v) + "]"
        lines.append("    %s = %s;" % (k, v))
    return "  %s: {\n%s\n  };\n" % (name, "\n".join(lines))


def status(resp):
    return resp[1].get("x-cache-status")


def twice(s, path, headers=None, method="GET", body=None):
    a = s.request(method, path, headers, body)
    b = s.request(method, path, headers, body)
    return status(a), status(b)


@test
def test_response_code(procs):
    s = Stack(procs, policies=policy(response_code=[200]))
    assert twice(s, "/gen?status=404&body=nf") == ("Bypass", "Bypass")
    assert twice(s, "/gen?status=200&body=ok") == ("Miss", "Hit")
    s2 = Stack(procs, policies=policy())  # default [200, 301, 404]
    assert twice(s2, "/gen?status=404&body=nf2") == ("Miss", "Hit")


@test
def test_request_method(procs):
    s = Stack(procs, policies=policy(request_method=["GET", "POST"]))
    assert twice(s, "/gen?body=p", method="POST", body=b"") == ("Miss", "Hit")
    assert s.origin_count("/gen?body=p", "POST") == 1
    # a body the key does not hold is a Bypass (issue 15)
    assert twice(s, "/gen?body=pb", method="POST", body=b"x") == ("Bypass", "Bypass")
    s2 = Stack(procs, policies=policy(request_method=["GET"]))
    assert twice(s2, "/gen?body=h", method="HEAD") == ("Bypass", "Bypass")
    assert twice(s2, "/gen?body=p2", method="POST", body=b"x") == ("Bypass", "Bypass")


@test
def test_content_type(procs):
    s = Stack(procs, policies=policy())  # text/plain, application/json
    assert twice(s, "/gen?ct=text/html&body=a") == ("Bypass", "Bypass")
    assert twice(s, "/gen?ct=application/json;%20charset=utf-8&body=%7B%7D") == ("Miss", "Hit")
    s2 = Stack(procs, policies=policy(content_type=["text/html"]))
    assert twice(s2, "/gen?ct=text/html&body=b") == ("Miss", "Hit")
    assert twice(s2, "/gen?ct=text/plain&body=b") == ("Bypass", "Bypass")
    s3 = Stack(procs, policies=policy(content_type=["*"]))
    assert twice(s3, "/gen?ct=image/png&body=c") == ("Miss", "Hit")


@test
def test_cache_ttl_and_storage_ttl(procs):
    s = Stack(procs, policies=policy(cache_ttl=1) + policy("kept", cache_ttl=1, storage_ttl=60))
    assert twice(s, "/gen?body=t1") == ("Miss", "Hit")
    time.sleep(2.2)
    # memcached dropped it with the lifetime: a plain Miss.
    assert status(s.get("/gen?body=t1")) == "Miss"
    # Age counts whole seconds, so a 1 s freshness could end between the
    # Refresh and the Hit after it: 2 s leaves a whole second for that.
    s2 = Stack(procs, policies=policy(cache_ttl=1) + policy("kept", cache_ttl=2, storage_ttl=60),
               policy="kept", shards=s.shards)
    assert twice(s2, "/gen?body=t2") == ("Miss", "Hit")
    time.sleep(3.2)
    # Still stored, no longer fresh: Refresh, and the origin is asked.
    assert status(s2.get("/gen?body=t2")) == "Refresh"
    assert s2.origin_count("/gen?body=t2") == 2
    assert status(s2.get("/gen?body=t2")) == "Hit"


@test
def test_storage_ttl_serves_max_stale(procs):
    pol = policy(cache_ttl=1, storage_ttl=60, cache_control=True)
    s = Stack(procs, policies=pol)
    # With cache_control, cache_ttl caps the heuristic freshness of a
    # response with Last-Modified (RFC 9111 4.2.2): 1 s here.
    p = "/gen?body=stale&h=Last-Modified:Sun,%2006%20Nov%201994%2008:49:37%20GMT"
    assert twice(s, p) == ("Miss", "Hit")
    time.sleep(2.2)
    st, h, b = s.get(p, {"Cache-Control": "max-stale=30"})
    assert h["x-cache-status"] == "Hit", h
    assert int(h["age"]) >= 2
    st, h, b = s.get(p, {"Cache-Control": "max-stale"})
    assert h["x-cache-status"] == "Hit", h
    st, h, b = s.get(p, {"Cache-Control": "max-stale=0"})
    assert h["x-cache-status"] == "Refresh", h


@test
def test_cache_control_setting(procs):
    path = "/gen?body=cc&h=Cache-Control:no-store"
    s = Stack(procs, policies=policy(cache_control=True))
    assert twice(s, path) == ("Bypass", "Bypass")
    assert twice(s, "/gen?body=r", {"Cache-Control": "no-cache"}) == ("Bypass", "Bypass")
    s2 = Stack(procs, policies=policy(cache_control=False))
    # no-store and private are never stored, whatever cache_control says...
    assert twice(s2, path) == ("Bypass", "Bypass")
    # ...but the rest of Cache-Control is ignored without it
    assert twice(s2, "/gen?body=cc2&h=Cache-Control:no-cache") == ("Miss", "Hit")
    assert twice(s2, "/gen?body=r2", {"Cache-Control": "no-cache"}) == ("Miss", "Hit")


@test
def test_allow_force_cache_header(procs):
    force = {"X-Proxy-Cache-Memcached-Force": "true"}
    s = Stack(procs, policies=policy(request_method=["GET"], allow_force_cache_header=True,
                                     cache_control=True))
    fresh = "&h=Cache-Control:max-age=60"   # cache_control: the response says how long
    assert twice(s, "/gen?body=f" + fresh, force, "POST", b"") == ("Miss", "Hit")
    # The force header also skips request no-cache...
    h = dict(force, **{"Cache-Control": "no-cache"})
    assert status(s.get("/gen?body=f2" + fresh, h)) == "Miss"
    # ...but not the response checks.
    assert twice(s, "/gen?ct=text/html&body=f3", force) == ("Bypass", "Bypass")
    s2 = Stack(procs, policies=policy(request_method=["GET"], allow_force_cache_header=False))
    assert twice(s2, "/gen?body=f", force, "POST", b"") == ("Bypass", "Bypass")


@test
def test_vary_headers(procs):
    s = Stack(procs, policies=policy(vary_headers=["Accept-Language"]))
    a = s.get("/gen?serial=1", {"Accept-Language": "fr"})
    b = s.get("/gen?serial=1", {"Accept-Language": "de"})
    assert status(a) == status(b) == "Miss"
    assert a[1]["x-cache-key"] != b[1]["x-cache-key"]
    c = s.get("/gen?serial=1", {"Accept-Language": "fr"})
    assert status(c) == "Hit" and c[2] == a[2]
    s2 = Stack(procs, policies=policy())
    a = s2.get("/gen?serial=2", {"Accept-Language": "fr"})
    b = s2.get("/gen?serial=2", {"Accept-Language": "de"})
    assert status(b) == "Hit" and b[2] == a[2]


@test
def test_vary_query_params(procs):
    s = Stack(procs, policies=policy(vary_query_params=["a"]))
    assert status(s.get("/gen?a=1&b=2&body=q")) == "Miss"
    assert status(s.get("/gen?a=1&b=3&body=q")) == "Hit"
    s2 = Stack(procs, policies=policy())
    assert status(s2.get("/gen?a=1&b=2&body=q")) == "Miss"
    assert status(s2.get("/gen?a=1&b=3&body=q")) == "Miss"
    # Order does not matter...
    assert status(s2.get("/gen?b=2&a=1&body=q")) == "Hit"


@test
def test_vary_body_json_fields(procs):
    s = Stack(procs, policies=policy(request_method=["POST"], vary_body_json_fields=["q"]),
              haproxy_extra_env={"SPOE_CACHE_LOOKUP_BODY": "1"})
    ct = {"Content-Type": "application/json"}
    a = s.request("POST", "/gen?echo=1&ct=application/json", ct, b'{"q": "a", "x": 1}')
    assert status(a) == "Miss", a[1]
    b = s.request("POST", "/gen?echo=1&ct=application/json", ct, b'{"x": 2, "q": "a"}')
    assert status(b) == "Hit" and b[2] == a[2]
    c = s.request("POST", "/gen?echo=1&ct=application/json", ct, b'{"q": "b"}')
    assert status(c) == "Miss"
    d = s.request("POST", "/gen?echo=1&ct=application/json", ct, b'not json')
    assert status(d) == "Bypass"
    # Arrays and objects are keyed too, canonically encoded (issue 15).
    e = s.request("POST", "/gen?echo=1&ct=application/json", ct, b'{"q": [1]}')
    f = s.request("POST", "/gen?echo=1&ct=application/json", ct, b'{"q": [2]}')
    g = s.request("POST", "/gen?echo=1&ct=application/json", ct, b'{"q":[ 1 ]}')
    assert status(e) == "Miss" and status(f) == "Miss" and status(g) == "Hit", (e, f, g)


@test
def test_unknown_policy_is_bypass_and_logged(procs):
    s = Stack(procs, policy="nope")
    assert twice(s, "/json") == ("Bypass", "Bypass")
    wait_for(lambda: 'unknown policy "nope"' in procs.log_text(s.agent), timeout=5,
             what="a log line")


@test
def test_key_is_unambiguous(procs):
    s = Stack(procs, policies=policy(request_method=["GET", "POST"]))

    def key(path, method="GET", headers=None):
        st, h, b = s.request(method, path, headers, b"" if method == "POST" else None)
        assert "x-cache-key" in h, (path, h)
        return h["x-cache-key"]
    assert key("/gen?a=1%3Ab%3D2") != key("/gen?a=1&b=2")
    assert key("/gen?a=1%2C2") != key("/gen?a=1&a=2")
    assert key("/gen?a=1&b=2") == key("/gen?b=2&a=1")
    assert key("/gen?x=1", headers={"Host": "one.example"}) != \
        key("/gen?x=1", headers={"Host": "two.example"})
    assert key("/gen?x=2") != key("/gen?x=2", "POST")
    # The CLI computes the same key offline.
    rc, out, err = s.ctl("key", "GET", "/gen?b=2&a=1", "-H", "Host: %s:%d" % (HOST, s.http_port))
    assert rc == 0, err
    assert out.strip() == key("/gen?a=1&b=2")


@test
def test_too_many_params_or_bad_input_bypass(procs):
    s = Stack(procs)
    q = "&".join("p%d=1" % i for i in range(101))
    assert twice(s, "/gen?" + q) == ("Bypass", "Bypass")
    q = "&".join("p%d=1" % i for i in range(100))
    assert twice(s, "/gen?" + q) == ("Miss", "Hit")
    assert twice(s, "/gen?a=%zz") == ("Bypass", "Bypass")


@test
def test_bodies_round_trip(procs):
    s = Stack(procs)
    for path in ("/gen?body=", "/gen?size=100000", "/gen?size=200000", "/binary"):
        st, h, b = s.get(path)
        assert status((st, h, b)) == "Miss", (path, h)
        st, h2, b2 = s.get(path)
        assert status((st, h2, b2)) == "Hit", (path, h2)
        assert b2 == b and int(h2["content-length"]) == len(b)


@test
def test_too_large_body_is_never_stored(procs):
    s = Stack(procs)
    st, h, b = s.get("/gen?size=400000")
    assert len(b) == 400000
    assert status((st, h, b)) == "Bypass", h
    st, h, b = s.get("/gen?size=400000")
    assert status((st, h, b)) == "Bypass" and len(b) == 400000
    assert s.origin_count("/gen?size=400000") == 2
    # A chunked response has no proven length: not stored either.
    assert twice(s, "/gen?te=chunked&body=abc") == ("Bypass", "Bypass")


def raw_set(port, key, value):
    c = socket.create_connection((HOST, port))
    c.sendall(b"set %s 0 60 %d\r\n%s\r\n" % (key.encode(), len(value), value))
    assert c.recv(100).startswith(b"STORED")
    c.close()


@test
def test_corrupt_or_foreign_entry_is_a_miss_and_overwritten(procs):
    s = Stack(procs)
    st, h, b = s.get("/text")
    key = h["x-cache-key"]
    for junk in (b"garbage", b"SCE\x09" + b"\0" * 60):
        for m in s.shards:  # whichever shard owns it
            raw_set(m.port, key, junk)
        assert status(s.get("/text")) == "Miss"
        assert status(s.get("/text")) == "Hit"


@test
def test_age_counts_upstream_age(procs):
    s = Stack(procs)
    st, h, b = s.get("/gen?body=aged&h=Age:100")
    assert status((st, h, b)) == "Miss"
    st, h, b = s.get("/gen?body=aged&h=Age:100")
    assert status((st, h, b)) == "Hit" and int(h["age"]) >= 100


@test
def test_shared_across_proxies(procs):
    a = Stack(procs)
    b = Stack(procs, shards=a.shards)
    host = {"Host": "shared.example"}  # the two proxies listen on different ports
    st, h, body = a.get("/json", host)
    assert status((st, h, body)) == "Miss"
    st, h2, body2 = b.get("/json", host)
    assert status((st, h2, body2)) == "Hit" and body2 == body
    rc, out, err = a.ctl("purge", h["x-cache-key"])
    assert rc == 0, (out, err)
    assert status(b.get("/json", host)) == "Miss"
    assert status(a.get("/json", host)) == "Hit"


if __name__ == "__main__":
    main()
