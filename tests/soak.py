#!/usr/bin/env python3
"""soak.py [SECONDS] - a soak of the whole stack on loopback (not part of
make test): mixed hits, misses, purges and flushes through HAProxy for
SECONDS (default 600), a memcached shard restarted halfway, the agent's RSS
printed every 30 s. Ends with the RSS series and whether any request failed.
Bounded in time; stops every process it started."""
import os
import random
import signal
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
from harness import Procs, proc_status_kb  # noqa: E402
from stack import Stack  # noqa: E402


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    procs = Procs()
    stop = threading.Event()
    stats = {"requests": 0, "failed": 0, "hit": 0, "purges": 0}
    lock = threading.Lock()
    try:
        s = Stack(procs, log_level="notice")
        paths = ["/gen?size=%d&v=%d" % (random.choice((100, 2000, 20000)), i) for i in range(2000)]

        def client():
            while not stop.is_set():
                p = random.choice(paths[:200]) if random.random() < 0.8 else random.choice(paths)
                try:
                    st, h, b = s.get(p)
                    ok = st == 200
                    hit = h.get("x-cache-status") == "Hit"
                    if random.random() < 0.01 and "x-cache-key" in h:
                        s.ctl("purge", h["x-cache-key"])
                        with lock:
                            stats["purges"] += 1
                except Exception:
                    ok, hit = False, False
                with lock:
                    stats["requests"] += 1
                    stats["failed"] += not ok
                    stats["hit"] += hit
        threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        t0 = time.time()
        series = []
        restarted = False
        while time.time() - t0 < seconds:
            time.sleep(min(30, max(0.1, seconds - (time.time() - t0))))
            el = time.time() - t0
            if not restarted and el >= seconds / 2:
                port = s.shards[1].port
                procs.stop(s.shards[1], signal.SIGKILL)
                time.sleep(1)
                s.shards[1] = procs.memcached(port=port)
                restarted = True
                print("%5.0fs  restarted memcached shard %d" % (el, port), flush=True)
            r = proc_status_kb(s.agent.pid, "VmRSS")
            series.append(r)
            with lock:
                print("%5.0fs  agent RSS %6d KiB  requests %7d  failed %d  hits %5.1f%%  purges %d"
                      % (el, r, stats["requests"], stats["failed"],
                         100.0 * stats["hit"] / max(1, stats["requests"]), stats["purges"]), flush=True)
        stop.set()
        for t in threads:
            t.join()
        print("RSS KiB every 30 s: %s" % " ".join(map(str, series)))
        if len(series) > 2:
            print("RSS growth after the first sample: %+d KiB" % (series[-1] - series[1]))
        print("requests %d, failed %d" % (stats["requests"], stats["failed"]))
        return 0 if stats["failed"] == 0 else 1
    finally:
        stop.set()
        procs.close()


if __name__ == "__main__":
    sys.exit(main())
