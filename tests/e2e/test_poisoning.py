#!/usr/bin/env python3
"""End to end: cache poisoning through real HAProxy, the shipped template
and the demo origin's /reflect endpoint, which builds its page from what a
request carries the way reflecting origins do (X-Forwarded-Host over Host,
the request target, the first of a repeated parameter, the last field line
of a header, the body). One request carrying a routing header, a body, an
absolute-form target, a reordered query, split field lines or a nested JSON
value must never put its page in front of a plain request; and a private or
no-store response is never served from the cache with cache_control off
(issue 15). Each case shows the attack response first, so a test fails if
the origin stops reflecting instead of passing by accident."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import HOST, main, test  # noqa: E402
from stack import Stack, talk  # noqa: E402

ROUTING = ["X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Scheme", "X-Original-URL",
           "X-Rewrite-URL", "X-HTTP-Method-Override", "Forwarded"]


def raw(s, head, body=b""):
    """One request as bytes on a fresh connection (Connection: close is
    added): (status, headers dict lowercased, body)."""
    out = talk((HOST, s.http_port),
               head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1) + body)
    top, _, rest = out.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        body, rest = b"", rest
        while True:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size.split(b";")[0], 16)
            if n == 0:
                break
            body, rest = body + rest[:n], rest[n + 2:]
        rest = body
    return status, hdrs, rest


def authority(s):
    return "%s:%d" % (HOST, s.http_port)


def status(r):
    return r[1].get("x-cache-status")


def plain_is_clean(s, path, evil=b"evil"):
    """A plain request for path, twice: never the attacker's page, and the
    second one is a Hit (so the first one's page was stored, under its own
    key, and the check is not passing only because nothing is cached)."""
    a = s.get(path)
    assert a[0] == 200 and evil not in a[2].lower(), (path, a)
    b = s.get(path)
    assert status(b) == "Hit" and b[2] == a[2], (path, a, b)
    return a


@test
def test_routing_headers_are_keyed(procs):
    """Each routing header, keyed by default: the poisoned page only reaches
    requests that send the same value."""
    s = Stack(procs)
    for i, name in enumerate(ROUTING):
        path = "/reflect?r=%d" % i
        value = "host=evil" if name == "Forwarded" else "evil"
        atk = s.get(path, {name: value})
        assert atk[0] == 200 and b"evil" in atk[2] and status(atk) == "Miss", (name, atk)
        a = plain_is_clean(s, path)
        assert a[1]["x-cache-key"] != atk[1]["x-cache-key"], name
        # the same routing value gets the page made for it (keyed, not bypassed)
        again = s.get(path, {name.lower(): value})
        assert status(again) == "Hit" and again[2] == atk[2], (name, again)
    # a header that is not a routing header does not split the key
    k = s.get("/reflect?r=plain")[1]["x-cache-key"]
    assert s.get("/reflect?r=plain", {"X-Forwarded-For": "10.1.2.3"})[1]["x-cache-key"] == k


@test
def test_routing_headers_bypass_and_trusted_balancer(procs):
    pols = """
  default: { routing_headers = "bypass"; };
  trusted: {
    key_routing_headers = ["X-Forwarded-Host", "X-Forwarded-Scheme", "X-Original-URL",
                           "X-Rewrite-URL", "X-HTTP-Method-Override", "Forwarded"];
  };
