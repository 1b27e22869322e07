#!/usr/bin/env python3
"""End to end: HTTP caching to the letter (issue 16). Each test names the
section it holds the cache to, through real HAProxy, the agent, memcached
and the origin, with cache_control = true and the status codes RFC 9110
calls heuristically cacheable: heuristic freshness (RFC 9111 4.2.2),
partial content (RFC 9110 14, RFC 9111 3.3), far-future expiry, targeted
fields (RFC 9213), invalidation (RFC 9111 4.4), Age (5.1), a 204 without
Content-Length, must-understand (5.2.2.3), If-Modified-Since against Date
(4.3.2), HTTP-dates in any letter case (4.2), Set-Cookie (7.3) and
Cache-Status (RFC 9211). Each fails if its rule is taken out."""
import email.utils
import http.client
import os
import subprocess
import sys
import time
from urllib.parse import quote

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import AGENT, HOST, main, test, wait_for  # noqa: E402
from stack import Stack, agent_config  # noqa: E402

CODES = "[200, 203, 204, 206, 300, 301, 302, 308, 404, 405, 410, 414, 501, 299]"


def policy(name="default", **kw):
    s = dict(response_code=CODES, content_type='["*"]', cache_ttl="300", cache_control="true",
             request_method='["GET", "HEAD"]')
    s.update(kw)
    return "  %s: { %s };\n" % (name, " ".join("%s = %s;" % kv for kv in s.items()))


def st(resp):
    return resp[1].get("x-cache-status")


def gen(body, *headers, **params):
    """A /gen URL: body, response header lines, other /gen parameters."""
    return ("/gen?body=%s" % body + "".join("&h=" + quote(h, safe="") for h in headers) +
            "".join("&%s=%s" % (k, quote(str(v), safe="")) for k, v in params.items()))


def date(t):
    return email.utils.formatdate(t, usegmt=True)


FRESH = "Cache-Control: max-age=300"


# ---- RFC 9111 4.2.2 ------------------------------------------------------------

@test
def test_rfc9111_4_2_2_heuristic_freshness(procs):
    pols = (policy(cache_ttl="2", storage_ttl="60") +
            policy("plain", cache_ttl="2") +
            policy("kong", cache_ttl="300", cache_control="false"))
    s = Stack(procs, policies=pols)
    old = date(time.time() - 10 * 86400)
    # Neither freshness nor a validator: kept (storage_ttl), never fresh.
    p = gen("nolm")
    assert [st(s.get(p)) for _ in range(3)] == ["Miss", "Refresh", "Refresh"]
    assert s.origin_count(p) == 3
    # Last-Modified ten days ago: 10% is a day, cache_ttl caps it at 2 s.
    p = gen("lm", "Last-Modified: " + old)
    assert [st(s.get(p)) for _ in range(2)] == ["Miss", "Hit"]
    time.sleep(2.2)
    assert st(s.get(p)) == "Refresh"
    # A status that is not heuristically cacheable (302) needs explicit
    # freshness or public (RFC 9111 3).
    p = gen("r", "Last-Modified: " + old, "Location: /x", status=302)
    assert [st(s.get(p)) for _ in range(2)] == ["Bypass", "Bypass"]
    p = gen("rp", "Last-Modified: " + old, "Location: /x", "Cache-Control: public", status=302)
    assert [st(s.get(p)) for _ in range(2)] == ["Miss", "Hit"]
    # Without storage_ttl, nothing fresh to keep: not stored at all.
    port, _ = s.node(SPOE_CACHE_POLICY="plain")
    p = gen("nolm2")
    assert [st(s.request("GET", p, port=port)) for _ in range(2)] == ["Bypass", "Bypass"]
    # Kong compatibility: cache_control = false, freshness is cache_ttl.
    port, _ = s.node(SPOE_CACHE_POLICY="kong")
    p = gen("nolm3")
    assert [st(s.request("GET", p, port=port)) for _ in range(2)] == ["Miss", "Hit"]


