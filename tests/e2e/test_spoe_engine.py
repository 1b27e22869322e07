#!/usr/bin/env python3
"""End to end: the SPOP engine under HAProxy itself (2.6 and 3.x):
concurrency, pipelining, large NOTIFY frames (fragmented by 2.x, refused by
3.x's multiplexer), and an agent that goes away and comes back."""
import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import haproxy_is_mux, haproxy_version, main, skip, test, wait_for  # noqa: E402
from stack import Stack  # noqa: E402


def metric(s, name):
    return s.metrics().get(name, 0)


@test
def test_every_request_gets_its_variables_under_load(procs):
    s = Stack(procs, threads=2)
    paths = ["/gen?body=load%d" % (i % 40) for i in range(600)]
    bad = []
    lock = threading.Lock()

    def one(p):
        st, h, b = s.get(p)
        if st != 200 or h.get("x-cache-status") not in ("Hit", "Miss") or \
                b != p.split("=")[1].encode():
            with lock:
                bad.append((p, st, h.get("x-cache-status"), b[:40]))
    with ThreadPoolExecutor(max_workers=200) as ex:
        list(ex.map(one, paths))
    assert not bad, bad[:5]
    m = s.metrics()
    lookups = sum(m.get('spoe_cache_lookups_total{status="%s"}' % x, 0)
                  for x in ("Hit", "Miss", "Refresh", "Bypass"))
    assert lookups == 600, lookups
    assert m["spoe_cache_spop_frames_total{direction=\"in\"}"] >= 600
    # Connections are reused, not one per lookup: 2.x pipelines many frames
    # over few; 3.1+ (no pipelining in the templates) opens at most one per
    # lookup in flight, here at most the 200 clients.
    conns = m["spoe_cache_spop_connections_total"]
    assert conns < (220 if haproxy_is_mux() else 100), conns
    assert m["spoe_cache_spop_disconnects_total"] == 0


JSON_POLICIES = """
  default: { content_type = ["*"]; };
  json: { request_method = ["POST"]; content_type = ["*"]; vary_body_json_fields = ["q"]; };
"""
BIG_BODY = json.dumps({"q": "big", "pad": "x" * 100000}).encode()
CT_JSON = {"Content-Type": "application/json"}


def small_frames_stack(procs):
    """Body-keyed lookups with an agent max-frame-size far below HAProxy's."""
    return Stack(procs, policies=JSON_POLICIES, policy="json",
                 agent_extra="max_frame_size = 16384;",
                 haproxy_extra_env={"SPOE_CACHE_LOOKUP_BODY": "1"})


@test
def test_large_lookup_is_bypassed_where_haproxy_cannot_fragment(procs):
    # 3.1+ never fragments: a NOTIFY larger than the agent's max-frame-size
    # fails in HAProxy (error 259) before it is sent. The request is
    # proxied and labelled Bypass; small lookups keep working.
    if not haproxy_is_mux():
        skip("HAProxy %d.%d fragments large NOTIFY frames" % haproxy_version())
    s = small_frames_stack(procs)
    for _ in range(3):
        st, h, b = s.request("POST", "/gen?body=frag", CT_JSON, BIG_BODY)
        assert st == 200 and b == b"frag" and h.get("x-cache-status") == "Bypass", h
    assert s.origin_count("/gen?body=frag", "POST") == 3
    small = b'{"q": "small"}'
    assert s.request("POST", "/gen?body=s", CT_JSON, small)[1].get("x-cache-status") == "Miss"
    s.wait_cached("/gen?body=s", method="POST", headers=CT_JSON, body=small)
    assert metric(s, "spoe_cache_spop_disconnects_total") == 0


@test
def test_large_notify_is_fragmented_and_reassembled(procs):
    # A small max-frame-size makes HAProxy 2.6 fragment every large NOTIFY.
    if haproxy_is_mux():
        skip("HAProxy %d.%d never fragments" % haproxy_version())
    s = small_frames_stack(procs)
    body, ct = BIG_BODY, CT_JSON
    # HAProxy 2.6 sizes a NOTIFY with its per-thread frame size, which drops
    # to the negotiated one once an SPOE applet of that thread said HELLO:
    # open them first (small lookups) so the large one is fragmented.
    for i in range(20):
        s.request("POST", "/gen?body=warm", ct, b'{"q": %d}' % i)
    st, h, b = s.request("POST", "/gen?body=frag", ct, body)
    assert st == 200 and h.get("x-cache-status") == "Miss", h
    # The response is small: stored, and the next identical POST is a Hit
    # decided from the reassembled body.
    st, h, b = s.request("POST", "/gen?body=frag", ct, body)
    assert h.get("x-cache-status") == "Hit" and b == b"frag", h
    other = json.dumps({"q": "other", "pad": "x" * 100000}).encode()
    assert s.request("POST", "/gen?body=frag", ct, other)[1].get("x-cache-status") == "Miss"
    # No disconnect/reconnect loop: while one applet streams fragments
    # HAProxy may open a few more, then the same connections carry it all.
    conns = metric(s, "spoe_cache_spop_connections_total")
    for _ in range(20):
        assert s.request("POST", "/gen?body=frag", ct, body)[0] == 200
    assert metric(s, "spoe_cache_spop_connections_total") <= conns + 2
    assert metric(s, "spoe_cache_spop_disconnects_total") == 0
    assert s.origin_count("/gen?body=frag", "POST") == 2
    # Nothing about fragments but the HELLO's frame-size warning.
    assert not [line for line in procs.log_text(s.agent).splitlines()
                if "fragment" in line and "never fragments" not in line]


@test
def test_large_response_store_is_reassembled_or_refused_cleanly(procs):
    s = Stack(procs, agent_extra="max_frame_size = 16384;")
    # Fits in one hit ACK: stored through a fragmented store NOTIFY.
    st, h, b = s.get("/gen?size=12000")
    assert h.get("x-cache-status") == "Miss", h
    st, h, b2 = s.get("/gen?size=12000")
    assert h.get("x-cache-status") == "Hit" and b2 == b
    # Too large to replay in one frame: not stored, never truncated.
    st, h, b = s.get("/gen?size=60000")
    assert st == 200 and len(b) == 60000 and h.get("x-cache-status") == "Bypass", h
    assert metric(s, "spoe_cache_spop_disconnects_total") == 0


@test
def test_agent_restart_under_traffic(procs):
    s = Stack(procs)
    assert s.get("/gen?body=r")[1]["x-cache-status"] == "Miss"
    s.stop_agent()
    for _ in range(5):
        st, h, b = s.get("/gen?body=r")
        assert st == 200 and b == b"r" and h.get("x-cache-status") == "Bypass", h
    s.start_agent()
    # HAProxy reconnects by itself; the entry is still in memcached.
    wait_for(lambda: s.get("/gen?body=r")[1].get("x-cache-status") == "Hit", timeout=20,
             what="hits after the agent restarted")


if __name__ == "__main__":
    main()
