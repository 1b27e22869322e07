#!/usr/bin/env python3
"""End to end: the node-local tier (L1) of issue 18, through real HAProxy
(the shipped template, L1 on as it ships), the agent, memcached and the
origin.

The L1 is HAProxy's own cache, shared by its threads; its lifetime is the
template's SPOE_CACHE_L1_TTL (Stack(l1_ttl=N)). Each check warms a URL
until HAProxy answers it from the L1 (X-Cache-Tier: L1). What proves an
answer came from the L1 and not the agent: the agent's lookup counters do
not move.
"""
import http.client
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import HOST, main, test, wait_for  # noqa: E402
from stack import Stack, haproxy_cmd, talk  # noqa: E402


def policies(**p):
    """The default test policy, with these settings (and extra policies as
    name=dict(...) when the value is a dict)."""
    base = dict(content_type='["text/plain", "application/json", "application/octet-stream"]',
                cache_ttl="300")
    extra = {k: v for k, v in p.items() if isinstance(v, dict)}
    base.update({k: v for k, v in p.items() if not isinstance(v, dict)})
    out = ["  default: { %s };" % " ".join("%s = %s;" % kv for kv in base.items())]
    for name, settings in extra.items():
        s = dict(content_type='["text/plain", "application/octet-stream"]', cache_ttl="300")
        s.update(settings)
        out.append("  %s: { %s };" % (name, " ".join("%s = %s;" % kv for kv in s.items())))
    return "\n".join(out) + "\n"