# ---- RFC 9110 14, RFC 9111 3.3 and 4.3.5: partial content ---------------------------------

@test
def test_rfc9110_14_rfc9111_3_3_partial_content(procs):
    s = Stack(procs, policies=policy())
    body = "0123456789abcdefghij"
    p = gen(body, FRESH, ranges=1)
    # A Range request that misses goes to the origin; its 206 is not stored.
    r = s.get(p, {"Range": "bytes=0-3"})
    assert r[0] == 206 and r[2] == b"0123" and st(r) == "Bypass", r
    r = s.get(p)
    assert r[0] == 200 and r[2] == body.encode() and st(r) == "Miss", r
    assert s.origin_count(p) == 2
    # A Range request is then answered from the whole 200: the bytes it asks for.
    for rng, code, part, cr in (("bytes=0-3", 206, b"0123", "bytes 0-3/20"),
                                ("bytes=10-", 206, b"abcdefghij", "bytes 10-19/20"),
                                ("bytes=-5", 206, b"fghij", "bytes 15-19/20"),
                                ("bytes=5-5", 206, b"5", "bytes 5-5/20"),
                                ("bytes=18-99", 206, b"ij", "bytes 18-19/20"),
                                ("bytes=20-", 416, b"", "bytes */20")):
        r = s.get(p, {"Range": rng})
        assert r[0] == code and r[2] == part and st(r) == "Hit", (rng, r)
        assert r[1]["content-range"] == cr and int(r[1]["content-length"]) == len(part), r[1]
    # HEAD ignores Range; a plain GET still gets the whole response.
    r = s.request("HEAD", p, {"Range": "bytes=0-3"})
    assert r[0] == 200 and int(r[1]["content-length"]) == 20 and "content-range" not in r[1]
    r = s.get(p)
    assert r[0] == 200 and r[2] == body.encode() and st(r) == "Hit"
    assert s.origin_count(p) == 2
    # Several ranges, or If-Range: passed through, the entry untouched.
    for h in ({"Range": "bytes=0-1,5-6"}, {"Range": "bytes=0-3", "If-Range": '"x"'}):
        r = s.get(p, h)
        assert st(r) == "Bypass", (h, r[1])
    assert s.origin_count(p) == 4
    r = s.get(p)
    assert r[0] == 200 and r[2] == body.encode() and st(r) == "Hit"
    # A 206 the origin sends to a plain GET is never stored, never replayed.
    p = gen("0123", "Content-Range: bytes 0-3/20", FRESH, status=206)
    assert [st(s.get(p)) for _ in range(2)] == ["Bypass", "Bypass"]
    assert s.origin_count(p) == 2


# ---- far-future expiry (RFC 9111 1.2.2, 4.2.1) ------------------------------------------

@test
def test_rfc9111_1_2_2_far_future_expiry_is_kept(procs):
    """A lifetime over 30 days is an absolute memcached expiry; one past
    2038-01-19 was taken by memcached and dropped at once."""
    s = Stack(procs, policies=policy())     # no storage_ttl: the lifetime is the TTL
    stores = s.metrics().get("spoe_cache_stores_total", 0)
    for p in (gen("exp", "Expires: Fri, 01 Jan 2100 00:00:00 GMT"),
              gen("ma", "Cache-Control: max-age=2147483648"),
              gen("ma2", "Cache-Control: max-age=99999999999")):
        r = s.get(p)
        assert st(r) == "Miss", r[1]
        r = s.get(p)
        assert st(r) == "Hit", (p, r[1])
        rc, out, err = s.ctl("get", r[1]["x-cache-key"])
        assert rc == 0, (out, err)
    assert s.metrics()["spoe_cache_stores_total"] == stores + 3


# ---- RFC 9213 targeted Cache-Control ----------------------------------------------

