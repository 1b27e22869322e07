#!/usr/bin/env python3
"""End to end: operating the cache (issue 8). spoe-cache-ctl's commands
(get, purge, flush, key, stats; text and --json; exit codes 0/1/2 as written
at the top of agent/cmd/spoe-cache-ctl.c) and the agent's admin endpoint (GET /healthz,
GET /metrics, GET|DELETE /cache/KEY, DELETE /cache, the bearer token), each
against a cache filled through HAProxy, checking what HAProxy serves next.
Also: a plain and a TLS memcached pool, a shard stopped, admin requests
whose client or agent goes away while memcached has not answered, and
SIGHUP reloads: old configurations freed, the host list changed under load.

The CLI runs in its ASan+UBSan build (leaks included) when it is built, so a
sanitizer report turns into a wrong exit code or stderr and fails the test.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import CTL, CTL_ASAN, HOST, main, proc_status_kb, test, wait_for  # noqa: E402
from stack import DEFAULT_POLICIES, Stack, tls_pool  # noqa: E402

CTL_BIN = CTL_ASAN if os.access(CTL_ASAN, os.X_OK) else CTL
BINARY = bytes(range(256)) * 2
ABSENT = "0" * 64


def ctl(s, *args, conf=None):
    """(exit code, stdout, stderr) of spoe-cache-ctl -c CONF ARGS."""
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1", UBSAN_OPTIONS="halt_on_error=1")
    p = subprocess.run([CTL_BIN, "-c", conf or s.conf] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=60)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    assert "Sanitizer" not in err and "runtime error" not in err, err
    return p.returncode, out, err


def jlines(text):
    """--json prints one object per line."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def status(resp):
    return resp[1].get("x-cache-status")


def admin(s, method, path, headers=None, body=None):
    return s.request(method, path, headers, body, port=s.admin_port)


def shard_names(s):
    return ["127.0.0.1:%d" % m.port for m in s.shards]


def fill(s, paths):
    """GET each path until HAProxy serves it as a Hit; {path: key}."""
    keys = {}
    for p in paths:
        st, h, b = s.get(p)
        assert st == 200 and status((st, h, b)) in ("Miss", "Hit"), (p, st, h)
        keys[p] = h["x-cache-key"]
        s.wait_cached(p)
    return keys


# ---- spoe-cache-ctl ----------------------------------------------------------

@test
def test_ctl_get_and_purge(procs):
    s = Stack(procs)
    st, h, body = s.get("/json")
    assert status((st, h, body)) == "Miss", h
    key = h["x-cache-key"]
    assert status(s.get("/json")) == "Hit"

    rc, out, err = ctl(s, "get", key)
    assert rc == 0, (rc, out, err)
    lines = out.splitlines()
    assert "key: %s" % key in lines, out
    assert "status: 200" in lines, out
    assert "fresh: yes" in lines, out
    assert "lifetime: 300" in lines, out
    assert "body_size: %d" % len(body) in lines, out
    assert any(l.startswith("age: ") and int(l[5:]) >= 0 for l in lines), out
    assert "  content-type: application/json" in lines, out

    rc, out, err = ctl(s, "--json", "get", key)
    assert rc == 0, (rc, out, err)
    (e,) = jlines(out)
    assert e["found"] is True and e["key"] == key, e
    assert e["status"] == 200 and e["fresh"] is True and e["lifetime"] == 300, e
    assert e["body_size"] == len(body) and 0 <= e["age"] < 60, e
    assert ["content-type", "application/json"] in e["headers"], e

    # purge: gone from its shard; HAProxy misses once, then hits again.
    rc, out, err = ctl(s, "purge", key)
    assert rc == 0, (rc, out, err)
    assert out.startswith("%s: purged (shard 127.0.0.1:" % key), out
    assert any(n in out for n in shard_names(s)), out
    rc, out, err = ctl(s, "get", key)
    assert rc == 1 and out == "%s: not in the cache\n" % key, (rc, out, err)
    assert status(s.get("/json")) == "Miss"
    assert status(s.get("/json")) == "Hit"
    assert s.origin_count("/json") == 2

    rc, out, err = ctl(s, "--json", "purge", key)
    assert rc == 0, (rc, out, err)
    (p,) = jlines(out)
    assert p["key"] == key and p["result"] == "purged" and p["shard"] in shard_names(s), p
    rc, out, err = ctl(s, "--json", "purge", key)
    assert rc == 1 and jlines(out)[0]["result"] == "absent", (rc, out)
    rc, out, err = ctl(s, "purge", key)
    assert rc == 1 and "not in the cache" in out, (rc, out)
    rc, out, err = ctl(s, "--json", "get", key)
    assert rc == 1 and jlines(out) == [{"key": key, "found": False}], (rc, out)
    assert status(s.get("/json")) == "Miss"