class Client:
    """One keep-alive connection."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)

    def req(self, path, headers=None, method="GET"):
        """(status, headers lowercased, body, time the request was sent).
        One Host for every node, so that they share keys."""
        h = {"Host": "www.example.com"}
        h.update(headers or {})
        sent = time.time()
        self.conn.request(method, path, headers=h)
        r = self.conn.getresponse()
        body = r.read()
        h = {}
        for k, v in r.getheaders():
            k = k.lower()
            h[k] = v if k not in h else h[k] + ", " + v
        return r.status, h, body, sent

    def warm(self, path, headers=None):
        """Request until HAProxy answers from its L1; that answer."""
        def l1():
            st, h, b, _ = self.req(path, headers)
            return (st, h, b) if h.get("x-cache-tier") == "L1" else None
        return wait_for(l1, timeout=15, step=0.02, what="an L1 hit for %s" % path)

    def close(self):
        self.conn.close()


def l1_grants(s):
    return s.metrics().get("spoe_cache_l1_grants_total", 0)


def agent_lookups(s):
    m = s.metrics()
    return sum(v for k, v in m.items() if k.startswith("spoe_cache_lookups_total"))


@test
def test_l1_hits_never_ask_the_agent(procs):
    s = Stack(procs, l1_ttl=30, policies=policies(l1_ttl="30"))
    c = Client(s.http_port)
    st, h, b, _ = c.req("/text")
    assert h["x-cache-status"] == "Miss", h
    st, h2, b2, _ = c.req("/text")
    assert h2["x-cache-status"] == "Hit" and h2["x-cache-tier"] == "L2", h2
    st, h3, b3 = c.warm("/text")
    before = agent_lookups(s)
    for _ in range(50):
        st, h4, b4, _ = c.req("/text")
        assert st == 200 and h4["x-cache-status"] == "Hit" and h4["x-cache-tier"] == "L1", h4
        assert b4 == b, (b4, b)
    # HEAD answered from the L1 too: the GET's headers, no body
    st, hh, bh, _ = c.req("/text", method="HEAD")
    assert st == 200 and hh["x-cache-tier"] == "L1" and bh == b"", (hh, bh)
    assert hh["content-length"] == str(len(b)), hh
    assert agent_lookups(s) == before, (agent_lookups(s), before)
    assert s.origin_count("/text") == 1
    # the same answer as the agent's, but for Age and the tier
    same = {k: v for k, v in h4.items() if k not in ("age", "x-cache-tier", "date")}
    want = {k: v for k, v in h2.items() if k not in ("age", "x-cache-tier", "date")}
    assert same == want, (same, want)
    # a binary body of almost a whole buffer, byte for byte
    big = "/gen?ct=application/octet-stream&size=200000"
    st, h, b, _ = c.req(big)
    assert h["x-cache-status"] == "Miss" and len(b) == 200000, (h, len(b))
    st, hb, bb = c.warm(big)
    assert bb == b and hb["content-length"] == "200000", hb
    c.close()


@test
def test_l1_off_with_one_setting(procs):
    # SPOE_CACHE_L1_TTL=0 (the template's presetenv line, or the
    # environment): no L1 lookup, no copy kept.
    s = Stack(procs, l1_ttl=0, policies=policies(l1_ttl="30"))
    c = Client(s.http_port)
    c.req("/text")
    for _ in range(30):
        st, h, b, _ = c.req("/text")
        assert h["x-cache-status"] == "Hit" and h["x-cache-tier"] == "L2", h
    c.close()
    # and the agent, told so by the lookup's l1life, grants (tracks,
    # checks) nothing
    assert l1_grants(s) == 0, s.metrics()
    # and off is off: the template's .if blocks leave the cache section
    # out (HAProxy holds no memory for it), where a node with it on has one
    off = s.haproxy_cmd("show cache")
    assert "spoe-cache-l1" not in off, off
    port2, _ = s.node(SPOE_CACHE_L1_TTL="30")
    on = haproxy_cmd(s.procs.path("haproxy-%d.sock" % port2), "show cache")
    assert "spoe-cache-l1" in on, on


@test
def test_l1_grants_only_what_the_l1_keeps(procs):
    # cache-store keeps only grants of the L1's whole lifetime (here 30 s):
    # a policy's l1_ttl below it, or an entry fresh for less, is no grant
    # at all (nothing tracked, nothing checked every second)
    s = Stack(procs, l1_ttl=30, policies=policies(
        l1_ttl="20", short=dict(l1_ttl="60", cache_ttl="20"), long=dict(l1_ttl="60")))
    short, _ = s.node(SPOE_CACHE_POLICY="short")
    long_, _ = s.node(SPOE_CACHE_POLICY="long")
    for port in (s.http_port, short):
        c = Client(port)
        c.req("/text")
        for _ in range(10):
            st, h, b, _ = c.req("/text")
            assert h["x-cache-status"] == "Hit" and h["x-cache-tier"] == "L2", (port, h)
        c.close()
    assert l1_grants(s) == 0, s.metrics()
    # a policy and an entry that allow the whole lifetime: granted
    c = Client(long_)
    c.req("/text")
    c.warm("/text")
    assert l1_grants(s) >= 1, s.metrics()
    c.close()


@test
def test_l1_age(procs):
    s = Stack(procs, l1_ttl=30, policies=policies(l1_ttl="30"))
    port2, _ = s.node(SPOE_CACHE_L1_TTL="0")
    c, c2 = Client(s.http_port), Client(port2)
    c.req("/text")
    st, h, b = c.warm("/text")
    a0 = int(h["age"])
    time.sleep(2.2)
    st, h1, b1, _ = c.req("/text")
    assert h1["x-cache-tier"] == "L1", h1
    # the agent's Age for the same entry, through a node without L1
    st, h2, b2, _ = c2.req("/text")
    assert h2["x-cache-tier"] == "L2" and h2["x-cache-status"] == "Hit", h2
    assert int(h1["age"]) >= a0 + 2, (a0, h1["age"])
    assert abs(int(h1["age"]) - int(h2["age"])) <= 1, (h1["age"], h2["age"])
    c.close()
    c2.close()


@test
def test_l1_age_of_entries_kept_when_already_old(procs):
    # A 1 s L1: copies are kept again and again, the later ones of an entry
    # already seconds old. With a max-age HAProxy's cache keeps the Age
    # itself (the fast form); without, the copy is marked.
    s = Stack(procs, l1_ttl=1, policies=policies(l1_ttl="1"))
    port2, _ = s.node(SPOE_CACHE_L1_TTL="0")
    c, c2 = Client(s.http_port), Client(port2)
    for path in ("/gen?body=old&h=Cache-Control:max-age=300", "/gen?body=old2"):
        c.req(path)
        time.sleep(2.2)
        st, h, b, _ = c.req(path)
        while h["x-cache-tier"] != "L2":    # a copy kept before the sleep
            st, h, b, _ = c.req(path)
        assert int(h["age"]) >= 2, (path, h)     # the answer the L1 kept
        st, h1, b1 = c.warm(path)
        st, h2, b2, _ = c2.req(path)
        assert h2["x-cache-tier"] == "L2", h2
        assert int(h1["age"]) >= 2 and abs(int(h1["age"]) - int(h2["age"])) <= 1, (path, h1, h2)
        assert "x-spoe-cache-l1" not in h1 and "expires" not in h1, h1
    c.close()
    c2.close()


@test
def test_l1_never_answers_what_the_agent_would_not(procs):
    s = Stack(procs, l1_ttl=5, policies=policies(
        l1_ttl="30", cache_control="true",
        vh=dict(l1_ttl="30", vary_headers='["Accept-Language"]'),
        off=dict(l1_ttl="0"),
        rt=dict(l1_ttl="30", key_routing_headers='["X-Tenant"]')))
    # With cache_control the origin must say how long: /max-age is fresh
    # for 30 s (a response without freshness is never a hit, RFC 9111 4.2.2).
    c = Client(s.http_port)
    c.req("/max-age")
    st, h, b = c.warm("/max-age")
    for hdrs in ({"Authorization": "Basic eDp5"}, {"Cache-Control": "max-age=0"},
                 {"Cache-Control": "max-stale=5"}, {"Pragma": "no-cache"},
                 {"If-None-Match": '"x"'}, {"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"},
                 {"Range": "bytes=0-1"}, {"X-Forwarded-Host": "evil.example"},
                 {"X-Original-URL": "/admin"}, {"X-Proxy-Cache-Memcached-Force": "true"}):
        st, h2, b2, _ = c.req("/max-age", hdrs)
        assert h2.get("x-cache-tier") != "L1", (hdrs, h2)
    # the key: another Host, another query, another case of the path
    for path, hdrs in (("/max-age", {"Host": "other.example"}), ("/max-age?a=1", None),
                       ("/Max-age", None)):
        st, h2, b2, _ = c.req(path, hdrs)
        assert h2.get("x-cache-tier") != "L1", (path, hdrs, h2)
    # an absolute-form URL hashes like the origin-form one in HAProxy's
    # cache; the agent keys its scheme
    got = talk((HOST, s.http_port), b"GET https://www.example.com/max-age HTTP/1.1\r\n"
               b"Host: www.example.com\r\nConnection: close\r\n\r\n")
    assert b"x-cache-tier: L1" not in got.lower(), got
    c.close()

    # A routing header the policy keys on (one the template's expression
    # does not know): the agent grants nothing, so the variant it asked for
    # never reaches the L1 under the plain URL.
    port_rt, _ = s.node(SPOE_CACHE_POLICY="rt")
    c = Client(port_rt)
    p = "/gen?serial=1&h=Cache-Control:max-age=60"
    for _ in range(5):
        st, hv, bv, _ = c.req(p, {"X-Tenant": "evil"})
    st, h2, b2, _ = c.req(p)
    assert b2 != bv and h2.get("x-cache-tier") != "L1", (h2, b2, bv)
    st, h2, b2 = c.warm(p)
    assert b2 != bv, (b2, bv)
    c.close()

    # Responses with Vary are never kept, nor hits of a policy keyed on
    # headers, nor of a policy with l1_ttl = 0.
    port_vh, _ = s.node(SPOE_CACHE_POLICY="vh")
    port_off, _ = s.node(SPOE_CACHE_POLICY="off")
    for port, path in ((s.http_port, "/gen?body=v&h=Vary:Accept-Language&h=Cache-Control:max-age=60"),
                       (port_vh, "/text"), (port_off, "/text")):
        c = Client(port)
        hits = 0
        for _ in range(30):
            st, h2, b2, _ = c.req(path, {"Accept-Language": "fr"})
            assert h2.get("x-cache-tier") != "L1", (port, path, h2)
            hits += h2.get("x-cache-status") == "Hit"
        assert hits >= 28, (port, path, hits)   # the agent does serve them
        c.close()


@test
def test_l1_copies_turn_back_into_the_agents_answer(procs):
    s = Stack(procs, l1_ttl=30, policies=policies(l1_ttl="30"))
    c = Client(s.http_port)
    # No validator and no lifetime (the policy's cache_ttl alone): the
    # agent adds an Expires for HAProxy's cache, and no answer shows it.
    c.req("/text")
    st, h, b = c.warm("/text")
    assert "expires" not in h and "x-spoe-cache-l1" not in h, h
    # The origin's own Expires stays, on the L2 hit and the L1 hits.
    exp = "Sun, 06 Nov 2039 08:49:37 GMT"
    p = "/gen?body=e&h=Expires:" + exp.replace(" ", "%20")
    c.req(p)
    st, h2, b2, _ = c.req(p)
    assert h2["x-cache-tier"] == "L2" and h2["expires"] == exp, h2
    st, h, b = c.warm(p)
    assert h["expires"] == exp and "x-spoe-cache-l1" not in h, h
    # An origin cannot forge the agent's note: the agent does not
    # store it, so it moves neither Age nor Expires.
    p = "/gen?body=f&h=X-Spoe-Cache-L1:9999;e&h=Expires:" + exp.replace(" ", "%20")
    c.req(p)
    st, h, b = c.warm(p)
    assert int(h["age"]) < 30 and h["expires"] == exp and "x-spoe-cache-l1" not in h, h
    # Nor its tier: X-Cache-Tier is the agent's, on a miss as on a hit.
    p = "/gen?body=t&h=X-Cache-Tier:L1"
    st, h, b, _ = c.req(p)
    assert h["x-cache-status"] == "Miss" and "x-cache-tier" not in h, h
    st, h, b, _ = c.req(p)
    assert h["x-cache-status"] == "Hit" and h["x-cache-tier"] == "L2", h
    st, h, b = c.warm(p)
    assert h["x-cache-tier"] == "L1", h
    c.close()


def poll_until_new(clients, path, old_body, what):
    """Request path on every client in turn until none answers old_body;
    for each, the send time of its last old answer (None: never)."""
    last_old = [None] * len(clients)
    done = [False] * len(clients)

    def new():
        for i, c in enumerate(clients):
            if done[i]:
                continue
            st, h, b, sent = c.req(path)
            if b == old_body:
                last_old[i] = sent
            else:
                done[i] = True
        return all(done)
    wait_for(new, timeout=30, step=0.02, what=what)
    return last_old


def change(s, event, path, key):
    """Make the entry of path (key) change by event: purge (the CLI),
    flush (the admin endpoint) or store (deleted, then stored again by the
    next Miss, through a request the L1 does not answer)."""
    if event == "flush":
        st, _, out = s.request("DELETE", "/cache", s.admin_headers(), port=s.admin_port)
        assert st == 200, out
        return
    rc, out, err = s.ctl("purge", key)
    assert rc == 0, (out, err)
    if event == "store":
        c = Client(s.http_port)
        wait_for(lambda: c.req(path, {"Pragma": "x"})[1]["x-cache-status"] == "Miss",
                 timeout=10, what="a Miss that stores a newer entry")
        c.close()


@test
def test_l1_bound_after_purge_flush_and_store_on_two_nodes(procs):
    ttl = 2
    s = Stack(procs, l1_ttl=ttl, policies=policies(l1_ttl=str(ttl)))
    port2, _ = s.node()
    for event in ("purge", "flush", "store"):
        # A path of its own per event: after a withdrawal a node skips its
        # L1 for that base until the old copy would have expired, so on a
        # shared path one node could take that long to warm that the other
        # one's copy had expired by the event (and proved nothing).
        path = "/gen/%s?serial=1" % event
        a, b = Client(s.http_port), Client(port2)
        st, h, old = a.warm(path)
        key = h["x-cache-key"]
        st, h, body = b.warm(path)
        assert body == old, (body, old)
        t0 = time.time()
        change(s, event, path, key)
        last = poll_until_new([a, b], path, old, "the new state on both nodes")
        for name, last_old in zip(("node 1", "node 2"), last):
            # the L1 did answer after the event (else this proves nothing) ...
            assert last_old is not None and last_old >= t0, (event, name)
            # ... and no request that reached HAProxy l1_ttl after the
            # event got the old state (0.1 s: the clock HAProxy reads once
            # per wake-up, and the ACK that carried the hit)
            assert last_old < t0 + ttl + 0.1, (event, name, last_old - t0)
        a.close()
        b.close()


@test
def test_l1_never_outlives_freshness(procs):
    # The L1 keeps copies 1 s: the policy allows 60, the entry's freshness
    # (3 s) allows them only while at least 1 s of it is left.
    s = Stack(procs, l1_ttl=1, policies=policies(l1_ttl="60", cache_ttl="3"))
    c = Client(s.http_port)
    path = "/gen?serial=1"
    st, h, body, sent = c.req(path)
    assert h["x-cache-status"] == "Miss", h
    stored_by = time.time()     # the entry was stored before its Miss came back
    st, h, old = c.warm(path)
    assert old == body
    (last_old,) = poll_until_new([c], path, old, "the entry to go stale")
    assert last_old is not None
    assert last_old < stored_by + 3 + 0.1, last_old - stored_by
    c.close()


# The feed's latency (tests/e2e/test_l1.py's bound for it): the agent
# re-reads its grants' CAS every second and HAProxy polls every 500 ms, so
# a change reaches every node within about 2-3 s; 15 s is well inside
# the 60 s lifetime, so what ends the old answers here is the feed, not
# the copies' expiry.
FEED_BOUND = 15


def feed_stack(procs, **kw):
    """A stack with the L1 at its template default (60 s; the policy's
    l1_ttl too) and its feed."""
    return Stack(procs, l1_ttl=60, policies=policies(l1_ttl="60"), **kw)


def l1_copies(sock):
    """HAProxy's "show cache": {hash: (entry address, expire in s)}."""
    out = {}
    for line in haproxy_cmd(sock, "show cache").splitlines():
        f = line.split()
        if len(f) > 1 and f[1].startswith("hash:"):
            exp = [x for x in f if x.startswith("expire:")]
            out[f[1]] = (f[0], int(exp[0].split(":")[1]) if exp else 0)
    return out


