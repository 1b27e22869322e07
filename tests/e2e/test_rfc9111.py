#!/usr/bin/env python3
"""End to end: RFC 9111 semantics with cache_control on, and the
cache-poisoning cases a shared cache must refuse. Each test fails if the
behaviour is removed."""
import email.utils
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import HOST, main, test  # noqa: E402
from stack import Stack  # noqa: E402

CC_POLICY = """
  default: {
    content_type = ["*"];
    cache_ttl = 300;
    storage_ttl = 3600;
    cache_control = true;
    request_method = ["GET", "HEAD"];
  };
"""


def cc_stack(procs, **kw):
    return Stack(procs, policies=CC_POLICY, **kw)


def st(resp):
    return resp[1].get("x-cache-status")


def q(s):
    from urllib.parse import quote
    return quote(s, safe="")


def gen(body, *headers):
    return "/gen?body=%s" % body + "".join("&h=" + q(h) for h in headers)


# With cache_control, a response that states no freshness and has no
# Last-Modified is never fresh (RFC 9111 4.2.2; tests/e2e/test_http_semantics.py):
# the tests here that need a Hit have the origin say how long it may be kept.
FRESH = "&h=" + q("Cache-Control: max-age=300")


@test
def test_request_no_store_and_no_cache_bypass(procs):
    s = cc_stack(procs)
    p = "/gen?body=a" + FRESH
    assert st(s.get(p)) == "Miss"
    assert st(s.get(p)) == "Hit"
    assert st(s.get(p, {"Cache-Control": "no-store"})) == "Bypass"
    assert st(s.get(p, {"Cache-Control": "no-cache"})) == "Bypass"
    assert st(s.get(p, {"Pragma": "no-cache"})) == "Bypass"
    # Pragma is ignored when Cache-Control is there (RFC 9111 5.4).
    assert st(s.get(p, {"Pragma": "no-cache", "Cache-Control": "max-age=60"})) == "Hit"


@test
def test_request_max_age_and_min_fresh(procs):
    s = cc_stack(procs)
    p = gen("m", "Cache-Control: max-age=10")
    assert st(s.get(p)) == "Miss"
    time.sleep(1.1)
    assert st(s.get(p, {"Cache-Control": "max-age=0"})) == "Refresh"
    assert st(s.get(p)) == "Hit"   # the Refresh stored a new copy
    assert st(s.get(p, {"Cache-Control": "min-fresh=5"})) == "Hit"
    assert st(s.get(p, {"Cache-Control": "min-fresh=60"})) == "Refresh"


@test
def test_only_if_cached(procs):
    s = cc_stack(procs)
    p = "/gen?body=oic" + FRESH
    r = s.get(p, {"Cache-Control": "only-if-cached"})
    assert r[0] == 504, r
    assert s.origin_count(p) == 0
    s.get(p)
    r = s.get(p, {"Cache-Control": "only-if-cached"})
    assert r[0] == 200 and r[2] == b"oic" and st(r) == "Hit"


@test
def test_response_no_store_no_cache_private(procs):
    s = cc_stack(procs)
    for h in ("Cache-Control: no-store", "Cache-Control: no-cache",
              "Cache-Control: private", "Cache-Control: private=\"x\"", "Pragma: no-cache"):
        p = gen("r", h)
        assert st(s.get(p)) == "Bypass", h
        assert st(s.get(p)) == "Bypass", h


@test
def test_lifetime_precedence(procs):
    s = cc_stack(procs)
    now = time.time()
    date = email.utils.formatdate(now, usegmt=True)
    # s-maxage beats max-age beats Expires.
    p = gen("l1", "Cache-Control: max-age=1, s-maxage=100")
    s.get(p)
    time.sleep(1.5)
    assert st(s.get(p)) == "Hit"
    p = gen("l2", "Cache-Control: max-age=1", "Expires: " + email.utils.formatdate(now + 100, usegmt=True))
    s.get(p)
    time.sleep(1.5)
    assert st(s.get(p)) == "Refresh"
    # Expires minus Date.
    p = gen("l3", "Date: " + date, "Expires: " + email.utils.formatdate(now + 100, usegmt=True))
    s.get(p)
    assert st(s.get(p)) == "Hit"
    p = gen("l4", "Date: " + date, "Expires: " + email.utils.formatdate(now + 1, usegmt=True))
    s.get(p)
    time.sleep(1.5)
    assert st(s.get(p)) == "Refresh"
    # An invalid Expires means already expired.
    p = gen("l5", "Expires: 0")
    s.get(p)
    assert st(s.get(p)) == "Refresh"


