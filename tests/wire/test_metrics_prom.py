#!/usr/bin/env python3
"""Wire tests: /metrics is what Prometheus's tools accept (issue 20).

A real agent (the sanitizer build) on two real memcached shards serves
Hits, Misses, Bypasses, a store, a refused store and an invalidation, so
that every labelled series has traffic behind it; then:
- `promtool check metrics` (from Debian's prometheus package, unpacked by
  `make promtool` under build/promtool/, never installed) accepts the live
  scrape with no output at all: no lint warning. Without it (no network
  when `make test` ran) that test says skip, and the checks below, which
  hold the same rules in Python, still run;
- each family has HELP and TYPE before its samples and is one group, and
  counters end in _total;
- the README's metrics table lists exactly those families, with their
  types, and the man page names each;
- spoe_cache_build_info names the version debian/changelog and -V name;
  process_start_time_seconds is when the test started the agent; the
  other process_* metrics agree with /proc/PID;
- spoe_cache_config_generation is 1, then 2 after a good SIGHUP;
  spoe_cache_config_last_reload_successful is 1 at start, 0 after a
  SIGHUP on a bad file (the generation stays), 1 again after a good one;
  spoe_cache_config_reloads_total{result} counts both.
"""
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import BUILD, HOST, ROOT, main, skip, test, wait_for  # noqa: E402
from wireagent import BASE_HDRS, Agent, next_id, store  # noqa: E402

PROMTOOL = os.path.join(BUILD, "promtool", "usr", "bin", "promtool")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(agent):
    with urllib.request.urlopen("http://%s:%d/metrics" % (HOST, agent.admin_port),
                                timeout=30) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4", r.headers
        return r.read().decode()


def traffic(agent):
    """Every kind of lookup and store the counters have labels for; returns
    once the workers' per-shard snapshots (refreshed every second) show the
    memcached requests, so the histograms have samples."""
    c = agent.ready()
    a = c.lookup(next_id(), 1, "no-such-policy", "GET", "/p", BASE_HDRS, timeout=30)
    assert a["status"] == "Bypass", a
    for i in range(3):
        assert store(c, "/prom/%d" % i, b"body %d" % i)
        a = c.lookup(next_id(), 1, "default", "GET", "/prom/%d" % i, BASE_HDRS, timeout=30)
        assert a["status"] == "Hit", a
    a = c.lookup(next_id(), 1, "default", "GET", "/prom/refused", BASE_HDRS, timeout=30)
    assert a["status"] == "Miss", a
    c.store(next_id(), 1, a["ctx"], 500, [("content-type", "text/plain"),
                                          ("content-length", "1")], b"x", timeout=30)
    # an unsafe method's successful response invalidates the URL
    a = c.lookup(next_id(), 1, "default", "POST", "/prom/0", BASE_HDRS, timeout=30)
    if "ctx" in a:
        c.store(next_id(), 1, a["ctx"], 200, [("content-type", "text/plain"),
                                              ("content-length", "1")], b"y", timeout=30)

    def counted():
        m = agent.metrics()
        n = sum(v for k, v in m.items()
                if k.startswith("spoe_cache_memcached_latency_seconds_count{"))
        return m if n >= 7 else None
    return wait_for(counted, timeout=60, what="the memcached requests in /metrics")


def families(text):
    """[(family, type, help, [sample lines])] in exposition order, checking
    that HELP and TYPE come first and each family is one group."""
    out, seen, cur = [], set(), None
    for line in text.splitlines():
        assert line, "empty line in the exposition"
        if line.startswith("# "):
            kind, name, rest = (line[2:].split(" ", 2) + [""])[:3]
            assert kind in ("HELP", "TYPE"), line
            if cur is None or cur[0] != name:
                assert name not in seen, "family %s in two groups" % name
                assert cur is None or cur[3], "family %s has no samples" % cur[0]
                seen.add(name)
                cur = [name, None, None, []]
                out.append(cur)
            assert not cur[3], "%s after the samples of %s" % (kind, name)
            cur[1 if kind == "TYPE" else 2] = rest
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name = m.group(1)
        base = name
        if cur is not None and cur[1] == "histogram":
            base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert cur is not None and base == cur[0], \
            "sample %s outside its family (after %s)" % (name, cur and cur[0])
        float(m.group(3))
        cur[3].append(line)
    return [tuple(f) for f in out]


