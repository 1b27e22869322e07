#!/usr/bin/env python3
"""End to end: the request flow of MISSION.md section 1 through real HAProxy,
the agent, three memcached shards and the origin."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import HAPROXY, ROOT, main, test  # noqa: E402
from stack import Stack  # noqa: E402


@test
def test_templates_pass_haproxy_check(procs):
    env = dict(os.environ, SPOE_CACHE_HOME=ROOT, SPOE_CACHE_STATS_SOCKET=procs.path("s.sock"))
    # -dW: a warning fails the check too (both templates and the SPOE file
    # they load carry .if version_atleast blocks for 2.x and 3.x).
    for t in ("cache-before-ratelimit.cfg", "cache-after-ratelimit.cfg"):
        p = subprocess.run([HAPROXY, "-c", "-dW", "-f", os.path.join(ROOT, "haproxy-conf", t)],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = p.stdout.decode()
        assert p.returncode == 0 and "WARNING" not in out and "ALERT" not in out, out


@test
def test_miss_then_hit_without_origin(procs):
    s = Stack(procs)
    st, h, b = s.get("/json")
    assert st == 200 and h.get("x-cache-status") == "Miss", h
    key = h["x-cache-key"]
    assert len(key) == 64
    st, h2, b2 = s.get("/json")
    assert st == 200 and h2.get("x-cache-status") == "Hit", h2
    assert b2 == b, (b, b2)
    assert h2["x-cache-key"] == key
    assert h2["content-type"] == "application/json"
    assert int(h2["content-length"]) == len(b)
    assert "age" in h2
    assert s.origin_count("/json") == 1


@test
def test_binary_body_round_trips(procs):
    s = Stack(procs)
    st, h, b = s.get("/binary")
    assert h.get("x-cache-status") == "Miss", h
    assert b == bytes(range(256)) * 2
    st, h, b2 = s.get("/binary")
    assert h.get("x-cache-status") == "Hit", h
    assert b2 == b
    assert h["x-serial"] == "1"


@test
def test_head_served_from_get_entry(procs):
    s = Stack(procs)
    st, h, b = s.get("/text")
    assert h["x-cache-status"] == "Miss"
    st, h2, b2 = s.request("HEAD", "/text")
    assert st == 200 and h2["x-cache-status"] == "Hit", h2
    assert b2 == b""
    assert int(h2["content-length"]) == len(b)
    assert s.origin_count("/text", "HEAD") == 0


@test
def test_set_cookie_is_not_stored(procs):
    s = Stack(procs)
    st, h, b = s.get("/cookie")
    assert h["x-cache-status"] == "Bypass", h
    st, h, b = s.get("/cookie")
    assert h["x-cache-status"] == "Bypass", h
    assert "set-cookie" in h
    assert s.origin_count("/cookie") == 2


@test
def test_post_bypasses(procs):
    s = Stack(procs)
    st, h, b = s.request("POST", "/gen?body=x", body=b"abc")
    assert h["x-cache-status"] == "Bypass", h
    st, h, b = s.request("POST", "/gen?body=x", body=b"abc")
    assert h["x-cache-status"] == "Bypass", h


if __name__ == "__main__":
    main()