def new_copy(before, after):
    """The one copy in after that is not in before: (hash, address)."""
    new = [(k, v[0]) for k, v in after.items() if k not in before]
    assert len(new) == 1, (before, after)
    return new[0]


def answers_from_l1(c, path, body, n=5):
    """The L1 answers path with body, n times running."""
    for _ in range(n):
        st, h, b, _ = c.req(path)
        assert h.get("x-cache-tier") == "L1" and b == body, (path, h, b, body)


@test
def test_l1_feed_purge_flush_and_store_on_two_nodes_and_two_agents(procs):
    # Node 1 on agent 1, node 2 on agent 2: two agents on the same
    # memcached shards, each following only the copies it granted itself,
    # and each HAProxy polling its own agent's feed (with the admin token).
    s = feed_stack(procs, admin_token="feed-s3cret")
    a2_port, a2_admin, _ = s.second_agent()
    port2, _ = s.node(SPOE_CACHE_AGENT="%s:%d" % (HOST, a2_port),
                      SPOE_CACHE_ADMIN="%s:%d" % (HOST, a2_admin))
    sock2 = s.procs.path("haproxy-%d.sock" % port2)
    a, b = Client(s.http_port), Client(port2)
    # Another base, warmed on node 1: only the bases that changed are
    # skipped, so a purge elsewhere leaves it in the L1.
    other = "/gen/other?serial=1"
    st, h, other_body = a.warm(other)
    for event in ("purge", "store", "flush"):
        path = "/gen/%s?serial=1" % event  # a base of its own: the last event's
        before = (l1_copies(s.stats_sock), l1_copies(sock2))  # skip is still on for its base
        st, h, old = a.warm(path)
        key = h["x-cache-key"]
        st, h, body = b.warm(path)
        assert body == old, (body, old)
        copy_a, copy_b = (new_copy(b4, l1_copies(sock)) for b4, sock in
                          zip(before, (s.stats_sock, sock2)))
        # the L1 still answers it on both nodes just before the event
        answers_from_l1(a, path, old)
        answers_from_l1(b, path, old)
        t0 = time.time()
        change(s, event, path, key)
        last = poll_until_new([a, b], path, old, "the new state on both nodes")
        done = time.time()
        for name, last_old in zip(("node 1", "node 2"), last):
            assert last_old is None or last_old < t0 + FEED_BOUND, (event, name, last_old - t0)
        assert done < t0 + FEED_BOUND, (event, done - t0)
        # Skipped, not bypassed: the hits that went to the agent replaced
        # the stale copy (cache-store keyed them, see "Pragma" in the
        # template), so once the skip ends the L1 answers the new state.
        for c, sock, (h_, addr) in ((a, s.stats_sock, copy_a), (b, sock2, copy_b)):
            wait_for(lambda: c.req(path) and l1_copies(sock).get(h_, ("", 0))[0] != addr,
                     timeout=10, what="cache-store to replace the stale copy")
            assert l1_copies(sock)[h_][1] >= 55, l1_copies(sock)[h_]
        # and the old state never comes back
        deadline = time.time() + 2
        while time.time() < deadline:
            for c in (a, b):
                st, h, got, _ = c.req(path)
                assert got != old and st == 200, (event, h, got)
        if event == "purge":
            answers_from_l1(a, other, other_body)
    a.close()
    b.close()