def value(text, series):
    for line in text.splitlines():
        if not line.startswith("#") and line.rpartition(" ")[0] == series:
            return float(line.rpartition(" ")[2])
    raise AssertionError("no series %s in\n%s" % (series, text))


@test
def test_promtool_check_metrics_passes_on_a_live_scrape(procs):
    if not os.access(PROMTOOL, os.X_OK):
        log = os.path.join(BUILD, "promtool", "download.log")
        why = "no %s (`make promtool` unpacks it from Debian's prometheus package" \
            % os.path.relpath(PROMTOOL, ROOT)
        if os.path.exists(log):
            why += "; it failed, see %s" % os.path.relpath(log, ROOT)
        skip(why + ")")
    agent = Agent(procs, nshards=2)
    traffic(agent)
    text = scrape(agent)
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.decode("utf-8", "replace")
    print("promtool check metrics: exit %d, %d bytes of output, on %d lines of /metrics"
          % (p.returncode, len(out), len(text.splitlines())))
    assert p.returncode == 0 and out == "", "promtool check metrics: exit %d\n%s" \
        % (p.returncode, out)
    agent.finish()


@test
def test_every_family_has_help_and_type_and_one_group(procs):
    agent = Agent(procs, nshards=2)
    traffic(agent)
    fams = families(scrape(agent))
    for name, typ, hlp, samples in fams:
        assert typ in ("counter", "gauge", "histogram"), (name, typ)
        assert hlp and hlp.strip() == hlp, (name, hlp)
        assert (typ == "counter") == name.endswith("_total"), (name, typ)
        assert re.match(r"^[a-z][a-z0-9_]*$", name), name
        if typ == "histogram":
            assert any('le="+Inf"' in s for s in samples), name
    names = [f[0] for f in fams]
    for want in ("spoe_cache_lookups_total", "spoe_cache_memcached_latency_seconds",
                 "spoe_cache_invalidations_total", "spoe_cache_spop_frames_total",
                 "spoe_cache_build_info", "process_start_time_seconds",
                 "process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                 "spoe_cache_config_generation", "spoe_cache_config_reloads_total",
                 "spoe_cache_config_last_reload_successful",
                 "spoe_cache_config_last_reload_success_timestamp_seconds"):
        assert want in names, (want, names)
    agent.finish()