@test
def test_stale_entry_is_never_a_hit(procs):
    s = cc_stack(procs)
    # max-age=2, not 1: the origin's Date is in whole seconds, so an entry
    # may be a second old as it is stored (and the next request, a moment
    # later, sees age 1).
    p = gen("s", "Cache-Control: max-age=2")
    s.get(p)
    assert st(s.get(p)) == "Hit"
    time.sleep(3.1)
    assert st(s.get(p)) == "Refresh"
    s.get(p)
    time.sleep(3.1)
    assert st(s.get(p, {"Cache-Control": "max-stale=60"})) == "Hit"
    # must-revalidate forbids serving it stale.
    p = gen("s2", "Cache-Control: max-age=1, must-revalidate")
    s.get(p)
    time.sleep(2.1)
    assert st(s.get(p, {"Cache-Control": "max-stale=60"})) == "Refresh"


@test
def test_age_adds_time_since_storing(procs):
    s = cc_stack(procs)
    p = gen("age", "Age: 30", "Cache-Control: max-age=100")
    s.get(p)
    time.sleep(1.1)
    r = s.get(p)
    assert st(r) == "Hit" and int(r[1]["age"]) >= 31, r[1]
    # The upstream Age counts against freshness too.
    p = gen("age2", "Age: 100", "Cache-Control: max-age=50")
    s.get(p)
    assert st(s.get(p)) == "Refresh"


@test
def test_authorization(procs):
    s = cc_stack(procs)
    auth = {"Authorization": "Bearer a"}
    p = gen("auth", "Cache-Control: max-age=300")
    assert st(s.get(p, auth)) == "Bypass"   # response does not allow it: not stored
    assert st(s.get(p, auth)) == "Bypass"
    assert st(s.get(p)) == "Miss"           # stored for anonymous clients...
    assert st(s.get(p)) == "Hit"
    assert st(s.get(p, auth)) == "Bypass"   # ...and not served to Authorization
    for h in ("Cache-Control: public, max-age=60", "Cache-Control: s-maxage=60",
              "Cache-Control: must-revalidate, max-age=60"):
        p = gen("auth2", h)
        assert st(s.get(p, auth)) == "Miss", h
        r = s.get(p, {"Authorization": "Bearer b"})
        assert st(r) == "Hit", (h, r[1])


@test
def test_set_cookie_never_stored_or_replayed(procs):
    s = cc_stack(procs)
    p = gen("c", "Set-Cookie: id=1", "Cache-Control: public, max-age=60")
    assert st(s.get(p)) == "Bypass"
    r = s.get(p)
    assert st(r) == "Bypass" and "set-cookie" in r[1]
    assert s.origin_count(p) == 2


@test
def test_hop_by_hop_and_connection_headers_stripped(procs):
    s = cc_stack(procs)
    p = gen("hop", "Keep-Alive: timeout=5", "X-Secret: s", "Connection: X-Secret",
            "Trailer: X-T", "Upgrade: h2c", "X-Kept: yes", "Cache-Control: max-age=300")
    s.get(p)
    r = s.get(p)
    assert st(r) == "Hit"
    for h in ("keep-alive", "x-secret", "trailer", "upgrade"):
        assert h not in r[1], (h, r[1])
    assert r[1]["x-kept"] == "yes"


@test
def test_unsafe_request_invalidates(procs):
    s = cc_stack(procs)
    p = "/gen?body=inv&mstatus=DELETE:500" + FRESH     # the same URL, a DELETE fails
    s.get(p)
    assert st(s.get(p)) == "Hit"
    r = s.request("POST", p, body=b"x")
    assert r[0] == 200
    assert st(s.get(p)) == "Miss"
    assert st(s.get(p)) == "Hit"
    # A failed unsafe request does not.
    assert s.request("DELETE", p)[0] == 500
    assert st(s.get(p)) == "Hit"
    s.request("PUT", p, body=b"y")
    assert st(s.get(p)) == "Miss"


