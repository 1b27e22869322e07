#!/usr/bin/env python3
"""run_stack.py - `make run`: the whole stack on 127.0.0.1 with defaults
(3 memcached shards weighted 100/100/50, the agent, HAProxy running
haproxy-conf/cache-before-ratelimit.cfg, the demo origin), then the curl
lines to try. Ctrl-C stops every process it started.
Set TEMPLATE=cache-after-ratelimit.cfg to run the other template."""
import os
import signal
import socket
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
from harness import HOST, Procs, free_port  # noqa: E402
from stack import Stack  # noqa: E402


def port(preferred):
    s = socket.socket()
    try:
        s.bind((HOST, preferred))
        return preferred
    except OSError:
        return free_port()
    finally:
        s.close()


def main():
    procs = Procs()
    ports = {"http": port(8080), "origin": port(8000), "agent": port(12345),
             "admin": port(12346), "memcached": [port(11311), port(11312), port(11313)]}
    template = os.environ.get("TEMPLATE", "cache-before-ratelimit.cfg")
    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        s = Stack(procs, template=template, ports=ports, log_level="notice", l1_ttl=5)
        u = "http://%s:%d" % (HOST, s.http_port)
        print("""
spoe-cache is running on 127.0.0.1 (template %s)
  HAProxy          %s
  origin           http://%s:%d
  agent (SPOP)     %s:%d   admin/metrics http://%s:%d/metrics
  memcached        %s
  agent config     %s
  logs             %s

Try:
  curl -si %s/json | grep -i x-cache      # Miss: fetched from the origin, stored
  curl -si %s/json | grep -i x-cache      # Hit: replayed from memcached, no origin
  curl -s  %s/binary | od -c | head -3    # a body with NUL bytes, byte for byte
  curl -si %s/cookie | grep -i x-cache    # Bypass: Set-Cookie is never stored
  ./spoe-cache-ctl -c %s get $(curl -s -o /dev/null -D - %s/json | awk 'tolower($1)=="x-cache-key:"{print $2}' | tr -d '\\r')
  ./spoe-cache-ctl -c %s flush            # flush_all on every shard
  curl -s http://%s:%d/metrics | grep lookups

Ctrl-C stops everything.""" % (
            template, u, HOST, s.origin_port, HOST, s.agent_port, HOST, s.admin_port,
            ", ".join("%s:%d (weight %d)" % (HOST, m.port, w) for m, w in zip(s.shards, s.weights)),
            s.conf, procs.dir, u, u, u, u, s.conf, u, s.conf, HOST, s.admin_port), flush=True)
        while not stop:
            for p in procs.procs:
                if p.poll() is not None:
                    print("%s exited with %s; see %s" % (p.name, p.returncode, p.log))
                    stop.append(1)
            time.sleep(0.5)
    finally:
        procs.close()
        print("stopped every process.")


if __name__ == "__main__":
    main()
