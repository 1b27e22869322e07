#!/usr/bin/env python3
"""End to end under AddressSanitizer + LeakSanitizer: the sanitizer-built
agent goes through hits, misses, stores, refusals, invalidations, Vary,
fragmentation, admin purges and flushes, a config reload, a shard that dies
and comes back and connections that vanish mid-request, then exits on
SIGTERM. Any sanitizer report or leak in its log fails the test (harness)."""
import json
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import HOST, main, test  # noqa: E402
from stack import Stack  # noqa: E402

POLICIES = """
  default: { content_type = ["*"]; cache_control = true; storage_ttl = 60; };
  json: { request_method = ["POST"]; content_type = ["*"]; vary_body_json_fields = ["q"]; };
"""


@test
def test_mixed_scenario_is_clean_under_asan(procs):
    s = Stack(procs, asan=True, policies=POLICIES)
    paths = ["/json", "/binary", "/cookie", "/gen?size=50000", "/gen?body=v&h=Vary:X-A",
             "/gen?body=nc&h=Cache-Control:no-store", "/gen?te=chunked&body=c"]
    for _ in range(3):
        for p in paths:
            assert s.get(p, {"X-A": "1"})[0] == 200
    s.request("POST", "/json", body=b"x")                 # invalidation
    s.get("/json", {"Cache-Control": "only-if-cached"})
    s.get("/json", {"If-None-Match": "*"})
    key = s.get("/json")[1]["x-cache-key"]
    assert s.request("DELETE", "/cache/" + key, port=s.admin_port)[0] == 200
    assert s.request("GET", "/cache/" + key, port=s.admin_port)[0] == 404
    assert s.request("DELETE", "/cache", port=s.admin_port)[0] == 200
    s.request("GET", "/metrics", port=s.admin_port)
    # Fragmented store NOTIFY frames on small frames.
    s2 = Stack(procs, asan=True, policies=POLICIES, agent_extra="max_frame_size = 16384;",
               shards=s.shards)
    for _ in range(3):
        s2.get("/gen?size=60000")
        s2.get("/gen?size=9000")
    # A shard dies with requests in flight, then comes back.
    port = s.shards[0].port
    procs.stop(s.shards[0], signal.SIGKILL)
    for p in paths:
        s.get(p)
    s.shards[0] = procs.memcached(port=port)
    # Reload with the same file; every worker on the new generation.
    s.reload()
    for p in paths:
        s.get(p)
    # Connections that vanish mid-request.
    for _ in range(20):
        c = socket.create_connection((HOST, s.http_port))
        c.sendall(b"GET /gen?size=50000 HTTP/1.1\r\nHost: x\r\n\r\n")
        c.close()
    time.sleep(1)
    for st in (s, s2):
        assert st.agent.poll() is None
        assert st.stop_agent() == 0


if __name__ == "__main__":
    main()