@test
def test_response_vary(procs):
    s = cc_stack(procs)
    p = "/gen?serial=1&h=Vary:Accept-Language&h=Cache-Control:max-age=60"
    fr = {"Accept-Language": "fr"}
    de = {"Accept-Language": "de"}
    a = s.get(p, fr)
    assert st(a) == "Miss"
    b = s.get(p, fr)
    assert st(b) == "Hit" and b[2] == a[2]
    c = s.get(p, de)
    assert st(c) == "Miss" and c[2] != a[2]     # another variant: never the fr one
    d = s.get(p, de)
    assert st(d) == "Hit" and d[2] == c[2]
    assert st(s.get(p)) == "Miss"               # absent header is a different request
    p = "/gen?body=star&h=Vary:*&h=Cache-Control:max-age=60"
    assert st(s.get(p)) == "Bypass"
    assert st(s.get(p)) == "Bypass"


@test
def test_conditional_requests(procs):
    s = cc_stack(procs)
    lm = email.utils.formatdate(time.time() - 3600, usegmt=True)
    p = gen("cond", 'ETag: W/"v1"', "Last-Modified: " + lm)
    s.get(p)
    r = s.get(p, {"If-None-Match": '"v1"'})
    assert r[0] == 304 and r[2] == b"" and st(r) == "Hit", r
    r = s.get(p, {"If-None-Match": '"x", W/"v1"'})
    assert r[0] == 304
    r = s.get(p, {"If-None-Match": '"v2"'})
    assert r[0] == 200 and r[2] == b"cond"
    r = s.get(p, {"If-Modified-Since": email.utils.formatdate(time.time(), usegmt=True)})
    assert r[0] == 304
    r = s.get(p, {"If-Modified-Since": email.utils.formatdate(time.time() - 7200, usegmt=True)})
    assert r[0] == 200
    assert s.origin_count(p) == 1


def raw(s, data):
    c = socket.create_connection((HOST, s.http_port))
    c.sendall(data)
    c.settimeout(10)
    out = b""
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            out += d
    except socket.timeout:
        pass
    c.close()
    return out


@test
def test_poisoning_cases_refused(procs):
    s = cc_stack(procs)
    # Ambiguous encodings never share a key.
    k1 = s.get("/gen?a=1%3Ab%3D2")[1]["x-cache-key"]
    k2 = s.get("/gen?a=1&b=2")[1]["x-cache-key"]
    assert k1 != k2
    # 10,000 parameters: Bypass, not a truncated key.
    big = "/gen?" + "&".join("p=%d" % (i % 10) for i in range(10000))
    r = s.get(big)
    assert r[0] == 200 and st(r) == "Bypass", r[1]
    # A 64 KB header (the demo origin's own line limit is 64 KiB) is served
    # normally and cannot widen a key.
    r = s.get("/gen?body=big" + FRESH, {"X-Big": "a" * 65000})
    assert r[0] == 200 and st(r) == "Miss", r[1]
    r = s.get("/gen?body=big" + FRESH, {"X-Big": "b" * 65000})
    assert r[0] == 200 and st(r) == "Hit" and r[2] == b"big"
    # Host differing from the absolute URI: HAProxy or the agent refuses to cache it.
    out = raw(s, b"GET http://a.example/gen?body=abs HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n")
    assert b"X-Cache-Status: Hit" not in out and b"x-cache-status: hit" not in out.lower()
    assert b"x-cache-status: miss" not in out.lower(), out[:400]
    # Raw control characters and spaces never make a key (HAProxy answers
    # 400 or the agent bypasses); encoded ones stay distinct from the rest.
    for path in (b"/gen?body=x\x01y", b"/gen?body=a\x7fb", b"/gen?a=%zz", b"/gen?body=a\tb"):
        out = raw(s, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        low = out.lower()
        assert b"x-cache-status: miss" not in low and b"x-cache-status: hit" not in low, (path, out[:300])
    assert s.get("/gen?body=x%00y")[1]["x-cache-key"] != s.get("/gen?body=xy")[1]["x-cache-key"]
    out = raw(s, b"GET /gen?body=ok HTTP/1.1\r\nHost: a\x01b\r\nConnection: close\r\n\r\n")
    assert b"x-cache-status: hit" not in out.lower()


if __name__ == "__main__":
    main()
