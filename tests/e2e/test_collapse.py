#!/usr/bin/env python3
"""End to end: protecting the origin across the fleet (issue 17), through
real HAProxy nodes sharing one agent and one memcached pool, and the real
origin: collapsed forwarding (one origin request for a herd of misses on
any number of nodes), what waiters do when the winner's response is not
stored or never comes, stale-while-revalidate and stale-if-error (RFC
5861), revalidation with 304 (RFC 9111 4.3) and soft purge.

memcached is the only state the nodes share: the herd is coordinated by
its meta protocol (mg N vivify and its W/Z flags, ms ME for a refresh
lock, md I to mark an entry stale), not by anything in the agent's memory.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import ROOT, main, test, wait_for  # noqa: E402
from stack import Stack  # noqa: E402


def policies(**p):
    base = dict(content_type='["text/plain"]', cache_ttl="300")
    base.update(p)
    return "  default: { %s };\n" % " ".join("%s = %s;" % kv for kv in base.items())


def herd(s, ports, path, per_node, headers=None):
    """per_node concurrent GETs of path on each port, released at once:
    [(status, headers, body)]."""
    n = per_node * len(ports)
    out = [None] * n
    # one Host on every node, so that they share keys
    headers = dict({"Host": "www.example.com"}, **(headers or {}))
    gate = threading.Barrier(n)

    def one(i):
        gate.wait()
        try:
            out[i] = s.request("GET", path, headers, port=ports[i % len(ports)])
        except Exception as e:  # noqa: BLE001 - recorded, asserted below
            out[i] = (0, {}, repr(e).encode())
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def get(s, path, port=None, headers=None):
    return s.request("GET", path, dict({"Host": "www.example.com"}, **(headers or {})), port=port)


def metric(s, name):
    return s.metrics().get(name, 0)


@test
def test_herd_on_three_nodes_reaches_the_origin_once(procs):
    s = Stack(procs, policies=policies())
    ports = [s.http_port, s.node()[0], s.node()[0]]
    path = "/gen?delay=300&serial=1"
    res = herd(s, ports, path, 20)
    assert all(st == 200 for st, _, _ in res), [(st, b[:80]) for st, _, b in res if st != 200]
    bodies = set(b for _, _, b in res)
    assert len(bodies) == 1, bodies
    assert s.origin_count(path) == 1, s.origin_count(path)
    statuses = [h.get("x-cache-status") for _, h, _ in res]
    assert statuses.count("Miss") == 1, statuses
    # the others waited in the agent and were answered from the entry
    assert metric(s, "spoe_cache_collapsed_waits_total") >= 50
    assert metric(s, 'spoe_cache_collapsed_outcomes_total{outcome="hit"}') >= 50
    assert metric(s, 'spoe_cache_collapsed_outcomes_total{outcome="timeout"}') == 0


@test
def test_not_storable_winner_sends_waiters_to_the_origin(procs):
    s = Stack(procs, policies=policies())
    ports = [s.http_port, s.node()[0]]
    path = "/gen?delay=300&serial=1&status=500"
    res = herd(s, ports, path, 10)
    # no error caused by the wait: every client gets what the origin says
    assert all(st == 500 for st, _, _ in res), [(st, b[:80]) for st, _, b in res]
    assert metric(s, "spoe_cache_pass_markers_total") == 1
    waits = metric(s, "spoe_cache_collapsed_waits_total")
    assert metric(s, 'spoe_cache_collapsed_outcomes_total{outcome="origin"}') == waits
    # remembered: the next requests go straight to the origin, no waiting
    for _ in range(5):
        st, h, _ = get(s, path)
        assert st == 500 and h.get("x-cache-status") == "Bypass", (st, h)
    assert metric(s, "spoe_cache_collapsed_waits_total") == waits


@test
def test_waiters_give_up_after_collapse_wait(procs):
    # The winner's response takes longer than the waiters wait: they go
    # to the origin themselves after collapse_wait (and store, as a miss).
    s = Stack(procs, policies=policies(collapse_wait="200"))
    path = "/gen?delay=1500&serial=1"
    res = herd(s, [s.http_port], path, 6)
    assert all(st == 200 for st, _, _ in res), [(st, b[:80]) for st, _, b in res]
    assert metric(s, 'spoe_cache_collapsed_outcomes_total{outcome="timeout"}') >= 1
    assert s.origin_count(path) >= 2


@test
def test_collapse_wait_zero_turns_it_off(procs):
    s = Stack(procs, policies=policies(collapse_wait="0"))
    path = "/gen?delay=300&serial=1"
    res = herd(s, [s.http_port], path, 5)
    assert all(st == 200 for st, _, _ in res)
    assert s.origin_count(path) == 5
    assert metric(s, "spoe_cache_collapsed_waits_total") == 0


@test
def test_stale_while_revalidate_serves_stale_while_one_refreshes(procs):
    # RFC 5861 3: inside the window a stale entry is served at once (with
    # its true Age) while exactly one request refreshes it.
    s = Stack(procs, policies=policies(cache_control="true"))
    ports = [s.http_port, s.node()[0]]
    path = "/gen?serial=1&delay=400&h=Cache-Control:max-age=1,stale-while-revalidate=60"
    st, h, first = get(s, path)
    assert st == 200 and h["x-cache-status"] == "Miss", h
    wait_for(lambda: get(s, path)[1].get("x-cache-status") == "Hit", what="a Hit")
    time.sleep(2.2)
    res = herd(s, ports, path, 8)
    herd_done = time.time()
    statuses = [h.get("x-cache-status") for _, h, _ in res]
    assert statuses.count("Refresh") == 1, statuses
    stale = [(h, b) for _, h, b in res if h.get("x-cache-status") == "Hit"]
    assert len(stale) == len(res) - 1, statuses
    assert all(b == first and int(h["age"]) >= 2 for h, b in stale), \
        [(h.get("age"), b) for h, b in stale]
    assert s.origin_count(path) == 2
    assert metric(s, 'spoe_cache_stale_served_total{reason="while_revalidate"}') == len(stale)
    # the refresh is what the next request gets (fresh, or, on a machine
    # slow enough that its 1 s went by, stale while another refresh runs:
    # either way not the first body, and no older than the refresh)
    st, h, body = get(s, path)
    since = time.time() - herd_done
    assert h["x-cache-status"] in ("Hit", "Refresh") and body != first, (h, body)
    assert h["x-cache-status"] != "Hit" or int(h["age"]) <= since + 1, (h, since)


@test
def test_soft_purge_revalidates_once_and_serves_the_rest(procs):
    s = Stack(procs, policies=policies())
    path = "/gen?serial=1&delay=400"
    st, h, first = get(s, path)
    key = h["x-cache-key"]
    s.wait_cached(path, {"Host": "www.example.com"})
    rc, out, err = s.ctl("purge", "--soft", key)
    assert rc == 0 and "marked stale" in out, (rc, out, err)
    res = herd(s, [s.http_port], path, 6)
    statuses = [h.get("x-cache-status") for _, h, _ in res]
    assert statuses.count("Refresh") == 1, statuses
    assert all(b == first for _, h, b in res if h.get("x-cache-status") == "Hit")
    assert s.origin_count(path) == 2
    assert metric(s, 'spoe_cache_stale_served_total{reason="soft_purge"}') == 5
    st, h, body = get(s, path)
    assert h["x-cache-status"] == "Hit" and body != first, (h, body)
    # the admin endpoint does the same
    st, _, out = s.request("DELETE", "/cache/%s?soft=1" % key, port=s.admin_port)
    assert st == 200, out
    st, h, _ = get(s, path)
    assert h["x-cache-status"] == "Refresh", h
    # a plain purge still deletes
    rc, out, err = s.ctl("purge", key)
    assert rc == 0 and "purged" in out
    st, h, _ = get(s, path)
    assert h["x-cache-status"] == "Miss", h


@test
def test_revalidation_with_304_updates_the_entry(procs):
    # RFC 9111 4.3.1: a stale entry with a validator is refreshed with a
    # conditional request; 4.3.4 and 3.2: the 304 updates the stored
    # fields and renews freshness, and the client, who asked
    # unconditionally, gets the whole stored response.
    s = Stack(procs, policies=policies(cache_control="true"))
    path = '/gen?serial=1&etag="v1"&h=Cache-Control:max-age=1'
    st, h, first = get(s, path)
    assert st == 200 and h["x-cache-status"] == "Miss" and h["etag"] == '"v1"', h
    time.sleep(2.2)
    st, h, body = get(s, path)
    assert st == 200 and body == first, (st, h, body)
    assert h["x-cache-status"] == "Refresh" and "x-revalidated" in h, h
    assert int(h["content-length"]) == len(first)
    assert metric(s, "spoe_cache_revalidations_total") == 1
    st, h2, body = get(s, path)
    assert h2["x-cache-status"] == "Hit" and body == first, h2
    assert h2["x-revalidated"] == h["x-revalidated"] and int(h2["age"]) <= 1, h2
    assert s.origin_count(path) == 2
    # a client's own validator still gets its 304 from the cache
    st, h, body = get(s, path, headers={"If-None-Match": '"v1"'})
    assert st == 304 and body == b"" and h["x-cache-status"] == "Hit", (st, h)


@test
def test_stale_if_error_stands_in_for_a_failing_origin(procs):
    # RFC 5861 4: inside the stale-if-error window an origin error (500,
    # 502, 503, 504) is answered with the stale entry; outside it, or
    # without the directive, the client sees the error.
    s = Stack(procs, policies=policies(cache_control="true"))
    sie = "/gen?failable=1&serial=1&h=Cache-Control:max-age=1,stale-if-error=60"
    plain = "/gen?failable=1&serial=1&h=Cache-Control:max-age=1"
    _, _, first = get(s, sie)
    get(s, plain)
    time.sleep(2.2)
    st, _, _ = s.request("POST", "/__fail?status=503", port=s.origin_port)
    assert st == 200
    try:
        for status in (503, 500, 502, 504):
            s.request("POST", "/__fail?status=%d" % status, port=s.origin_port)
            st, h, body = get(s, sie)
            assert st == 200 and body == first and h["x-cache-status"] == "Hit", (status, st, h)
            assert int(h["age"]) >= 2, h
            st, h, body = get(s, plain)
            assert st == status, (status, st, h)
        assert metric(s, 'spoe_cache_stale_served_total{reason="if_error"}') == 4
        # a 404 is an answer, not an error: no stale entry stands in for it
        s.request("POST", "/__fail?status=404", port=s.origin_port)
        st, h, body = get(s, sie)
        assert st == 404, (st, h)
    finally:
        s.request("POST", "/__fail?status=0", port=s.origin_port)


@test
def test_stale_if_error_stands_in_for_an_origin_that_times_out(procs):
    # RFC 5861 4 for an origin that does not answer within timeout server:
    # HAProxy's own 504 runs no response rule, but the stale entry's
    # request went through the relay, so its 504 reaches the store step
    # and the entry answers. Without a window, the client gets the 504.
    # A slow answer inside the timeout is stored as usual.
    s = Stack(procs, policies=policies(cache_control="true"),
              haproxy_extra_env={"SPOE_CACHE_ORIGIN_TIMEOUT": "1s"})
    sie = "/gen?failable=1&serial=1&h=Cache-Control:max-age=1,stale-if-error=60"
    plain = "/gen?failable=1&serial=1&h=Cache-Control:max-age=1"
    _, _, first = get(s, sie)
    get(s, plain)
    time.sleep(2.2)
    s.request("POST", "/__fail?stall=2500", port=s.origin_port)
    try:
        st, h, body = get(s, sie)
        assert st == 200 and body == first and h["x-cache-status"] == "Hit", (st, h, body)
        assert int(h["age"]) >= 2, h
        st, h, _ = get(s, plain)
        assert st == 504, (st, h)
        assert metric(s, 'spoe_cache_stale_served_total{reason="if_error"}') == 1
        s.request("POST", "/__fail?stall=500", port=s.origin_port)
        st, h, body = get(s, sie)
        assert st == 200 and body != first and h["x-cache-status"] == "Refresh", (st, h, body)
        st, h, again = get(s, sie)
        assert again == body and h["x-cache-status"] == "Hit", (h, again)
    finally:
        s.request("POST", "/__fail?stall=0", port=s.origin_port)


@test
def test_origin_stopped_entirely_stored_urls_keep_being_served(procs):
    # RFC 5861 4 when the origin cannot be reached at all: every stored
    # URL inside its stale-if-error window keeps being answered (its
    # request goes through the template's relay, whose 503 the store step
    # sees); the others get HAProxy's 503; once the origin is back,
    # entries are refreshed from it again.
    s = Stack(procs, policies=policies(cache_control="true"))
    sie = ["/gen?serial=1&n=%d&h=Cache-Control:max-age=1,stale-if-error=600" % i for i in range(5)]
    plain = "/gen?serial=1&h=Cache-Control:max-age=1"
    first = {p: get(s, p)[2] for p in sie}
    get(s, plain)
    time.sleep(2.2)
    procs.stop(s.origin)
    for _ in range(3):
        for p in sie:
            st, h, body = get(s, p)
            assert st == 200 and body == first[p] and h["x-cache-status"] == "Hit", (p, st, h)
            assert int(h["age"]) >= 2, h
    st, h, _ = get(s, plain)
    assert st == 503, (st, h)
    assert metric(s, 'spoe_cache_stale_served_total{reason="if_error"}') == 15
    s.origin = procs.spawn([sys.executable, os.path.join(ROOT, "tests/lib/origin.py"),
                            str(s.origin_port)], name="origin")
    wait_for(lambda: get(s, sie[0])[1].get("x-cache-status") == "Refresh", timeout=15,
             step=0.1, what="a refresh from the origin once it is back")


if __name__ == "__main__":
    main()