@test
def test_ctl_usage_errors_exit_2(procs):
    s = Stack(procs)
    cases = [
        (),                                   # no command
        ("bogus",),                           # unknown command
        ("get",),                             # no key
        ("get", "abc"),                       # not a key
        ("get", "A" * 64),                    # upper case is not a key
        ("get", ABSENT, "--body"),            # --body without a file
        ("purge", ABSENT, "extra"),
        ("flush", "extra"),
        ("stats", "extra"),
        ("key", "GET"),                       # no URL
        ("key", "GET", "http://x/", "--policy", "nope"),
        ("key", "GET", "http://x/", "-H", "no colon"),
    ]
    for args in cases:
        rc, out, err = ctl(s, *args)
        assert rc == 2, (args, rc, out, err)
        assert err.strip(), (args, err)
    rc, out, err = ctl(s, "stats", conf=procs.path("missing.conf"))
    assert rc == 2 and "missing.conf: cannot read" in err, (rc, err)
    bad = procs.write("bad.conf", 'memcached: { hosts = ( { host = "127.0.0.1"; } ); bogus = 1; };\n')
    rc, out, err = ctl(s, "stats", conf=bad)
    assert rc == 2 and "bad.conf:1: memcached.bogus: unknown setting" in err, (rc, err)
    rc, out, err = ctl(s, "--help")
    assert rc == 0 and "usage:" in out


