#!/usr/bin/env python3
"""fuzz_smoke.py TARGET SECONDS - run one libFuzzer target for a bounded time
on a copy of its seed corpus (fuzz/corpus/NAME); also replays every saved
crash regression input (fuzz/regress/NAME/*). Prints one ok/not ok line."""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
target, seconds = sys.argv[1], int(sys.argv[2])
name = os.path.basename(target)
work = tempfile.mkdtemp(prefix="fuzz-")
try:
    corpus = os.path.join(work, "corpus")
    seeds = os.path.join(ROOT, "fuzz", "corpus", name)
    if os.path.isdir(seeds):
        shutil.copytree(seeds, corpus)
    else:
        os.makedirs(corpus)
    argv = [target, "-max_total_time=%d" % seconds, "-timeout=10", "-rss_limit_mb=2048",
            "-artifact_prefix=%s/" % work, "-print_final_stats=1", corpus]
    regress = os.path.join(ROOT, "fuzz", "regress", name)
    if os.path.isdir(regress):
        env = dict(os.environ, LSAN_OPTIONS="suppressions=%s" % os.path.join(ROOT, "fuzz", "lsan.supp"))
        rc = subprocess.call([target] + [os.path.join(regress, f) for f in sorted(os.listdir(regress))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
        if rc != 0:
            print("not ok - %s regression inputs" % name)
            sys.exit(1)
    env = dict(os.environ, LSAN_OPTIONS="suppressions=%s" % os.path.join(ROOT, "fuzz", "lsan.supp"))
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = p.stdout.decode("utf-8", "replace")
    runs = [l for l in out.splitlines() if "stat::number_of_executed_units" in l]
    if p.returncode != 0:
        sys.stdout.write(out[-4000:])
        print("not ok - %s (%d s)" % (name, seconds))
        sys.exit(1)
    print("ok - %s (%d s, %s)" % (name, seconds, runs[0].split(":")[-1].strip() + " execs" if runs else "?"))
finally:
    shutil.rmtree(work, ignore_errors=True)