@test
def test_rfc9213_targeted_cache_control(procs):
    pols = policy() + policy("own", targeted_cache_control='["Spoe-Cache-Control", "CDN-Cache-Control"]')
    s = Stack(procs, policies=pols)
    # It takes precedence over Cache-Control for this cache.
    p = gen("ns", "CDN-Cache-Control: no-store", "Cache-Control: max-age=3600")
    assert [st(s.get(p)) for _ in range(2)] == ["Bypass", "Bypass"]
    p = gen("z", "CDN-Cache-Control: max-age=0", "Cache-Control: max-age=3600")
    assert "Hit" not in [st(s.get(p)) for _ in range(2)]
    assert s.origin_count(p) == 2
    p = gen("g", "CDN-Cache-Control: max-age=60", "Cache-Control: max-age=0, no-cache")
    r = [s.get(p) for _ in range(2)]
    assert [st(x) for x in r] == ["Miss", "Hit"]
    # it is passed on, with the rest of the response
    assert r[1][1]["cdn-cache-control"] == "max-age=60", r[1]
    assert r[1][1]["cache-control"] == "max-age=0, no-cache", r[1]
    # but Cache-Control's no-store and private still keep it out
    for cc in ("no-store", "private"):
        p = gen("g" + cc, "CDN-Cache-Control: max-age=60", "Cache-Control: " + cc)
        assert [st(s.get(p)) for _ in range(2)] == ["Bypass", "Bypass"], cc
    # One that is not a valid Dictionary is ignored: Cache-Control rules.
    p = gen("bad", "CDN-Cache-Control: Max-Age=0", "Cache-Control: max-age=60")
    assert [st(s.get(p)) for _ in range(2)] == ["Miss", "Hit"]
    # Expires is ignored with it.
    p = gen("e", "CDN-Cache-Control: must-revalidate",
            "Expires: " + date(time.time() + 3600))
    assert "Hit" not in [st(s.get(p)) for _ in range(2)]
    # A policy's own list, most specific first.
    port, _ = s.node(SPOE_CACHE_POLICY="own")
    p = gen("own", "Spoe-Cache-Control: max-age=60", "CDN-Cache-Control: no-store")
    assert [st(s.request("GET", p, port=port)) for _ in range(2)] == ["Miss", "Hit"]
    p = gen("own2", "Spoe-Cache-Control: max-age=60, private", "CDN-Cache-Control: max-age=60")
    assert [st(s.request("GET", p, port=port)) for _ in range(2)] == ["Bypass", "Bypass"]


# ---- RFC 9111 4.4 invalidation ------------------------------------------------------

@test
def test_rfc9111_4_4_invalidation(procs):
    s = Stack(procs, policies=policy())

    def cached(path):
        s.get(path)
        return st(s.get(path)) == "Hit"

    p = gen("inv", FRESH)
    # Every method not known to be safe invalidates when it succeeds.
    for m in ("M-SEARCH", "PURGE", "FOO"):
        assert cached(p)
        r = s.request(m, p)
        assert r[0] == 200, (m, r)
        assert st(s.get(p)) == "Miss", m
    # A safe one does not.
    for m in ("OPTIONS", "PROPFIND", "REPORT"):
        assert cached(p)
        assert s.request(m, p)[0] == 200
        assert st(s.get(p)) == "Hit", m
    # Location and Content-Location on the same authority are invalidated
    # too; another authority's are not.
    host = "%s:%d" % (HOST, s.http_port)
    a, b, c = gen("a", FRESH), gen("b", FRESH), gen("c", FRESH)
    for x in (a, b, c):
        assert cached(x)
    post = gen("post", "Location: " + a, "Content-Location: http://%s%s" % (host, b))
    assert s.request("POST", post, body=b"x")[0] == 200
    assert st(s.get(a)) == "Miss" and st(s.get(b)) == "Miss"
    post = gen("post2", "Location: http://other.example%s" % c, "Content-Location: //other.example" + c)
    assert s.request("POST", post, body=b"x")[0] == 200
    assert st(s.get(c)) == "Hit"
    # A failed one does not.
    assert cached(a)
    post = gen("post3", "Location: " + a, status=500)
    assert s.request("POST", post, body=b"x")[0] == 500
    assert st(s.get(a)) == "Hit"