"""
    s = Stack(procs, policies=pols)
    path = "/reflect?r=bypass"
    for _ in range(2):
        atk = s.get(path, {"X-Forwarded-Host": "evil"})
        assert b"host=evil" in atk[2] and status(atk) == "Bypass", atk
    assert s.origin_count(path) == 2
    plain_is_clean(s, path)
    # A load balancer in front sets X-Forwarded-Proto on every request:
    # dropped from the list, it no longer splits the key; the others still do.
    t = Stack(procs, policies=pols, policy="trusted", shards=s.shards)
    a = t.get("/reflect?r=lb", {"X-Forwarded-Proto": "https"})
    b = t.get("/reflect?r=lb")
    assert status(a) == "Miss" and status(b) == "Hit", (a[1], b[1])
    assert a[1]["x-cache-key"] == b[1]["x-cache-key"]
    atk = t.get("/reflect?r=lb2", {"X-Forwarded-Host": "evil"})
    assert b"host=evil" in atk[2] and status(atk) == "Miss"
    plain_is_clean(t, "/reflect?r=lb2")


@test
def test_request_body_is_a_bypass(procs):
    s = Stack(procs)
    # GET with a Content-Length body
    atk = s.request("GET", "/reflect?r=body", body=b"EVIL")
    assert b"body=EVIL" in atk[2] and status(atk) == "Bypass", atk
    plain_is_clean(s, "/reflect?r=body", b"evil")
    # GET with a chunked body
    head = ("GET /reflect?r=chunked HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
            % authority(s)).encode()
    atk = raw(s, head, b"4\r\nEVIL\r\n0\r\n\r\n")
    assert atk[0] == 200 and b"body=EVIL" in atk[2] and status(atk) == "Bypass", atk
    plain_is_clean(s, "/reflect?r=chunked", b"evil")
    # an empty body is no body: cached as usual
    a = s.request("GET", "/reflect?r=empty", {"Content-Length": "0"}, b"")
    assert status(a) == "Miss" and status(s.get("/reflect?r=empty")) == "Hit"


@test
def test_absolute_form_target(procs):
    s = Stack(procs)
    host = authority(s)
    # An authority other than Host: HAProxy refuses it or the agent bypasses.
    r = raw(s, ("GET http://evil.example/reflect?r=abs HTTP/1.1\r\nHost: %s\r\n\r\n"
                % host).encode())
    assert r[0] == 400 or status(r) == "Bypass", r
    plain_is_clean(s, "/reflect?r=abs", b"evil.example")
    # https:// over plain HTTP: not the connection's scheme, a Bypass.
    r = raw(s, ("GET https://%s/reflect?r=tls HTTP/1.1\r\nHost: %s\r\n\r\n"
                % (host, host)).encode())
    assert r[0] == 200 and status(r) == "Bypass" and b"target=https://" in r[2], r
    a = plain_is_clean(s, "/reflect?r=tls", b"https://")
    assert b"target=/reflect?r=tls" in a[2], a
    # Its own scheme and authority, the connection's and Host's: the same
    # resource as the origin-form request, one key.
    r = raw(s, ("GET http://%s/reflect?r=same HTTP/1.1\r\nHost: %s\r\n\r\n"
                % (host, host)).encode())
    assert r[0] == 200 and status(r) == "Miss", r
    b = s.get("/reflect?r=same")
    assert status(b) == "Hit" and b[1]["x-cache-key"] == r[1]["x-cache-key"], b


@test
def test_private_and_no_store_never_served(procs):
    s = Stack(procs)  # cache_control = false, the default
    for i, cc in enumerate(["private", "no-store", "private, max-age=60", "max-age=60, no-store",
                            'private="Set-Cookie"', "public, max-age=60, no-store"]):
        path = "/gen?serial=1&n=%d&h=Cache-Control:%s" % (i, cc.replace(" ", "%20"))
        a, b = s.get(path), s.get(path)
        assert status(a) == status(b) == "Bypass", (cc, a[1], b[1])
        assert a[2] != b[2], cc
        assert s.origin_count(path) == 2, cc
    # no-cache is still Kong's: stored when cache_control is off
    a, b = s.get("/gen?serial=1&h=Cache-Control:no-cache"), s.get("/gen?serial=1&h=Cache-Control:no-cache")
    assert (status(a), status(b)) == ("Miss", "Hit") and a[2] == b[2]


@test
def test_repeated_params_keep_their_order(procs):
    s = Stack(procs)
    atk = s.get("/reflect?a=EVIL&a=1")
    assert b"\na=EVIL\n" in atk[2] and status(atk) == "Miss", atk
    a = s.get("/reflect?a=1&a=EVIL")
    assert b"\na=1\n" in a[2] and status(a) == "Miss", a
    assert status(s.get("/reflect?a=1&a=EVIL")) == "Hit"
    # different names still sort: one key
    assert s.get("/reflect?b=2&c=3")[1]["x-cache-key"] == s.get("/reflect?c=3&b=2")[1]["x-cache-key"]


@test
def test_vary_header_field_lines(procs):
    s = Stack(procs, policies='  default: { vary_headers = ["X-Tenant"]; };')
    host = authority(s)
    atk = raw(s, ("GET /reflect?r=lines HTTP/1.1\r\nHost: %s\r\nX-Tenant: a\r\nX-Tenant: EVIL\r\n\r\n"
                  % host).encode())
    assert atk[0] == 200 and b"tenant=EVIL" in atk[2] and status(atk) == "Miss", atk
    one = raw(s, ("GET /reflect?r=lines HTTP/1.1\r\nHost: %s\r\nX-Tenant: a, EVIL\r\n\r\n"
                  % host).encode())
    assert b"tenant=a, EVIL" in one[2] and status(one) == "Miss", one
    again = raw(s, ("GET /reflect?r=lines HTTP/1.1\r\nHost: %s\r\nX-Tenant: a, EVIL\r\n\r\n"
                    % host).encode())
    assert status(again) == "Hit" and again[2] == one[2], again


@test
def test_json_objects_and_arrays_are_keyed(procs):
    s = Stack(procs, policies='  default: { request_method = ["POST"]; content_type = ["*"]; '
              'vary_body_json_fields = ["q"]; };', haproxy_extra_env={"SPOE_CACHE_LOOKUP_BODY": "1"})
    ct = {"Content-Type": "application/json"}
    path = "/gen?echo=1&ct=application/json"
    atk = s.request("POST", path, ct, b'{"q": {"id": "EVIL"}}')
    assert b"EVIL" in atk[2] and status(atk) == "Miss", atk
    a = s.request("POST", path, ct, b'{"q": {"id": 1}}')
    assert b"EVIL" not in a[2] and status(a) == "Miss", a
    b = s.request("POST", path, ct, b'{"q":[1]}')
    c = s.request("POST", path, ct, b'{"q":[2]}')
    assert status(b) == status(c) == "Miss", (b[1], c[1])
    # what any JSON parser reads alike shares the entry
    d = s.request("POST", path, ct, b'{ "q" : { "id" : "\\u0045VIL" } }')
    assert status(d) == "Hit" and d[2] == atk[2], d


if __name__ == "__main__":
    main()