@test
def test_build_info_and_process_metrics(procs):
    t0 = time.time()
    agent = Agent(procs)
    t1 = time.time()
    m = traffic(agent)
    pid = agent.proc.pid
    with open(os.path.join(ROOT, "debian", "changelog")) as f:
        deb_version = re.match(r"^spoe-cache \(([^)]+)\)", f.readline()).group(1)
    v = subprocess.run([agent.binary, "-V"], stdout=subprocess.PIPE).stdout.decode().split()
    info = [k for k in m if k.startswith("spoe_cache_build_info{")]
    assert len(info) == 1 and m[info[0]] == 1, info
    labels = dict(re.findall(r'(\w+)="([^"]*)"', info[0]))
    assert labels["version"] == deb_version == v[1], (labels, deb_version, v)
    for lib in ("libevent", "openssl", "libmemcached"):
        assert re.match(r"^\d+\.\d+", labels[lib]), labels

    # Start time: between the spawn and the agent listening; the test
    # started the agent through no wrapper, so its pid is the agent's.
    start = m["process_start_time_seconds"]
    assert t0 - 1 <= start <= t1, (t0, start, t1)

    def proc_now():
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()   # st[0] is field 3, state
        cpu = (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
        with open("/proc/%d/limits" % pid) as f:
            soft = next(int(line.split()[3]) for line in f if line.startswith("Max open files"))
        return cpu, int(st[20]), int(st[21]) * os.sysconf("SC_PAGE_SIZE"), soft

    cpu0, vsz0, rss0, soft = proc_now()
    m = agent.metrics()
    cpu1, vsz1, rss1, _ = proc_now()
    assert cpu0 - 0.011 <= m["process_cpu_seconds_total"] <= cpu1 + 0.011, \
        (cpu0, m["process_cpu_seconds_total"], cpu1)
    assert m["process_max_fds"] == soft, (m["process_max_fds"], soft)
    for got, a, b in ((m["process_virtual_memory_bytes"], vsz0, vsz1),
                      (m["process_resident_memory_bytes"], rss0, rss1)):
        assert 0 < got and 0.8 * min(a, b) <= got <= 1.25 * max(a, b), (got, a, b)
    # Its fds, but the one it read /proc/self/fd through; the scrape's own
    # admin connection is open while it counts, and at most a few more come
    # and go between the two readings (memcached probes).
    fds = len(os.listdir("/proc/%d/fd" % pid))
    assert abs(m["process_open_fds"] - fds) <= 3, (m["process_open_fds"], fds)
    agent.finish()


@test
def test_every_family_is_documented(procs):
    """The README's metrics table lists exactly the families /metrics has
    (with their type), and the man page names each one."""
    agent = Agent(procs, nshards=2)
    traffic(agent)
    have = {f[0]: f[1] for f in families(scrape(agent))}
    agent.finish()
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    section = readme.split("\n### Metrics\n", 1)[1].split("\n#", 1)[0]
    table = {}
    for row in re.findall(r"^\| `([a-z0-9_]+)(?:\{[a-z_,]*\})?` \| (\w+) \|", section, re.M):
        table[row[0]] = row[1]
    assert table == have, ("README table vs /metrics", sorted(set(table.items()) ^ set(have.items())))
    with open(os.path.join(ROOT, "man", "spoe-cache-agent.8")) as f:
        man = f.read()
    missing = [n for n in have if not re.search(r"\b%s\b" % n, man)]
    assert not missing, "not in man/spoe-cache-agent.8: %s" % missing


def reload_metrics(agent):
    m = agent.metrics()
    return (m["spoe_cache_config_generation"], m["spoe_cache_config_generation_loaded"],
            m["spoe_cache_config_last_reload_successful"],
            m["spoe_cache_config_last_reload_success_timestamp_seconds"],
            m['spoe_cache_config_reloads_total{result="success"}'],
            m['spoe_cache_config_reloads_total{result="failure"}'])


@test
def test_reload_generation_and_last_result(procs):
    t0 = time.time()
    agent = Agent(procs)
    gen, loaded, ok, ok_at, good, bad = reload_metrics(agent)
    assert (gen, loaded, ok, good, bad) == (1, 1, 1, 0, 0), reload_metrics(agent)
    assert t0 - 1 <= ok_at <= time.time(), (t0, ok_at)
    traffic(agent)
    with open(agent.conf) as f:
        text = f.read()

    # A good reload: generation 2 everywhere, a newer success time.
    t1 = time.time()
    os.kill(agent.proc.pid, signal.SIGHUP)
    wait_for(lambda: reload_metrics(agent)[0] == 2, timeout=60, what="generation 2")
    gen, loaded, ok, ok_at2, good, bad = reload_metrics(agent)
    assert (gen, loaded, ok, good, bad) == (2, 2, 1, 1, 0), reload_metrics(agent)
    assert t1 - 0.01 <= ok_at2 <= time.time(), (t1, ok_at2)

    # A bad file: refused, 0, the running generation and its time stay.
    assert "threads = 2;" in text
    with open(agent.conf, "w") as f:
        f.write(text.replace("threads = 2;", 'threads = "two";'))
    os.kill(agent.proc.pid, signal.SIGHUP)
    wait_for(lambda: reload_metrics(agent)[5] == 1, timeout=60, what="the refused reload")
    gen, loaded, ok, ok_at3, good, bad = reload_metrics(agent)
    assert (gen, loaded, ok, ok_at3, good, bad) == (2, 2, 0, ok_at2, 1, 1), reload_metrics(agent)
    assert "reload refused" in agent.log(), agent.log()[-2000:]
    check_served_after(agent)

    # Fixed: 1 again, generation 3.
    with open(agent.conf, "w") as f:
        f.write(text)
    os.kill(agent.proc.pid, signal.SIGHUP)
    wait_for(lambda: reload_metrics(agent)[0] == 3, timeout=60, what="generation 3")
    gen, loaded, ok, ok_at4, good, bad = reload_metrics(agent)
    assert (gen, loaded, ok, good, bad) == (3, 3, 1, 2, 1), reload_metrics(agent)
    assert ok_at4 >= ok_at2, (ok_at2, ok_at4)
    agent.finish()


def check_served_after(agent):
    """The refused reload left the agent serving on its running config."""
    c = agent.ready()
    a = c.lookup(next_id(), 1, "default", "GET", "/prom/1", BASE_HDRS, timeout=30)
    assert a["status"] == "Hit", a


if __name__ == "__main__":
    main()