# ---- RFC 9111 5.1 Age -------------------------------------------------------------

@test
def test_rfc9111_5_1_invalid_or_repeated_age_errs_toward_stale(procs):
    s = Stack(procs, policies=policy(storage_ttl="600"))
    for i, ages in enumerate((["7200, 0"], ["0, 7200"], ["10", "7200"], ["junk"], ["-5"])):
        p = gen("age%d" % i, "Cache-Control: max-age=3600", *["Age: " + a for a in ages])
        assert [st(s.get(p)) for _ in range(2)] == ["Miss", "Refresh"], ages
    # A valid one counts as it is.
    p = gen("agev", "Cache-Control: max-age=3600", "Age: 30")
    s.get(p)
    r = s.get(p)
    assert st(r) == "Hit" and int(r[1]["age"]) >= 30, r[1]


# ---- RFC 9110 15.3.5: a 204 has no Content-Length -------------------------------------

@test
def test_rfc9110_15_3_5_no_content_without_length(procs):
    s = Stack(procs, policies=policy())
    p = gen("", FRESH, status=204, nocl=1)
    r = s.get(p)
    assert r[0] == 204 and st(r) == "Miss" and "content-length" not in r[1], r
    r = s.get(p)
    assert r[0] == 204 and st(r) == "Hit" and r[2] == b"", r
    assert "content-length" not in r[1], r[1]
    assert s.origin_count(p) == 1


# ---- RFC 9111 5.2.2.3 must-understand ----------------------------------------------

@test
def test_rfc9111_5_2_2_3_must_understand(procs):
    s = Stack(procs, policies=policy())
    cc = "Cache-Control: must-understand, no-store, max-age=60"
    # A status this cache implements: no-store is lifted.
    assert [st(s.get(gen("mu", cc))) for _ in range(2)] == ["Miss", "Hit"]
    # One it does not (299): not stored, with or without no-store.
    assert [st(s.get(gen("mu2", cc, status=299))) for _ in range(2)] == ["Bypass", "Bypass"]
    p = gen("mu3", "Cache-Control: must-understand, max-age=60", status=299)
    assert [st(s.get(p)) for _ in range(2)] == ["Bypass", "Bypass"]
    # Without must-understand, no-store stands.
    p = gen("mu4", "Cache-Control: no-store, max-age=60")
    assert [st(s.get(p)) for _ in range(2)] == ["Bypass", "Bypass"]


# ---- RFC 9111 4.3.2: If-Modified-Since without Last-Modified ------------------------------

@test
def test_rfc9111_4_3_2_if_modified_since_against_date(procs):
    s = Stack(procs, policies=policy())
    p = gen("ims", FRESH)       # the origin sends Date, no Last-Modified
    r = s.get(p)
    sent = email.utils.parsedate_to_datetime(r[1]["date"]).timestamp()
    r = s.get(p, {"If-Modified-Since": date(sent)})
    assert r[0] == 304 and st(r) == "Hit" and r[2] == b"", r
    r = s.get(p, {"If-Modified-Since": date(sent - 60)})
    assert r[0] == 200 and r[2] == b"ims", r
    assert s.origin_count(p) == 1


# ---- RFC 9111 4.2: HTTP-dates in any letter case -------------------------------------

@test
def test_rfc9111_4_2_http_date_letter_case(procs):
    s = Stack(procs, policies=policy())
    # A lowercase Expires is a date, not "already expired".
    p = gen("lc", "Expires: fri, 01 jan 2100 00:00:00 gmt")
    assert [st(s.get(p)) for _ in range(2)] == ["Miss", "Hit"]
    # And a lowercase If-Modified-Since is compared.
    r = s.get(p, {"If-Modified-Since": date(time.time() + 60).lower()})
    assert r[0] == 304, r