@test
def test_ctl_get_body_writes_exact_bytes(procs):
    s = Stack(procs)
    st, h, b = s.get("/binary")
    assert status((st, h, b)) == "Miss" and b == BINARY
    key = h["x-cache-key"]
    st, h, b = s.get("/binary")
    assert status((st, h, b)) == "Hit" and b == BINARY

    path = procs.path("body.bin")
    rc, out, err = ctl(s, "get", key, "--body", path)
    assert rc == 0, (rc, out, err)
    assert "body_size: 512" in out.splitlines(), out
    with open(path, "rb") as f:
        assert f.read() == BINARY
    # --json with --body: the metadata on stdout, the body in the file.
    os.unlink(path)
    rc, out, err = ctl(s, "--json", "get", key, "--body", path)
    assert rc == 0 and jlines(out)[0]["body_size"] == 512, (rc, out)
    with open(path, "rb") as f:
        assert f.read() == BINARY
    # --body -: the body on stdout, byte for byte, the metadata on stderr.
    p = subprocess.run([CTL_BIN, "-c", s.conf, "get", key, "--body", "-"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode == 0 and p.stdout == BINARY, (p.returncode, p.stderr)
    assert b"body_size: 512" in p.stderr
    # An absent key writes no file.
    gone = procs.path("none.bin")
    rc, out, err = ctl(s, "get", ABSENT, "--body", gone)
    assert rc == 1 and not os.path.exists(gone), (rc, out)
    # An unwritable destination is an error, not a silent success.
    rc, out, err = ctl(s, "get", key, "--body", procs.path("no/such/dir/x"))
    assert rc == 2 and "cannot write" in err, (rc, err)


@test
def test_ctl_flush(procs):
    s = Stack(procs)
    paths = ["/gen?body=f%d" % i for i in range(24)] + ["/json", "/binary"]
    keys = fill(s, paths)
    assert len(set(keys.values())) == len(paths)

    rc, out, err = ctl(s, "flush")
    assert rc == 0, (rc, out, err)
    assert sorted(out.splitlines()) == sorted("%s: flushed" % n for n in shard_names(s)), out
    for p, k in keys.items():
        assert ctl(s, "get", k)[0] == 1, p
    for p in paths:
        assert status(s.get(p)) == "Miss", p
    # cached again afterwards, then flushed with --json
    for p in paths:
        s.wait_cached(p)
    rc, out, err = ctl(s, "--json", "flush")
    assert rc == 0, (rc, out, err)
    res = jlines(out)
    assert sorted(r["shard"] for r in res) == sorted(shard_names(s)), res
    assert all(r["result"] == "flushed" for r in res), res
    for p in paths:
        assert status(s.get(p)) == "Miss", p


@test
def test_ctl_key_equals_live_key(procs):
    pol = """
  default: { content_type = ["*"]; };
  lang: {
    content_type = ["*"];
    vary_headers = ["Accept-Language", "X-Tenant"];
    vary_query_params = ["page", "sort"];
  };
"""
    s = Stack(procs, policies=pol)
    base = "http://127.0.0.1:%d" % s.http_port
    urls = ["/json", "/text", "/gen?b=2&a=1", "/gen?a=1&b=2", "/gen?q=a+b&z=&x=%41%2f",
            "/gen/deeper/path.txt?x=1", "/binary?", "/gen?body=%C3%A9t%C3%A9"]
    seen = set()
    for u in urls:
        st, h, b = s.get(u)
        live = h.get("x-cache-key")
        assert live and len(live) == 64, (u, h)
        seen.add(live)
        rc, out, err = ctl(s, "key", "GET", base + u)
        assert rc == 0 and out == live + "\n", (u, rc, out, err, live)
        # origin form with an explicit Host, and HEAD (answered from GET's entry)
        rc, out, err = ctl(s, "key", "GET", u, "-H", "Host: 127.0.0.1:%d" % s.http_port)
        assert rc == 0 and out == live + "\n", (u, out, live)
        rc, out, err = ctl(s, "key", "HEAD", base + u)
        assert rc == 0 and out == live + "\n", (u, out, live)
        rc, out, err = ctl(s, "--json", "key", "GET", base + u)
        assert rc == 0 and jlines(out) == [{"key": live, "policy": "default"}], out
    # the query is canonical: the two orders of a and b are one key
    assert len(seen) == len(urls) - 1, seen
    # A different Host is a different key.
    rc, out, err = ctl(s, "key", "GET", "http://example.com/json")
    assert rc == 0 and out.strip() not in seen
    # Not cacheable under the policy: a Bypass, exit 1.
    rc, out, err = ctl(s, "key", "POST", base + "/json")
    assert rc == 1 and out == "" and "Bypass" in err, (rc, out, err)

    # A policy with vary_headers and vary_query_params, through HAProxy.
    s2 = Stack(procs, policies=pol, policy="lang", shards=s.shards)
    base2 = "http://127.0.0.1:%d" % s2.http_port
    cases = [({"Accept-Language": "fr"}, ["-H", "Accept-Language: fr"]),
             ({"Accept-Language": "de"}, ["-H", "accept-language: de"]),
             ({"Accept-Language": "fr", "X-Tenant": "t1"},
              ["-H", "X-Tenant: t1", "-H", "Accept-Language: fr"]),
             ({}, [])]
    lang_keys = set()
    for hdrs, opts in cases:
        for u in ("/gen?page=2&sort=a&utm=x", "/text"):
            st, h, b = s2.get(u, hdrs)
            live = h.get("x-cache-key")
            assert live, (u, hdrs, h)
            lang_keys.add(live)
            rc, out, err = ctl(s2, "key", "GET", base2 + u, "--policy", "lang", *opts)
            assert rc == 0 and out == live + "\n", (u, hdrs, out, live, err)
            rc, out, err = ctl(s2, "--json", "key", "--policy", "lang", "GET", base2 + u, *opts)
            assert jlines(out) == [{"key": live, "policy": "lang"}], out
            # the default policy names another key
            rc, out, err = ctl(s2, "key", "GET", base2 + u, *opts)
            assert rc == 0 and out != live + "\n"
    assert len(lang_keys) == 2 * len(cases), lang_keys
    # vary_query_params: a parameter outside the list does not change the key
    st, h, b = s2.get("/gen?page=2&sort=a&utm=y", {"Accept-Language": "fr"})
    rc, out, err = ctl(s2, "key", "GET", base2 + "/gen?sort=a&page=2", "--policy", "lang",
                       "-H", "Accept-Language: fr")
    assert out == h["x-cache-key"] + "\n", (out, h)


@test
def test_ctl_stats_and_a_shard_down(procs):
    s = Stack(procs)
    paths = ["/gen?body=s%d" % i for i in range(30)]
    keys = fill(s, paths)
    names = shard_names(s)

    rc, out, err = ctl(s, "stats")
    assert rc == 0, (rc, out, err)
    lines = out.splitlines()
    assert len(lines) == 3, out
    for n in names:
        (l,) = [l for l in lines if l.startswith(n + ": ")]
        assert l.startswith(n + ": up, ") and "hit ratio" in l, l
    rc, out, err = ctl(s, "--json", "stats")
    assert rc == 0, (rc, out, err)
    st = {r["shard"]: r for r in jlines(out)}
    assert sorted(st) == sorted(names), st
    assert all(r["up"] is True for r in st.values()), st
    assert sum(r["items"] for r in st.values()) == len(paths), st
    assert all(r["limit_maxbytes"] == 64 << 20 and 0 <= r["hit_ratio"] <= 1 for r in st.values())
    assert sum(r["get_hits"] for r in st.values()) >= len(paths)

    down = names[0]
    procs.stop(s.shards[0], signal.SIGKILL)
    rc, out, err = ctl(s, "stats")
    assert rc == 1, (rc, out, err)
    lines = out.splitlines()
    assert len(lines) == 3, out
    assert [l for l in lines if l.startswith(down + ": ")] == [down + ": down (ERROR)"], out
    assert sum(1 for l in lines if ": up, " in l) == 2, out
    rc, out, err = ctl(s, "--json", "stats")
    assert rc == 1
    st = {r["shard"]: r for r in jlines(out)}
    assert st[down]["up"] is False and st[down]["error"] == "ERROR", st
    assert all(st[n]["up"] is True for n in names[1:]), st

    # flush: the live shards are flushed, the dead one is named, exit 1
    rc, out, err = ctl(s, "flush")
    assert rc == 1, (rc, out, err)
    assert sorted(out.splitlines()) == sorted(
        [down + ": ERROR"] + ["%s: flushed" % n for n in names[1:]]), out
    rc, out, err = ctl(s, "--json", "flush")
    assert rc == 1
    res = {r["shard"]: r["result"] for r in jlines(out)}
    assert res == dict([(down, "ERROR")] + [(n, "flushed") for n in names[1:]]), res

    # get/purge of a key on the dead shard: an error (2), not "absent" (1)
    on_down = 0
    for p, k in keys.items():
        rc, out, err = ctl(s, "get", k)
        if rc == 2:
            on_down += 1
            assert out == "%s: ERROR on shard %s\n" % (k, down), out
            rc, out, err = ctl(s, "--json", "purge", k)
            assert rc == 2 and jlines(out) == [{"key": k, "shard": down, "result": "ERROR"}], out
            rc, out, err = ctl(s, "--json", "get", k)
            assert rc == 2 and jlines(out) == [{"key": k, "shard": down, "error": "ERROR"}], out
            # HAProxy still answers, from the origin: a Miss, whose store
            # fails in the background (after the label went out)
            st_, h, b = s.get(p)
            assert st_ == 200 and status((st_, h, b)) == "Miss", h
        else:
            assert rc == 1, (p, rc, out)   # flushed
    assert on_down > 0


@test
def test_ctl_against_a_tls_pool(procs):
    shards, extra, tls = tls_pool(procs, 2)
    s = Stack(procs, shards=shards, weights=(100, 100), pool_extra=extra)
    paths = ["/json", "/binary"] + ["/gen?body=t%d" % i for i in range(8)]
    keys = fill(s, paths)

    rc, out, err = ctl(s, "--json", "stats")
    assert rc == 0, (rc, out, err)
    st = jlines(out)
    assert len(st) == 2 and all(r["up"] for r in st), st
    assert sum(r["items"] for r in st) == len(paths), st

    key = keys["/binary"]
    bodyf = procs.path("b.bin")
    rc, out, err = ctl(s, "get", key, "--body", bodyf)
    assert rc == 0 and "status: 200" in out, (rc, out, err)
    with open(bodyf, "rb") as f:
        assert f.read() == BINARY
    rc, out, err = ctl(s, "purge", key)
    assert rc == 0 and "purged" in out, (rc, out, err)
    assert status(s.get("/binary")) == "Miss"
    s.wait_cached("/binary")

    rc, out, err = ctl(s, "flush")
    assert rc == 0 and out.count(": flushed") == 2, (rc, out, err)
    for p in paths:
        assert status(s.get(p)) == "Miss", p

    # Verification is on: a CA that did not sign the servers fails every shard.
    bad = procs.write("badca.conf", open(s.conf).read().replace(tls["ca"], tls["badca"]))
    rc, out, err = ctl(s, "stats", conf=bad)
    assert rc == 1 and out.count(": down (ERROR)") == 2, (rc, out, err)
    rc, out, err = ctl(s, "get", key, conf=bad)
    assert rc == 2, (rc, out)


# ---- the admin endpoint ------------------------------------------------------

@test
def test_admin_cache_routes(procs):
    s = Stack(procs)
    st, h, b = admin(s, "GET", "/healthz")
    assert st == 200 and b == b"ok\n"

    st, h, body = s.get("/json")
    key = h["x-cache-key"]
    assert status(s.get("/json")) == "Hit"
    st, h, b = admin(s, "GET", "/cache/" + key)
    assert st == 200 and h["content-type"] == "application/json", (st, h)
    e = json.loads(b)
    assert e["found"] is True and e["key"] == key and e["status"] == 200, e
    assert e["body_size"] == len(body) and e["fresh"] is True, e

    st, h, b = admin(s, "DELETE", "/cache/" + key)
    assert st == 200 and b == b"purged\n", (st, b)
    assert status(s.get("/json")) == "Miss"
    assert status(s.get("/json")) == "Hit"
    st, h, b = admin(s, "DELETE", "/cache/" + key)
    assert st == 200
    st, h, b = admin(s, "DELETE", "/cache/" + key)
    assert st == 404 and b == b"not in the cache\n", (st, b)
    st, h, b = admin(s, "GET", "/cache/" + key)
    assert st == 404, st
    assert status(s.get("/json")) == "Miss"

    for bad in ("/cache/abc", "/cache/" + "A" * 64, "/cache/" + key + "0", "/cache/"):
        st, h, b = admin(s, "GET", bad)
        assert st == 400, (bad, st)
    st, h, b = admin(s, "GET", "/nope")
    assert st == 404 and b"/metrics" in b
    st, h, b = admin(s, "GET", "/cache")
    assert st == 404
    # evhttp refuses methods it was not told to allow with 501
    st, h, b = admin(s, "POST", "/cache/" + key, body=b"")
    assert st == 501, st
    assert status(s.get("/json")) == "Hit"

    # DELETE /cache flushes every shard: everything is a Miss next.
    paths = ["/gen?body=a%d" % i for i in range(20)]
    fill(s, paths)
    st, h, b = admin(s, "DELETE", "/cache")
    assert st == 200, (st, b)
    lines = b.decode().splitlines()
    assert sorted(lines[:-1]) == sorted("%s: flushed" % n for n in shard_names(s)), lines
    assert lines[-1] == "3 of 3 shards flushed", lines
    for p in paths:
        assert status(s.get(p)) == "Miss", p

    # With a shard down: 502, and the body names it.
    procs.stop(s.shards[2], signal.SIGKILL)
    st, h, b = admin(s, "DELETE", "/cache")
    assert st == 502, (st, b)
    lines = b.decode().splitlines()
    assert "%s: ERROR" % shard_names(s)[2] in lines and lines[-1] == "2 of 3 shards flushed", lines


def admin_token_config(s, token):
    """Restart s's agent with agent.admin.token set."""
    old = 'admin: { listen = "127.0.0.1"; port = %d; };' % s.admin_port
    s.reconfigure(old, old[:-3] + ' token = "%s"; };' % token)


@test
def test_admin_bearer_token(procs):
    s = Stack(procs)
    admin_token_config(s, "s3cret-token")
    st, h, b = s.get("/json")
    key = h["x-cache-key"]
    assert status(s.get("/json")) == "Hit"
    good = {"Authorization": "Bearer s3cret-token"}
    wrong = [None, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer s3cret-toke"},
             {"Authorization": "Bearer s3cret-token2"}, {"Authorization": "Basic s3cret-token"},
             {"Authorization": "bearer"}, {"Authorization": "s3cret-token"}]
    routes = [("GET", "/metrics"), ("GET", "/cache/" + key), ("DELETE", "/cache/" + key),
              ("DELETE", "/cache"), ("GET", "/nope")]
    for method, path in routes:
        for hdrs in wrong:
            st, h, b = admin(s, method, path, hdrs)
            assert st == 401, (method, path, hdrs, st)
            assert h.get("www-authenticate") == "Bearer", h
    # nothing was purged or flushed by the refused requests
    assert status(s.get("/json")) == "Hit"
    st, h, b = admin(s, "GET", "/healthz")
    assert st == 200 and b == b"ok\n"
    st, h, b = admin(s, "GET", "/metrics", good)
    assert st == 200 and b"spoe_cache_lookups_total" in b
    st, h, b = admin(s, "GET", "/cache/" + key, good)
    assert st == 200 and json.loads(b)["key"] == key
    st, h, b = admin(s, "DELETE", "/cache/" + key, good)
    assert st == 200
    assert status(s.get("/json")) == "Miss"
    s.wait_cached("/json")
    st, h, b = admin(s, "DELETE", "/cache", good)
    assert st == 200
    assert status(s.get("/json")) == "Miss"


def metric(m, name, **labels):
    if labels:
        name += "{" + ",".join('%s="%s"' % kv for kv in labels.items()) + "}"
    return m.get(name, 0)


@test
def test_metrics_follow_known_traffic(procs):
    s = Stack(procs)
    names = shard_names(s)
    m0 = s.metrics()
    for st in ("Hit", "Miss", "Refresh", "Bypass"):
        assert metric(m0, "spoe_cache_lookups_total", status=st) == 0
    assert metric(m0, "spoe_cache_stores_total") == 0
    assert metric(m0, "spoe_cache_inflight") == 0
    for n in names:
        assert metric(m0, "spoe_cache_memcached_up", shard=n) == 1

    assert status(s.get("/text")) == "Miss"
    assert status(s.get("/text")) == "Hit"
    assert status(s.get("/cookie")) == "Bypass"                      # set_cookie
    assert status(s.get("/gen?status=500&body=x")) == "Bypass"       # status
    assert status(s.get("/gen?ct=text/html&body=x")) == "Bypass"     # content_type
    assert status(s.request("POST", "/gen?body=p", body=b"x")) == "Bypass"  # method

    # A store is answered before memcached answers it: counted once it has.
    wait_for(lambda: metric(s.metrics(), "spoe_cache_store_backlog_bytes") == 0, timeout=10,
             what="the background store")
    m = s.metrics()
    assert metric(m, "spoe_cache_lookups_total", status="Hit") == 1
    assert metric(m, "spoe_cache_lookups_total", status="Miss") == 4
    assert metric(m, "spoe_cache_lookups_total", status="Bypass") == 1
    assert metric(m, "spoe_cache_lookups_total", status="Refresh") == 0
    assert metric(m, "spoe_cache_stores_total") == 1
    for reason, n in (("set_cookie", 1), ("status", 1), ("content_type", 1), ("no_store", 0),
                      ("too_big", 0), ("store_failed", 0)):
        assert metric(m, "spoe_cache_store_refusals_total", reason=reason) == n, (reason, m)
    assert metric(m, "spoe_cache_inflight") == 0
    assert metric(m, "spoe_cache_spop_connections_total") >= 1
    assert metric(m, "spoe_cache_spop_connections") >= 1
    assert metric(m, "spoe_cache_spop_disconnects_total") == 0
    assert metric(m, "spoe_cache_bad_messages_total") == 0
    assert metric(m, "spoe_cache_invalidations_total") == 1      # the POST's
    # One ACK per NOTIFY: 6 lookups, and a store message for every response
    # but the Hit (4 GETs, and the POST's invalidation). frames_out counts
    # ACKs only; frames in are those NOTIFYs plus a HELLO per connection.
    assert metric(m, "spoe_cache_spop_frames_total", direction="out") == 11, m
    fin = metric(m, "spoe_cache_spop_frames_total", direction="in")
    assert 11 + 1 <= fin <= 11 + metric(m, "spoe_cache_spop_connections_total"), m

    # memcached requests per shard: 5 gets (every GET lookup), 1 set (/text),
    # 3 pass markers (each refused response's lookup had claimed the fetch:
    # collapsed forwarding), 1 delete (the POST's invalidation). The stats
    # are snapshots taken every second by each worker.
    assert metric(m, "spoe_cache_pass_markers_total") == 3
    def shard_totals():
        mm = s.metrics()
        return mm if sum(metric(mm, "spoe_cache_memcached_requests_total", shard=n)
                         for n in names) >= 10 else None
    m = wait_for(shard_totals, timeout=10, what="per-shard counters")
    total = 0
    for n in names:
        req = metric(m, "spoe_cache_memcached_requests_total", shard=n)
        cnt = metric(m, "spoe_cache_memcached_latency_seconds_count", shard=n)
        assert metric(m, "spoe_cache_memcached_errors_total", shard=n) == 0
        assert cnt == req, (n, cnt, req)
        buckets = sorted((float(k.split('le="')[1].rstrip('"}')) if "+Inf" not in k else 1e99, v)
                         for k, v in m.items()
                         if k.startswith('spoe_cache_memcached_latency_seconds_bucket{shard="%s"' % n))
        assert len(buckets) == 14, buckets
        vals = [v for _, v in buckets]
        assert vals == sorted(vals) and vals[-1] == cnt, (n, buckets)
        assert metric(m, "spoe_cache_memcached_latency_seconds_sum", shard=n) >= 0
        total += req
    assert total == 10, m

    # A burst of Hits: exactly one more ACK and Hit per request.
    before = s.metrics()
    for _ in range(25):
        assert status(s.get("/text")) == "Hit"
    after = s.metrics()
    d = lambda name, **kw: metric(after, name, **kw) - metric(before, name, **kw)  # noqa: E731
    assert d("spoe_cache_lookups_total", status="Hit") == 25
    assert d("spoe_cache_spop_frames_total", direction="out") == 25
    assert d("spoe_cache_spop_frames_total", direction="in") >= 25
    assert d("spoe_cache_stores_total") == 0

    # A shard down: its errors grow, it is reported down, nothing else moves.
    down = names[1]
    procs.stop(s.shards[1], signal.SIGKILL)
    for i in range(40):
        s.get("/gen?body=d%d" % i)

    def down_seen():
        mm = s.metrics()
        return mm if metric(mm, "spoe_cache_memcached_up", shard=down) == 0 and \
            metric(mm, "spoe_cache_memcached_errors_total", shard=down) > 0 else None
    m = wait_for(down_seen, timeout=10, what="shard down in /metrics")
    for n in (names[0], names[2]):
        assert metric(m, "spoe_cache_memcached_up", shard=n) == 1
        assert metric(m, "spoe_cache_memcached_errors_total", shard=n) == 0


# ---- admin requests that outlive their client or the agent ---------------------

def stopped_shard_stack(procs):
    """One shard, an entry on it, then the shard SIGSTOPped: it accepts
    connections and never answers, so admin requests wait on memcached
    (timeout 500 ms). The agent runs under ASan."""
    s = Stack(procs, weights=(100,), asan=True)
    st, h, b = s.get("/json")
    key = h["x-cache-key"]
    s.wait_cached("/json")
    os.killpg(s.shards[0].pid, signal.SIGSTOP)
    return s, key


def send_raw(s, req):
    c = socket.create_connection((HOST, s.admin_port))
    c.sendall(("%s HTTP/1.1\r\nHost: x\r\n\r\n" % req).encode())
    return c


@test
def test_admin_client_gone_before_memcached_answers(procs):
    s, key = stopped_shard_stack(procs)
    try:
        for req in ("GET /cache/%s" % key, "DELETE /cache/%s" % key, "DELETE /cache"):
            c = send_raw(s, req)
            time.sleep(0.05)
            c.close()
        # the replies (502 after the timeout) go to closed connections
        time.sleep(1.5)
        st, h, b = admin(s, "GET", "/healthz")
        assert st == 200
        st, h, b = admin(s, "GET", "/cache/" + key)
        assert st == 502, st
        assert s.agent.poll() is None
    finally:
        os.killpg(s.shards[0].pid, signal.SIGCONT)
    assert s.stop_agent() == 0


@test
def test_admin_requests_pending_at_shutdown(procs):
    """SIGTERM while admin requests wait on memcached: they are answered
    (502) before evhttp frees their connections, and the agent exits 0."""
    s, key = stopped_shard_stack(procs)
    try:
        conns = [send_raw(s, "GET /cache/%s" % key), send_raw(s, "DELETE /cache")]
        time.sleep(0.1)
        os.killpg(s.agent.pid, signal.SIGTERM)
        s.agent.wait(timeout=20)
        assert s.agent.returncode == 0, s.agent.returncode
        for c in conns:
            c.settimeout(5)
            try:
                data = c.recv(4096)
            except OSError:
                data = b""
            c.close()
            assert data == b"" or data.startswith(b"HTTP/1.1 502"), data
    finally:
        os.killpg(s.shards[0].pid, signal.SIGCONT)


# ---- reloads ---------------------------------------------------------------------

def bulky_policies(n=300, width=60):
    """The default policy and n more with long lists: about 1.4 MiB of
    config in the agent, so that one kept per reload shows in its RSS."""
    pad = ", ".join('"application/x-padding-%02d-%s"' % (i, "x" * 24) for i in range(width))
    return DEFAULT_POLICIES + "".join("  p%d: { content_type = [%s]; };\n" % (i, pad)
                                      for i in range(n))


@test
def test_reloads_free_old_configurations(procs):
    """SIGHUP after SIGHUP: each older generation is freed as soon as every
    worker and the admin endpoint use the newer one (configs_held back to 1,
    a debug line per generation freed), and the agent's RSS does not grow
    with the number of reloads."""
    s = Stack(procs, policies=bulky_policies(), log_level="debug")
    assert s.generation() == (1, 1, 1), s.generation()
    s.wait_cached("/text")
    # The allocator's high-water mark: a config parsed while another is in use.
    for _ in range(3):
        s.reload()
    wait_for(lambda: s.generation()[2] == 1, timeout=10, what="one generation held")
    rss0 = proc_status_kb(s.agent.pid, "VmRSS")
    for _ in range(20):
        n = s.reload()
        assert status(s.get("/text")) == "Hit"
        wait_for(lambda: s.generation() == (n, n, 1), timeout=10,
                 what="generation %d alone in memory" % n)
    rss1 = proc_status_kb(s.agent.pid, "VmRSS")
    log = procs.log_text(s.agent)
    for g in range(1, n):
        assert "configuration generation %d freed" % g in log, g
    assert "configuration generation %d freed" % n not in log
    # 20 configs kept would be 28 MiB.
    assert rss1 - rss0 < 8 * 1024, (rss0, rss1)
    assert s.stop_agent() == 0



@test
def test_reloads_faster_than_the_workers_take_them(procs):
    """SIGHUPs back to back under load and ASan: a worker may skip a
    generation or be handed one while it builds its pool from the last;
    nothing is freed in use, and everything settles on the newest alone."""
    s = Stack(procs, asan=True, threads=4)
    stop = threading.Event()
    errors = []

    def load(k):
        i = k
        while not stop.is_set():
            st, h, b = s.get("/gen?body=b%d" % (i % 30))
            if st != 200:
                errors.append(st)
            i += 1
    ts = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    try:
        for i in range(40):
            os.kill(s.agent.pid, signal.SIGHUP)
            time.sleep(0.005 * (i % 3))     # spacing only: some signals coalesce
        g = wait_for(lambda: (lambda g: g if g[0] == g[1] and g[2] == 1 else None)(
            s.generation()), timeout=20, what="one generation, taken everywhere")
        assert g[1] > 2, g
    finally:
        stop.set()
        for t in ts:
            t.join()
    assert errors == [], errors[:5]
    assert s.stop_agent() == 0

def mc_stat(port, name):
    """One counter of a memcached's "stats"."""
    c = socket.create_connection((HOST, port), timeout=5)
    c.sendall(b"stats\r\n")
    data = b""
    while not data.endswith(b"END\r\n"):
        d = c.recv(65536)
        if not d:
            break
        data += d
    c.close()
    for line in data.decode().splitlines():
        f = line.split()
        if len(f) == 3 and f[1] == name:
            return int(f[2])
    raise AssertionError("no %s in stats: %r" % (name, data))


def loopback_name():
    """A host name that resolves (first) to 127.0.0.1, where memcached
    listens, or None."""
    try:
        ai = socket.getaddrinfo("localhost", 11211, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                                socket.AI_ADDRCONFIG | socket.AI_NUMERICSERV)
    except OSError:
        return None
    return "localhost" if ai and ai[0][4][0] == "127.0.0.1" else None


@test
def test_reload_changes_hosts_while_lookups_continue(procs):
    """Shards added and removed by SIGHUP while clients keep asking, under
    ASan: no request fails, each reload reaches every thread, the new shard
    gets lookups and the removed one none once the generation is taken. A
    host name is looked up once per start or reload, not once per thread."""
    s = Stack(procs, weights=(100, 100), asan=True)
    name = loopback_name()
    named = set()

    def host(port):
        return "%s:%d" % (name if port in named else "127.0.0.1", port)

    def text():
        t = s.config_text()
        for port in named:
            t = t.replace('host = "127.0.0.1"; port = %d;' % port,
                          'host = "%s"; port = %d;' % (name, port))
        return t

    def lookups_of(port, mark):
        return len(re.findall(r"shard %s: resolved to 127\.0\.0\.1" % re.escape(host(port)),
                              procs.log_text(s.agent)[mark:]))

    def shards_in_metrics():
        return sorted(k[len('spoe_cache_memcached_up{shard="'):-2] for k in s.metrics()
                      if k.startswith("spoe_cache_memcached_up{"))

    if name:
        port = s.shards[1].port
        named.add(port)
        s.reconfigure('host = "127.0.0.1"; port = %d;' % port, 'host = "%s"; port = %d;' % (name, port))
        assert lookups_of(port, 0) == 1, procs.log_text(s.agent)
    paths = ["/gen?body=h%d" % i for i in range(40)]
    for p in paths:
        s.wait_cached(p)
    stop = threading.Event()
    seen, errors = {}, []

    def load(k):
        i = k
        while not stop.is_set():
            try:
                st, h, b = s.get(paths[i % len(paths)])
                if st != 200:
                    errors.append(st)
                v = h.get("x-cache-status")
                seen[v] = seen.get(v, 0) + 1
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
            i += 7
    ts = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    try:
        added = procs.memcached()
        s.shards.append(added)
        s.weights.append(100)
        if name:
            named.add(added.port)
        mark = len(procs.log_text(s.agent))
        s.reload(text())
        assert shards_in_metrics() == sorted(host(m.port) for m in s.shards)
        if name:
            assert lookups_of(added.port, mark) == 1, procs.log_text(s.agent)[mark:]
        wait_for(lambda: mc_stat(added.port, "cmd_get") > 0, timeout=10,
                 what="lookups on the added shard")

        gone = s.shards.pop(0)
        s.weights.pop(0)
        s.reload(text())
        assert shards_in_metrics() == sorted(host(m.port) for m in s.shards)
        before = mc_stat(gone.port, "cmd_get")
        n = sum(seen.values())
        wait_for(lambda: sum(seen.values()) > n + 100, timeout=20, what="more lookups")
        assert mc_stat(gone.port, "cmd_get") == before, "a thread still reads the removed shard"
        wait_for(lambda: s.generation()[2] == 1, timeout=10, what="one generation held")
    finally:
        stop.set()
        for t in ts:
            t.join()
    assert errors == [], errors[:5]
    assert set(seen) <= {"Hit", "Miss", "Refresh"}, seen
    assert seen.get("Hit", 0) > 0, seen
    assert s.agent.poll() is None
    assert s.stop_agent() == 0

if __name__ == "__main__":
    main()