@test
def test_l1_feed_down_skips_every_copy(procs):
    s = feed_stack(procs, admin_token="t0ken")
    c = Client(s.http_port)
    path = "/gen?serial=1"
    st, h, old = c.warm(path)
    answers_from_l1(c, path, old)
    # The agent stops: no feed, so 3 s later (and a poll) the L1 answers
    # nothing; without the feed it would answer the copy 60 s.
    s.stop_agent()
    t0 = time.time()
    last_l1 = [None]

    def off():
        st, h, b, sent = c.req(path)
        if h.get("x-cache-tier") == "L1":
            last_l1[0] = sent
            return False
        return True
    wait_for(off, timeout=15, step=0.05, what="the L1 to stop answering")
    assert last_l1[0] is not None, "the L1 never answered after the agent stopped"
    assert last_l1[0] < t0 + 3 + 0.5 + 1.5, last_l1[0] - t0
    for _ in range(20):
        st, h, b, _ = c.req(path)
        assert h.get("x-cache-tier") != "L1", h
    # Back, as a new process (another epoch): the copies it granted are
    # no longer followed, so the L1 keeps skipping everything (its whole
    # lifetime) although the agent answers hits again.
    s.start_agent()
    wait_for(s.agent_seen_up, timeout=15, step=0.1, what="HAProxy to see the agent up")
    wait_for(lambda: c.req(path)[1].get("x-cache-status") == "Hit", timeout=15,
             what="a Hit from the agent again")
    t1 = time.time()
    while time.time() < t1 + 4:
        st, h, b, _ = c.req(path)
        assert h.get("x-cache-tier") == "L2", h
        time.sleep(0.05)
    c.close()

    # A node polling with the wrong token is never told anything: 3 s
    # after it starts, its L1 answers nothing.
    port3, _ = s.node(SPOE_CACHE_ADMIN_TOKEN="wrong")
    started = time.time()
    c3 = Client(port3)
    path = "/gen/token?serial=1"
    c3.req(path)
    time.sleep(max(0, started + 4 - time.time()))
    for _ in range(20):
        st, h, b, _ = c3.req(path)
        assert h.get("x-cache-status") == "Hit" and h.get("x-cache-tier") == "L2", h
    c3.close()