# ---- RFC 9111 7.3: Set-Cookie, per policy ----------------------------------------------

@test
def test_rfc9111_7_3_set_cookie_modes(procs):
    pols = policy() + policy("strip", set_cookie='"strip"') + policy("store", set_cookie='"store"')
    s = Stack(procs, policies=pols)
    p = gen("ck", FRESH, "Set-Cookie: id=1; Path=/")
    # refuse (the default): not stored; the client still gets its cookie.
    for r in (s.get(p), s.get(p)):
        assert st(r) == "Bypass" and r[1]["set-cookie"] == "id=1; Path=/", r[1]
    # strip: stored without it; only the response that set it carries it.
    port, _ = s.node(SPOE_CACHE_POLICY="strip")
    a, b = s.request("GET", p, port=port), s.request("GET", p, port=port)
    assert st(a) == "Miss" and a[1]["set-cookie"] == "id=1; Path=/"
    assert st(b) == "Hit" and "set-cookie" not in b[1], b[1]
    # store: replayed as it is, to every client.
    port, _ = s.node(SPOE_CACHE_POLICY="store")
    a, b = s.request("GET", p, port=port), s.request("GET", p, port=port)
    assert st(a) == "Miss" and st(b) == "Hit" and b[1]["set-cookie"] == "id=1; Path=/", b[1]
    assert s.origin_count(p) == 4
    # spoe-cache-ctl shows such an entry when a policy stores cookies
    rc, out, err = s.ctl("get", b[1]["x-cache-key"])
    assert rc == 0 and "id=1; Path=/" in out, (rc, out, err)


# ---- RFC 9211 Cache-Status -----------------------------------------------------------

def cs(resp):
    return resp[1].get("cache-status")


@test
def test_rfc9211_cache_status(procs):
    pols = policy(cache_status="true", storage_ttl="600") + policy("off")
    s = Stack(procs, policies=pols)
    p = gen("cs", "Cache-Control: max-age=2", "Vary: X-A")
    r = s.get(p)
    assert st(r) == "Miss" and cs(r) == "spoe-cache; fwd=uri-miss; fwd-status=200; stored", r[1]
    r = s.get(p)
    assert st(r) == "Hit" and cs(r) in ("spoe-cache; hit; ttl=2", "spoe-cache; hit; ttl=1"), r[1]
    r = s.get(p, {"Cache-Control": "max-age=0"})
    assert st(r) in ("Refresh", "Hit"), r[1]
    if st(r) == "Refresh":     # unless the same second: age 0 is fresh enough
        assert cs(r) == "spoe-cache; fwd=request; fwd-status=200; stored", r[1]
    time.sleep(3.1)
    r = s.get(p, {"Cache-Control": "max-stale=600"})
    assert st(r) == "Hit" and cs(r).startswith("spoe-cache; hit; ttl=-"), r[1]
    r = s.get(p)
    assert st(r) == "Refresh" and cs(r) == "spoe-cache; fwd=stale; fwd-status=200; stored", r[1]
    # another variant than the one stored (the key holds one at a time)
    r = s.get(p, {"X-A": "1"})
    assert st(r) == "Miss" and cs(r) == "spoe-cache; fwd=vary-miss; fwd-status=200; stored", r[1]
    # What the request or the method decides.
    r = s.get(p, {"Cache-Control": "no-cache"})
    assert st(r) == "Bypass" and cs(r) == "spoe-cache; fwd=request", r[1]
    r = s.request("POST", gen("post"), body=b"x")
    assert st(r) == "Bypass" and cs(r) == "spoe-cache; fwd=method; fwd-status=200", r[1]
    r = s.request("OPTIONS", p)
    assert cs(r) == "spoe-cache; fwd=method", r[1]
    r = s.get(gen("ck", FRESH, "Set-Cookie: a=1"))
    assert st(r) == "Bypass" and \
        cs(r) == "spoe-cache; fwd=uri-miss; fwd-status=200; detail=set_cookie", r[1]
    r = s.get(gen("oic"), {"Cache-Control": "only-if-cached"})
    assert r[0] == 504 and cs(r) == "spoe-cache; detail=only-if-cached", r
    # An upstream cache's entry stays first (a list, RFC 9211 2).
    p = gen("up", FRESH, "Cache-Status: upstream; hit")
    r = s.get(p)
    assert cs(r) == "upstream; hit, spoe-cache; fwd=uri-miss; fwd-status=200; stored", r[1]
    r = s.get(p)
    assert cs(r) == "upstream; hit, spoe-cache; hit; ttl=300", r[1]
    # Kong's X-Cache-Status is as it was; a policy without the option adds none.
    port, _ = s.node(SPOE_CACHE_POLICY="off")
    p = gen("off", FRESH)
    for r in (s.request("GET", p, port=port), s.request("GET", p, port=port)):
        assert "cache-status" not in r[1] and st(r) in ("Miss", "Hit"), r[1]


