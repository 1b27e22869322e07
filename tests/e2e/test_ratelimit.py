#!/usr/bin/env python3
"""End to end: the two templates differ only in where the cache sits
relative to the stick-table rate limit, and real stick tables prove it."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import main, test  # noqa: E402
from stack import Stack  # noqa: E402

LIMIT = 5


def req_rate(s):
    out = s.haproxy_cmd("show table www")
    m = re.search(r"http_req_rate\(\d+\)=(\d+)", out)
    return int(m.group(1)) if m else 0


def total_lookups(s):
    return sum(s.lookups(x) for x in ("Hit", "Miss", "Refresh", "Bypass"))


@test
def test_cache_before_ratelimit_hits_consume_no_token(procs):
    s = Stack(procs, template="cache-before-ratelimit.cfg", rate_limit=LIMIT)
    codes = [s.get("/json")[0] for _ in range(3 * LIMIT)]
    assert codes == [200] * (3 * LIMIT), codes
    assert s.origin_count("/json") == 1
    # Only the one miss went through the rate-limit rules.
    assert req_rate(s) == 1, s.haproxy_cmd("show table www")


@test
def test_cache_after_ratelimit_counts_every_request(procs):
    s = Stack(procs, template="cache-after-ratelimit.cfg", rate_limit=LIMIT)
    resps = [s.get("/json") for _ in range(3 * LIMIT)]
    codes = [r[0] for r in resps]
    assert codes == [200] * LIMIT + [429] * (2 * LIMIT), codes
    assert [r[1].get("x-cache-status") for r in resps[:LIMIT]] == ["Miss"] + ["Hit"] * (LIMIT - 1)
    assert resps[-1][1].get("retry-after") == "10", resps[-1][1]
    assert req_rate(s) == 3 * LIMIT, s.haproxy_cmd("show table www")


@test
def test_over_limit_client_never_reaches_agent(procs):
    s = Stack(procs, template="cache-after-ratelimit.cfg", rate_limit=LIMIT)
    for _ in range(LIMIT):
        assert s.get("/json")[0] == 200
    before = total_lookups(s)
    assert before == LIMIT
    for _ in range(2 * LIMIT):
        assert s.get("/json")[0] == 429
    assert total_lookups(s) == before


@test
def test_both_orders_hold_with_the_l1_answering(procs):
    # The L1 sits in the frontend: before the backend's rate limit in
    # cache-before-ratelimit.cfg, after the frontend's in the other.
    s = Stack(procs, template="cache-before-ratelimit.cfg", rate_limit=LIMIT, l1_ttl=1)
    resps = [s.get("/json") for _ in range(3 * LIMIT)]
    assert [r[0] for r in resps] == [200] * (3 * LIMIT), resps
    assert "L1" in [r[1].get("x-cache-tier") for r in resps], resps
    assert req_rate(s) == 1, s.haproxy_cmd("show table www")
    s = Stack(procs, template="cache-after-ratelimit.cfg", rate_limit=LIMIT, l1_ttl=1)
    resps = [s.get("/json") for _ in range(3 * LIMIT)]
    assert [r[0] for r in resps] == [200] * LIMIT + [429] * (2 * LIMIT), resps
    assert "L1" in [r[1].get("x-cache-tier") for r in resps[:LIMIT]], resps
    assert req_rate(s) == 3 * LIMIT, s.haproxy_cmd("show table www")


@test
def test_agent_down_origin_serves_and_limits_apply(procs):
    for template in ("cache-before-ratelimit.cfg", "cache-after-ratelimit.cfg"):
        s = Stack(procs, template=template, rate_limit=LIMIT)
        s.stop_agent()
        codes = []
        for i in range(LIMIT + 3):
            st, h, b = s.get("/gen?body=down%d" % i)
            codes.append(st)
            # Proxied without the cache, and said so (txn.cache.error).
            assert st == 429 or h.get("x-cache-status") == "Bypass", h
        # No 5xx from the cache layer, and the limit still holds.
        assert codes == [200] * LIMIT + [429] * 3, (template, codes)


if __name__ == "__main__":
    main()