def worker_wakeups(pid):
    """Voluntary context switches of each of the agent's worker threads."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            if not f.read().startswith("worker-"):
                continue
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    out[tid] = int(line.split()[1])
    return out


@test
def test_l1_checks_stop_while_no_grant_is_live(procs):
    # Each live grant is re-read every second, a slice of the table every
    # 50 ms; once the last grant has expired, a worker sleeps (its only
    # timer left is the once-a-second stats snapshot), and a new grant
    # wakes the checks again.
    s = Stack(procs, l1_ttl=1, policies=policies(l1_ttl="1"))
    c = Client(s.http_port)
    c.req("/text")
    c.warm("/text")
    tracked = lambda: s.metrics().get("spoe_cache_l1_tracked", 0)  # noqa: E731
    wait_for(lambda: tracked() > 0, timeout=20, what="the grant in the gauge")
    wait_for(lambda: tracked() == 0, timeout=20, what="the grant to expire")
    before = worker_wakeups(s.agent.pid)
    assert before, "no thread of the agent is named worker-N"
    time.sleep(2)
    after = worker_wakeups(s.agent.pid)
    woke = {t: after[t] - before[t] for t in before}
    # 2 s of the 50 ms slice timer alone would be 40
    assert all(n < 15 for n in woke.values()), woke
    checks = s.metrics().get("spoe_cache_l1_checks_total", 0)
    c.req("/gen/again")
    c.warm("/gen/again")
    wait_for(lambda: s.metrics().get("spoe_cache_l1_checks_total", 0) > checks, timeout=20,
             what="the new grant to be checked")
    c.close()


if __name__ == "__main__":
    main()