@test
def test_rfc9211_cache_status_on_l1_hits(procs):
    s = Stack(procs, l1_ttl=5, policies=policy(cache_status="true", l1_ttl="30"))
    conn = http.client.HTTPConnection(HOST, s.http_port, timeout=30)   # one HAProxy thread

    def get():
        conn.request("GET", "/max-age")     # public, max-age=30
        r = conn.getresponse()
        r.read()
        return {k.lower(): v for k, v in r.getheaders()}

    h = wait_for(lambda: (lambda x: x if x.get("x-cache-tier") == "L1" else None)(get()),
                 timeout=15, step=0.02, what="an L1 hit")
    assert h["x-cache-status"] == "Hit"
    ttl = int(h["cache-status"].split("ttl=")[1])
    assert h["cache-status"] == "spoe-cache; hit; ttl=%d" % ttl and 28 <= ttl <= 30, h
    time.sleep(2.1)
    h = get()
    assert h.get("x-cache-tier") == "L1", h
    later = int(h["cache-status"].split("ttl=")[1])
    # the L1 counts the seconds down, as it does Age
    assert h["cache-status"] == "spoe-cache; hit; ttl=%d" % later and later <= ttl - 2, (ttl, h)
    assert int(h["age"]) + later in (30, 31, 29), h
    conn.close()


# ---- the settings ---------------------------------------------------------------------

@test
def test_new_settings_are_checked_with_file_and_line(procs):
    good = agent_config([(11211, 100)], 12345, 12346, policies=(
        policy(targeted_cache_control='["Edge-Cache-Control", "CDN-Cache-Control"]',
               set_cookie='"strip"', cache_status="true") +
        policy("none", targeted_cache_control="[]", set_cookie='"store"')))
    path = procs.write("good.conf", good)
    p = subprocess.run([AGENT, "-t", "-c", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode == 0, p.stderr
    for setting, value, msg in (
            ("set_cookie", '"maybe"', 'set_cookie: expected "refuse", "strip" or "store"'),
            ("set_cookie", "1", 'set_cookie: expected "refuse", "strip" or "store"'),
            ("targeted_cache_control", '["Cache-Control"]', "is not a targeted field name"),
            ("targeted_cache_control", '["a b"]', "is not a targeted field name"),
            ("targeted_cache_control", '"CDN-Cache-Control"', "expected a list of strings"),
            ("cache_status", '"yes"', "cache_status")):
        text = agent_config([(11211, 100)], 12345, 12346, policies="  p: {\n    %s = %s;\n  };\n"
                            % (setting, value))
        path = procs.write("bad.conf", text)
        line = text.splitlines().index("    %s = %s;" % (setting, value)) + 1
        p = subprocess.run([AGENT, "-t", "-c", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        err = p.stderr.decode()
        assert p.returncode != 0 and ("%s:%d: policies.p." % (path, line)) in err and msg in err, \
            (setting, value, err)


if __name__ == "__main__":
    main()
