#!/usr/bin/env python3
"""run.py - every test tier, one summary line.

Tiers, in order: build (the layering of agent/, read from the tree and the
built objects), unit (C, under ASan+UBSan), wire (the running agent and the
memcached pool, scripted peers), e2e (real HAProxy 2.6, agent, memcached
shards and origin), e2e-3.4 (the same tests on HAProxy 3.4, built from
../shared/haproxy; skipped with a line saying so when it is absent), pkg
(`make deb`, then the package installed, tried and purged; when CI=true or
dpkg-buildpackage is present), fuzz (each libFuzzer target for a short
bounded time, one per core at once).
Each test program prints "ok - name" / "not ok - name" lines; a program that
exits non-zero without a "not ok" line (a crash) counts as one failure.
The last line is "N passed, N failed".

  python3 tests/run.py [tier ...]      e.g. tests/run.py unit wire
"""
import concurrent.futures
import glob
import os
import re
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "10"))


# The end-to-end tier runs once per HAProxy: Debian's (2.6), and 3.4 when
# `make test` could build it from ../shared/haproxy.
HAPROXY_34 = os.path.join(ROOT, "build/haproxy-3.4/haproxy")
TIER_ENV = {"e2e-3.4": {"SPOE_CACHE_HAPROXY": HAPROXY_34}}
PARALLEL_TIERS = ("fuzz",)


def programs(tier):
    if tier == "e2e-3.4":
        if not os.access(HAPROXY_34, os.X_OK):
            print("  skipped: no %s (its source, ../shared/haproxy/haproxy-3.4.0.tar.gz, "
                  "is absent); the end-to-end tier ran on Debian's HAProxy only"
                  % os.path.relpath(HAPROXY_34, ROOT), flush=True)
            return []
        tier = "e2e"
    if tier == "unit":
        return [[p] for p in sorted(glob.glob(os.path.join(ROOT, "build/asan/tests/test_*")))
                if os.access(p, os.X_OK) and not p.endswith(".d")]
    if tier in ("build", "wire", "e2e", "pkg"):
        return [[sys.executable, p] for p in
                sorted(glob.glob(os.path.join(ROOT, "tests", tier, "test_*.py")))]
    if tier == "fuzz":
        out = []
        for p in sorted(glob.glob(os.path.join(ROOT, "build/fuzz/fuzz_*"))):
            if not os.access(p, os.X_OK) or os.path.isdir(p) or "-" in os.path.basename(p):
                continue
            out.append([sys.executable, os.path.join(ROOT, "tests/fuzz_smoke.py"), p,
                        str(FUZZ_SECONDS)])
        return out
    raise SystemExit("unknown tier %s" % tier)


def run(argv, env=None, out=None):
    """Runs one test program; its report goes to out (a list of lines,
    printed by the caller) or straight to stdout."""
    def say(text):
        if out is None:
            print(text, flush=True)
        else:
            out.append(text)
    name = os.path.relpath(next(a for a in argv if os.path.basename(a).startswith(("test_", "fuzz_"))
                                and "fuzz_smoke" not in a), ROOT)
    t0 = time.time()
    p = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         env=dict(os.environ, **(env or {})))
    passed = failed = 0
    for raw in p.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if re.match(r"^ok - ", line):
            passed += 1
            say("  %s" % line)
        elif line.startswith("skip - "):
            say("  %s" % line)
        elif re.match(r"^not ok - ", line):
            failed += 1
            say("  %s" % line)
        else:
            say("    | %s" % line)
    rc = p.wait()
    if rc != 0 and failed == 0:
        failed = 1
        say("  not ok - %s exited with %d" % (name, rc))
    say("  [%s: %d passed, %d failed, %.1fs]" % (name, passed, failed, time.time() - t0))
    return passed, failed


def run_parallel(progs, env=None):
    """The fuzz tier: each target is a bounded CPU-bound run that shares
    nothing, so they run one per core; reports print in order."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        jobs = []
        for argv in progs:
            out = []
            jobs.append((ex.submit(run, argv, env, out), out))
        for fut, out in jobs:
            result = fut.result()
            print("\n".join(out), flush=True)
            yield result


def main():
    tiers = sys.argv[1:] or ["build", "unit", "wire", "e2e", "e2e-3.4", "pkg", "fuzz"]
    total_p = total_f = 0
    for tier in tiers:
        print("== %s" % tier, flush=True)
        progs = programs(tier)
        results = (run_parallel(progs, TIER_ENV.get(tier)) if tier in PARALLEL_TIERS
                   else (run(argv, TIER_ENV.get(tier)) for argv in progs))
        for p, f in results:
            total_p += p
            total_f += f
    print("%d passed, %d failed" % (total_p, total_f), flush=True)
    sys.exit(1 if total_f else 0)


if __name__ == "__main__":
    main()
