#!/usr/bin/env python3
"""pool_bench.py - part of `make bench`: memcached lookups per second of
one agent worker thread (one struct pool on one event loop, DEPTH lookups
in flight) against real memcached, next to memcached's own ceiling measured
the same way (one client thread, one connection, meta gets pipelined DEPTH
deep, no event loop, no parsing), as a ratio. 1 KB values."""
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
from harness import Procs  # noqa: E402

SECONDS = float(os.environ.get("POOL_BENCH_SECONDS", "5"))
TOOLS = os.path.join(ROOT, "build", "tools")


def run(argv):
    out = subprocess.run(argv, stdout=subprocess.PIPE, check=True).stdout.decode()
    f = out.split()
    return float(f[f.index("rate") + 1])


def main():
    subprocess.run(["make", "-s", "-C", ROOT, "tools"], check=True)
    procs = Procs()
    try:
        shards = [procs.memcached(mem_mb=256) for _ in range(3)]
        one = ["127.0.0.1:%d" % shards[0].port]
        three = ["127.0.0.1:%d" % m.port for m in shards]
        print("\nmemcached lookups, one client thread, 1 KB values, %g s each" % SECONDS)
        print("%-44s %12s %8s" % ("", "lookups/s", "ratio"))
        for depth in (16, 64):
            ours1 = run([os.path.join(TOOLS, "pool_bench"), str(SECONDS), str(depth), "1000", "1024"] + one)
            ceil = run([os.path.join(TOOLS, "mc_ceiling"), str(SECONDS), str(depth), "1000", one[0]])
            ours3 = run([os.path.join(TOOLS, "pool_bench"), str(SECONDS), str(depth), "3000", "1024"] + three)
            print("%-44s %12.0f %8s" % ("memcached ceiling, 1 shard, depth %d" % depth, ceil, "1.00"))
            print("%-44s %12.0f %8.2f" % ("agent pool, 1 shard, depth %d" % depth, ours1, ours1 / ceil))
            print("%-44s %12.0f %8.2f" % ("agent pool, 3 shards (ketama), depth %d" % depth, ours3, ours3 / ceil))
        print("(3 shards: three memcached processes share the machine's %d CPUs with the client,\n"
              " so that line measures the machine as much as the pool)" % os.cpu_count())
    finally:
        procs.close()
        procs.cleanup()


if __name__ == "__main__":
    main()
