#!/usr/bin/env python3
"""bench.py - `make bench`: hit and miss throughput of spoe-cache against the
alternatives, all on 127.0.0.1, in one run. Never part of `make test`.

It starts three memcached shards, an nginx origin (static 1 KB / 16 KB
text/plain files, and /cold: a fresh cacheable object for any query string),
and four front ends on that origin:
  l1        HAProxy running haproxy-conf/cache-before-ratelimit.cfg unchanged
            (its environment variables only, as tests/lib/stack.py sets them,
            with a rate limit that never triggers) and ./spoe-cache-agent:
            hits from the node-local tier (L1), as the template ships
  ours      the same with the L1 off (SPOE_CACHE_L1_TTL=0): every hit from
            the agent and the shared pool (L2)
  floor     the same template and agent, but the lookup names a policy that
            answers Bypass at once and every request is answered by a Lua
            service sending the object from memory (tests/bench/floor.lua):
            the most any SPOE+Lua cache can do on this HAProxy
  floorh    the floor again, also sending the other headers of ours' 1 KB
            hit (BENCH_FLOOR_HEADERS): what replaying a real hit's headers
            through the Lua applet costs, still with no cache work
  haproxy   HAProxy's built-in in-memory cache (tests/bench/haproxy-cache.cfg)
  srcache   nginx srcache+memc on the same three shards (tests/bench/srcache.conf)
  straight  HAProxy straight to the origin (tests/bench/haproxy-straight.cfg)
Each is warmed, then driven with the same wrk load on the same objects; the
tables give req/s, p50/p99 and the ratio of each to ours, then the miss path
(a cold key every request) against straight-to-origin, agent CPU per 1,000
requests (from /proc) and the agent's peak RSS, and which targets were met.
Numbers are reported, never judged: there is no pass/fail.

Every process is started through harness.Procs and killed by PID at the end,
also on Ctrl-C, SIGTERM or an error. It must not listen beyond 127.0.0.1 nor
send load anywhere else.

  BENCH_DURATION=10 BENCH_CONNS=16,64 python3 tests/bench/bench.py
  BENCH_HAPROXY=/path/to/haproxy[,/other/haproxy] ...   one full run per binary
  (default: Debian's haproxy, then build/haproxy-3.4/haproxy when built)
  BENCH_PARTS=hits,miss,zipf,herd,outage ...   what to run (default: all)
  BENCH_AGENT=/path/to/spoe-cache-agent ...    another agent build
  BENCH_ZIPF_KEYS, BENCH_ZIPF_S, BENCH_ZIPF_CONNS, BENCH_ZIPF_WARMUP (15 s),
  BENCH_ZIPF_DURATION (20 s), BENCH_HERD_CLIENTS,
  BENCH_HERD_ROUNDS, BENCH_OUTAGE_PASSES, BENCH_L1_TTL, BENCH_L1_MB: the
  fleet runs (see below)
"""
import http.client
import os
import re
import shutil
import signal
import sys
import threading
import time
import traceback
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from harness import (AGENT, HOST, ROOT, Procs, free_port, proc_status_kb,  # noqa: E402
                     wait_for, wait_port)
from stack import agent_config, haproxy_cmd, parse_prometheus  # noqa: E402

# BENCH_AGENT: another agent binary (an older build, for a before/after
# comparison in the same conditions); the templates are this tree's.
AGENT = os.environ.get("BENCH_AGENT") or AGENT
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "2"))
CONNS = [int(c) for c in os.environ.get("BENCH_CONNS", "16,64").split(",")]
WRK_THREADS = 2
WORKERS = 2                      # nginx worker_processes (srcache and origin)
OBJECTS = [("1 KB", "/1k.txt", 1024), ("16 KB", "/16k.txt", 16384)]
COLD_SIZE = 1024
RATE_LIMIT = 100000000           # SPOE_CACHE_RATE_LIMIT: never reached
# Every HAProxy of a run comes from one binary; `make bench` runs the whole
# bench once per HAProxy it has (Debian's, and the 3.4 that `make test`
# builds) and ends with the two side by side. BENCH_HAPROXY=a[,b] chooses.
HAPROXY_34 = os.path.join(ROOT, "build", "haproxy-3.4", "haproxy")
HAPROXYS = [h for h in os.environ.get("BENCH_HAPROXY", "").split(",") if h] or \
    ["haproxy"] + ([HAPROXY_34] if os.access(HAPROXY_34, os.X_OK) else [])
HAPROXY = HAPROXYS[0]
# Every HAProxy runs as the README advises for 256 KiB buffers: without it
# glibc trims and re-faults the heap top on every request (see README).
HAPROXY_TUNABLES = \
    "glibc.malloc.trim_threshold=16777216:glibc.malloc.mmap_threshold=1048576"
BUSY = 0.10                      # other jobs above this share of the CPUs make a run suspect
NGINX_MODULES = ["ndk_http_module.so", "ngx_http_set_misc_module.so",
                 "ngx_http_memc_module.so", "ngx_http_srcache_filter_module.so"]
CLK_TCK = os.sysconf("SC_CLK_TCK")

POLICIES = """
  default: {
    content_type = ["text/plain"];
    cache_ttl = 300;
  };
  bench_floor: {
    request_method = ["POST"];
  };
"""
# The floor front end: the template with its hit rule made unconditional and
# pointed at tests/bench/floor.lua's service.
HIT_RULE = "http-request use-service lua.spoe_cache_hit if { var(txn.cache.serve) -m bool }"
FLOOR_RULE = "http-request use-service lua.bench_floor"

# Every hit run's system, in the order they run and are reported.
NAMES = {
    "l1": "spoe-cache L1",
    "ours": "spoe-cache L2 (ours)",
    "floor": "SPOE+Lua floor",
    "floorh": "floor, hit's headers",
    "haproxy": "HAProxy cache",
    "srcache": "nginx srcache+memc",
    "straight": "HAProxy straight",
}
CACHES = ["l1", "ours", "haproxy", "srcache"]

# What a run does (BENCH_PARTS, comma-separated): hits and miss are the
# single-node cells above; zipf, herd and outage the multi-node runs of
# "fleets" below.
PARTS = [p for p in os.environ.get("BENCH_PARTS", "hits,miss,zipf,herd,outage").split(",") if p]
# The Zipf workload: ZIPF_KEYS keys, rank k requested with weight 1/k^s, the
# object of rank k one of ZIPF_SIZES_KB (a fixed function of k), through
# ZIPF_NODES nodes of each system at once, BENCH_ZIPF_CONNS connections each.
ZIPF_KEYS = int(os.environ.get("BENCH_ZIPF_KEYS", "10000"))
ZIPF_S = float(os.environ.get("BENCH_ZIPF_S", "0.99"))
ZIPF_SIZES_KB = [1, 2, 4, 8, 16, 32, 64]
ZIPF_NODES = 2
ZIPF_CONNS = int(os.environ.get("BENCH_ZIPF_CONNS", "32"))
# A shared cache is judged in its steady state, not its first seconds: with
# 10,000 keys a short run measures mostly how each system fills (every key
# a node has not seen yet is a miss or an L2 hit, for every system).
ZIPF_WARMUP = int(os.environ.get("BENCH_ZIPF_WARMUP", "15"))
ZIPF_DURATION = int(os.environ.get("BENCH_ZIPF_DURATION", "20"))
# The thundering herd: HERD_CLIENTS requests at once for one cold key,
# spread over HERD_NODES nodes, an origin taking HERD_ORIGIN_MS; HERD_ROUNDS
# cold keys one after the other.
HERD_NODES = 3
HERD_CLIENTS = int(os.environ.get("BENCH_HERD_CLIENTS", "60"))
HERD_ROUNDS = int(os.environ.get("BENCH_HERD_ROUNDS", "5"))
HERD_ORIGIN_MS = 300
# The origin outage: OUTAGE_URLS stored URLs fresh for 300 s and as many
# past their 1 s of freshness (inside stale-if-error=300), the origin
# stopped, then every URL of each set requested through every node,
# OUTAGE_PASSES times, by OUTAGE_CLIENTS clients at once.
OUTAGE_URLS = 40
OUTAGE_PASSES = int(os.environ.get("BENCH_OUTAGE_PASSES", "2"))
OUTAGE_CLIENTS = 40
# Every fleet agent: one policy that honours the origin's Cache-Control (as
# HAProxy's cache and srcache do: the outage's stale URLs say max-age=1),
# cache_ttl for a response that states no freshness.
# BENCH_L1_TTL, BENCH_L1_MB: the fleet's L1 (ours) other than the
# template's (60 s, 64 MiB); the TTL is the policy's l1_ttl too.
FLEET_L1_TTL = os.environ.get("BENCH_L1_TTL")
FLEET_L1_MB = os.environ.get("BENCH_L1_MB")
FLEET_POLICIES = """
  default: {
    content_type = ["text/plain"];
    cache_ttl = 300;
    cache_control = true;%s
  };
""" % ("\n    l1_ttl = %d;" % int(FLEET_L1_TTL) if FLEET_L1_TTL else "")
FLEET_NAMES = {"ours": "spoe-cache (ours)", "haproxy": "HAProxy cache",
               "srcache": "nginx srcache+memc"}


def say(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------- processes

def preflight():
    missing = [b for b in ["wrk", "nginx", "memcached"] + HAPROXYS if not shutil.which(b)]
    missing += [m for m in NGINX_MODULES
                if not os.path.exists(os.path.join("/usr/lib/nginx/modules", m))]
    if not os.access(AGENT, os.X_OK):
        missing.append(AGENT)
    if missing:
        sys.exit("bench: missing %s; run `make deps` (scripts/deps.sh) and `make`"
                 % ", ".join(missing))


def fill(template, values):
    with open(os.path.join(HERE, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z0-9_]+@", text)
    if left:
        raise RuntimeError("%s: unfilled %s" % (template, ", ".join(sorted(set(left)))))
    return text


def nginx(procs, name, conf_text, port):
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(procs.path("%s-tmp/%s" % (name, sub)), exist_ok=True)
    conf = procs.write("%s.conf" % name, conf_text)
    p = procs.spawn(["nginx", "-p", procs.dir + "/", "-e", procs.path("%s-error.log" % name),
                     "-c", conf], name="nginx-" + name)
    wait_port(port, proc=p)
    # The master listens before it forks its workers; CPU accounting needs them.
    wait_for(lambda: len(children(p.pid)) > WORKERS, what="nginx %s workers" % name)
    p.port = port
    return p


def haproxy(procs, name, cfg, env, port):
    p = procs.spawn([HAPROXY, "-db", "-f", cfg], name="haproxy-" + name,
                    env=dict(env, GLIBC_TUNABLES=HAPROXY_TUNABLES))
    wait_port(port, proc=p)
    p.port = port
    return p


def spoe_errors(proc):
    """Lookups and stores HAProxy logged as failed (SPOE error or timeout):
    the templates log SPOE with dontlog-normal, so every such line is one."""
    with open(proc.log, "rb") as f:
        return f.read().count(b"SPOE: [")


def children(pid):
    """pid and its direct children (nginx's master and workers)."""
    out = [pid]
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        if int(st[st.rindex(")") + 2:].split()[1]) == pid:
            out.append(int(d))
    return out


def cpu_ticks(pids):
    """utime + stime of pids, in clock ticks."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])   # utime, stime (fields 14, 15)
    return total


def machine_busy_ticks():
    """user + nice + system ticks of every CPU (softirq, steal left out, as
    a process's utime + stime leaves them out)."""
    with open("/proc/stat") as f:
        cpu = f.readline().split()
    return int(cpu[1]) + int(cpu[2]) + int(cpu[3])


def reaped_children_secs():
    t = os.times()
    return t.children_user + t.children_system


# ---------------------------------------------------------------- HTTP probes

def get(port, path, host=None):
    """One GET; host: the Host header (default: 127.0.0.1:port). The nodes of
    a fleet stand behind one name, so their clients send the same one."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()


def origin_requests(status_port):
    """nginx's request counter; the probe itself is one request."""
    st, _, body = get(status_port, "/")
    m = re.search(rb"\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n", body)
    return int(m.group(3))


def agent_metrics(admin_port):
    return parse_prometheus(get(admin_port, "/metrics")[2])


def haproxy_info(sock, key):
    for line in haproxy_cmd(sock, "show info").splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    return None


# ---------------------------------------------------------------- wrk

UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def ms(num, unit):
    return float(num) * UNIT[unit]


def parse_wrk(text):
    r = {"rps": None, "p50": None, "p99": None, "requests": None, "secs": None,
         "errors": []}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", text)
    if m:
        r["requests"] = int(m.group(1))
        r["secs"] = ms(m.group(2), m.group(3)) / 1e3
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % pct, text, re.M)
        if m:
            r[key] = ms(m.group(1), m.group(2))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        for what, n in zip(("connect", "read", "write", "timeout"), m.groups()):
            if int(n):
                r["errors"].append("socket %s %s" % (what, n))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m and int(m.group(1)):
        r["errors"].append("non-2xx %s" % m.group(1))
    if r["rps"] is None or r["p50"] is None or r["requests"] is None:
        r["errors"].append("unparsed wrk output")
    return r


def wrk(procs, port, path, conns, duration, script=None):
    argv = ["wrk", "-t", str(min(WRK_THREADS, conns)), "-c", str(conns),
            "-d", "%ds" % duration, "--timeout", "5s", "--latency"]
    if script:
        argv += ["-s", script]
    argv.append("http://%s:%d%s" % (HOST, port, path))
    p = procs.spawn(argv, name="wrk")
    try:
        p.wait(timeout=duration + 60)
    except Exception:
        procs.stop(p, signal.SIGKILL)
        raise
    text = procs.log_text(p)
    r = parse_wrk(text)
    if p.returncode != 0:
        r["errors"].append("wrk exited %s" % p.returncode)
    r["raw"] = text
    return r


COLD_LUA = """-- a cold key every request: /cold?k=PREFIX-THREAD-N
local n = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function request()
  n = n + 1
  return wrk.format(nil, "/cold?k=%s-" .. id .. "-" .. n)
end
"""


def cold_script(procs, tag):
    return procs.write("cold-%s.lua" % tag, COLD_LUA % tag)


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, procs):
        self.procs = procs
        self.runs = []          # dicts: kind, obj, conns, sys, result, notes, cpu
        self.watch = {}         # name -> list of pids, for CPU accounting

    # ---- start-up
    def start(self):
        pr = self.procs
        user = "user root;" if os.geteuid() == 0 else ""
        self.shards = [pr.memcached(mem_mb=256) for _ in range(3)]

        html = pr.path("origin-html")
        os.makedirs(html)
        objects = [(path, size) for _, path, size in OBJECTS] + \
            [("/z-%d.txt" % kb, kb * 1024) for kb in ZIPF_SIZES_KB]
        for path, size in objects:
            line = ("spoe-cache bench object %d bytes " % size).ljust(63, ".") + "\n"
            body = (line * (size // len(line) + 1))[:size - 1] + "\n"
            with open(os.path.join(html, path.lstrip("/")), "w") as f:
                f.write(body)
        cold_body = ("cold " * (COLD_SIZE // 5 + 1))[:COLD_SIZE - 1] + "\n"
        self.origin_port, self.origin_status = free_port(), free_port()
        self.origin = nginx(pr, "origin", fill("origin.conf", {
            "USER": user, "WORKERS": WORKERS, "DIR": pr.dir, "PORT": self.origin_port,
            "STATUS_PORT": self.origin_status,
            "COLD_BODY": cold_body.replace("\n", "\\n")}), self.origin_port)
        wait_port(self.origin_status, proc=self.origin)

        # Ours: the shipped template unchanged, environment as Stack sets it.
        agent_port, self.admin_port, ours_port = free_port(), free_port(), free_port()
        conf = pr.write("spoe-cache.conf", agent_config(
            [(s.port, w) for s, w in zip(self.shards, (100, 100, 50))],
            agent_port, self.admin_port, POLICIES, threads=2, log_level="notice"))
        self.agent = pr.spawn([AGENT, "-c", conf], name="agent")
        wait_port(agent_port, proc=self.agent)
        wait_port(self.admin_port, proc=self.agent)
        ours_sock = pr.path("haproxy-ours.sock")
        template = os.path.join(ROOT, "haproxy-conf", "cache-before-ratelimit.cfg")
        env = {
            "SPOE_CACHE_HOME": ROOT,
            "SPOE_CACHE_BIND": "%s:%d" % (HOST, ours_port),
            "SPOE_CACHE_ORIGIN": "%s:%d" % (HOST, self.origin_port),
            "SPOE_CACHE_AGENT": "%s:%d" % (HOST, agent_port),
            "SPOE_CACHE_ADMIN": "%s:%d" % (HOST, self.admin_port),
            "SPOE_CACHE_STATS_SOCKET": ours_sock,
            "SPOE_CACHE_RATE_LIMIT": str(RATE_LIMIT),
            "SPOE_CACHE_POLICY": "default",
            "SPOE_CACHE_L1_TTL": "0",
        }
        ours = haproxy(pr, "ours", template, env, ours_port)
        # The template leaves nbthread to HAProxy (one per CPU); the others copy it.
        self.nbthread = haproxy_info(ours_sock, "Nbthread") or "1"
        self.haproxy_version = "HAProxy " + (haproxy_info(ours_sock, "Version") or "?")

        self.fronts = {"ours": ours}
        port = free_port()
        # the L1 as the template ships it (ours' env turns it off)
        l1_env = {k: v for k, v in env.items() if k != "SPOE_CACHE_L1_TTL"}
        self.fronts["l1"] = haproxy(pr, "l1", template, dict(
            l1_env, SPOE_CACHE_BIND="%s:%d" % (HOST, port),
            SPOE_CACHE_STATS_SOCKET=pr.path("haproxy-l1.sock")), port)
        with open(template) as f:
            text = f.read()
        if HIT_RULE not in text:
            raise RuntimeError("%s: no line %r to turn into the floor's rule" % (template, HIT_RULE))
        text = text.replace(HIT_RULE, FLOOR_RULE).replace(
            "\nglobal\n", "\nglobal\n    lua-load-per-thread \"%s\"\n"
            % os.path.join(HERE, "floor.lua"), 1)
        floor_cfg = pr.write("haproxy-floor.cfg", text)
        floor_env = dict(env, SPOE_CACHE_POLICY="bench_floor", BENCH_OBJECTS=html)
        port = free_port()
        self.fronts["floor"] = haproxy(pr, "floor", floor_cfg, dict(
            floor_env, SPOE_CACHE_BIND="%s:%d" % (HOST, port),
            SPOE_CACHE_STATS_SOCKET=pr.path("haproxy-floor.sock")), port)
        # The floor sends two headers; a real hit replays more. The same
        # floor sending the other headers of ours' 1 KB hit as well tells
        # what that replay costs HAProxy, apart from any cache work.
        self.check_hit("ours", OBJECTS[0][1], OBJECTS[0][2])
        hit = ["%s: %s" % kv for kv in get(ours.port, OBJECTS[0][1])[1].items()
               if kv[0] not in ("content-length", "content-type")]
        self.floorh_headers = len(hit)
        port = free_port()
        self.fronts["floorh"] = haproxy(pr, "floorh", floor_cfg, dict(
            floor_env, SPOE_CACHE_BIND="%s:%d" % (HOST, port),
            SPOE_CACHE_STATS_SOCKET=pr.path("haproxy-floorh.sock"),
            BENCH_FLOOR_HEADERS="\n".join(hit)), port)
        for name, cfg in (("haproxy", "haproxy-cache.cfg"), ("straight", "haproxy-straight.cfg")):
            port = free_port()
            self.fronts[name] = haproxy(pr, name, os.path.join(HERE, cfg), {
                "BENCH_NBTHREAD": self.nbthread,
                "BENCH_BIND": "%s:%d" % (HOST, port),
                "BENCH_ORIGIN": "%s:%d" % (HOST, self.origin_port),
                "BENCH_STATS_SOCKET": pr.path("haproxy-%s.sock" % name)}, port)
        port = free_port()
        self.fronts["srcache"] = nginx(pr, "srcache", fill("srcache.conf", {
            "USER": user, "WORKERS": WORKERS, "DIR": pr.dir, "PORT": port, "NAME": "srcache",
            "ORIGIN": self.origin_port, "MC1": self.shards[0].port,
            "MC2": self.shards[1].port, "MC3": self.shards[2].port}), port)

        mc = [s.pid for s in self.shards]
        self.watch = {
            "ours": {"haproxy": [ours.pid], "agent": [self.agent.pid], "memcached": mc},
            "l1": {"haproxy": [self.fronts["l1"].pid], "agent": [self.agent.pid],
                   "memcached": mc},
            "floor": {"haproxy": [self.fronts["floor"].pid], "agent": [self.agent.pid]},
            "floorh": {"haproxy": [self.fronts["floorh"].pid], "agent": [self.agent.pid]},
            "haproxy": {"haproxy": [self.fronts["haproxy"].pid]},
            "srcache": {"nginx": children(self.fronts["srcache"].pid), "memcached": mc},
            "straight": {"haproxy": [self.fronts["straight"].pid]},
        }
        origin_pids = children(self.origin.pid)
        for w in self.watch.values():
            w["origin"] = origin_pids
        self.all_pids = sorted(set(
            mc + origin_pids + [self.agent.pid] + children(self.fronts["srcache"].pid)
            + [self.fronts[s].pid for s in ("l1", "ours", "floor", "floorh", "haproxy",
                                            "straight")]))

    def fresh_shards(self):
        """The same three shards again, empty, on the same ports. The miss
        runs fill them with hundreds of thousands of 1 KB entries, and
        memcached gives the pages it handed to one slab class to another
        only slowly: the Zipf fleets' 1 to 64 KB objects then found almost
        no room, and ours and srcache went to the origin for most requests
        (a 2.6 run: 44,486 and 50,180 origin requests in 20 s)."""
        old = [s.pid for s in self.shards]
        for s in self.shards:
            self.procs.stop(s, signal.SIGKILL)
        self.shards = [self.procs.memcached(port=s.port, mem_mb=256) for s in self.shards]
        self.all_pids = sorted(set(p for p in self.all_pids if p not in old) |
                               set(s.pid for s in self.shards))
        for w in self.watch.values():
            if "memcached" in w:
                w["memcached"] = [s.pid for s in self.shards]

    def idle_check(self):
        """Warn when other jobs share the machine: the numbers would be noise."""
        all0, busy0 = cpu_ticks(self.all_pids), machine_busy_ticks()
        time.sleep(2)
        other = ((machine_busy_ticks() - busy0) - (cpu_ticks(self.all_pids) - all0)) / CLK_TCK
        share = other / (2.0 * os.cpu_count())
        if share > BUSY:
            say("bench: WARNING: before the first run, processes this bench did not start "
                "took %.0f%% of the CPUs; results will be noisy" % (100 * share))
        return share

    # ---- checks before a run
    def check_hit(self, sysname, path, size):
        """Fill the cache for path and prove the next request is a hit."""
        port = self.fronts[sysname].port
        st, h, b = get(port, path)
        if st != 200 or len(b) != size:
            raise RuntimeError("%s %s: status %d, %d bytes" % (sysname, path, st, len(b)))
        if sysname in ("ours", "l1"):
            wait_for(lambda: get(port, path)[1].get("x-cache-status") == "Hit",
                     timeout=10, what="a Hit from %s for %s" % (sysname, path))
        elif sysname == "srcache":
            wait_for(lambda: get(port, path)[1].get("x-cache-status") == "HIT",
                     timeout=10, what="a HIT from srcache for %s" % path)
        if sysname in CACHES:
            before = origin_requests(self.origin_status)
            for _ in range(5):
                st, h, b = get(port, path)
                if st != 200 or len(b) != size:
                    raise RuntimeError("%s %s: status %d, %d bytes on a hit"
                                       % (sysname, path, st, len(b)))
            moved = origin_requests(self.origin_status) - before - 1
            if moved:
                raise RuntimeError("%s %s: the origin saw %d of 5 requests that should "
                                   "have been hits" % (sysname, path, moved))

    def check_miss(self):
        port = self.fronts["ours"].port
        path = "/cold?k=probe-%s" % uuid.uuid4().hex
        st, h, b = get(port, path)
        if st != 200 or h.get("x-cache-status") != "Miss" or len(b) != COLD_SIZE:
            raise RuntimeError("ours %s: expected a %d-byte 200 Miss, got %d %r %d bytes"
                               % (path, COLD_SIZE, st, h.get("x-cache-status"), len(b)))
        wait_for(lambda: get(port, path)[1].get("x-cache-status") == "Hit", timeout=10,
                 what="the cold object to be stored")

    # ---- one measured run
    def measure(self, kind, sysname, label, path, conns, script=None):
        watch = self.watch[sysname]
        cpu0 = {k: cpu_ticks(v) for k, v in watch.items()}
        o0 = origin_requests(self.origin_status)
        m0 = agent_metrics(self.admin_port) if sysname == "ours" else None
        spoe = sysname in ("ours", "floor", "floorh", "l1")
        e0 = spoe_errors(self.fronts[sysname]) if spoe else 0
        all0, busy0, wrk0 = cpu_ticks(self.all_pids), machine_busy_ticks(), reaped_children_secs()
        r = wrk(self.procs, self.fronts[sysname].port, path, conns, DURATION, script)
        all1, busy1, wrk1 = cpu_ticks(self.all_pids), machine_busy_ticks(), reaped_children_secs()
        o1 = origin_requests(self.origin_status)
        cpu1 = {k: cpu_ticks(v) for k, v in watch.items()}
        m1 = agent_metrics(self.admin_port) if sysname == "ours" else None
        run = {"kind": kind, "obj": label, "conns": conns, "sys": sysname, "r": r,
               "notes": list(r["errors"]), "origin": o1 - o0 - 1,
               "cpu": {k: (cpu1[k] - cpu0[k]) / CLK_TCK for k in watch}}
        # CPU the machine spent on processes this bench did not start (other
        # jobs on a shared machine): the run's numbers are only as good as this.
        other = ((busy1 - busy0) - (all1 - all0)) / CLK_TCK - (wrk1 - wrk0)
        run["other"] = max(0.0, other) / (os.cpu_count() * (r["secs"] or DURATION))
        n = r["requests"] or 0
        if spoe and spoe_errors(self.fronts[sysname]) > e0:
            run["notes"].append("HAProxy logged %d failed SPOE lookups or stores"
                                % (spoe_errors(self.fronts[sysname]) - e0))
        if kind == "hit" and sysname in CACHES and run["origin"]:
            run["notes"].append("origin saw %d requests: not all hits" % run["origin"])
        if kind == "miss" and run["origin"] < n:
            run["notes"].append("origin saw %d of %d requests" % (run["origin"], n))
        if m0 is not None:
            def d(name):
                return m1.get(name, 0) - m0.get(name, 0)
            hits = d('spoe_cache_lookups_total{status="Hit"}')
            misses = d('spoe_cache_lookups_total{status="Miss"}')
            run["agent"] = {"hits": hits, "misses": misses,
                            "stores": d("spoe_cache_stores_total")}
            if kind == "hit" and hits < n:
                run["notes"].append("agent counted %d hits for %d requests" % (hits, n))
            if kind == "miss" and run["agent"]["stores"] < 0.99 * n:
                run["notes"].append("agent stored %d of %d" % (run["agent"]["stores"], n))
        self.runs.append(run)
        say("  %-5s %-9s c=%-3d %-20s %9s req/s  p50 %-9s p99 %-9s%s" % (
            kind, label, conns, NAMES[sysname], fmt_rps(r["rps"]), fmt_ms(r["p50"]),
            fmt_ms(r["p99"]), "  " + "; ".join(notes(run)) if notes(run) else ""))
        return run

    def run_all(self):
        for label, path, size in OBJECTS if "hits" in PARTS else []:
            for s in NAMES:
                self.check_hit(s, path, size)
                wrk(self.procs, self.fronts[s].port, path, max(CONNS), WARMUP)
                self.check_hit(s, path, size)
            for c in CONNS:
                for s in NAMES:
                    self.measure("hit", s, label, path, c)
        if "miss" in PARTS:
            self.run_miss()
        self.agent_hwm = proc_status_kb(self.agent.pid, "VmHWM")
        self.haproxy_hwm = proc_status_kb(self.fronts["ours"].pid, "VmHWM")

    def run_miss(self):
        self.check_miss()
        for s in ("ours", "straight"):
            wrk(self.procs, self.fronts[s].port, "/", max(CONNS), WARMUP,
                cold_script(self.procs, "warm-%s-%s" % (s, uuid.uuid4().hex[:8])))
        for c in CONNS:
            for s in ("ours", "straight"):
                tag = "%s-c%d-%s" % (s, c, uuid.uuid4().hex[:8])
                self.measure("miss", s, "1 KB cold", "/", c, cold_script(self.procs, tag))


# ---------------------------------------------------------------- fleets

ZIPF_LUA = """-- Zipf(s) over N keys: rank k with weight 1/k^s, as /z/<size>k/<k>
local N, S = %d, %r
local sizes = {%s}
local cdf = {}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  local sum = 0
  for k = 1, N do sum = sum + k ^ (-S); cdf[k] = sum end
  for k = 1, N do cdf[k] = cdf[k] / sum end
  math.randomseed(tonumber(args[1] or "1") * 1000 + tonumber(args[2] or "0") * 100 + tid)
end
function request()
  local u = math.random()
  local lo, hi = 1, N
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  -- the nodes of a fleet stand behind one name (wrk would send each its
  -- own 127.0.0.1:port, which our key and HAProxy's keep apart; nginx's
  -- $host drops the port, so srcache's nodes shared their keys and ours
  -- did not)
  return wrk.format(nil, "/z/" .. sizes[(lo * 7919) %% #sizes + 1] .. "k/" .. lo,
                    {Host = "www.example.com"})
end
"""

def wrk_many(procs, ports, conns, duration, script, args=()):
    """One wrk per port, all at once; their parsed results."""
    ps = []
    for n, port in enumerate(ports):
        argv = ["wrk", "-t", str(min(WRK_THREADS, conns)), "-c", str(conns),
                "-d", "%ds" % duration, "--timeout", "5s", "--latency", "-s", script,
                "http://%s:%d/" % (HOST, port), "--"] + [str(a) for a in args] + [str(n + 1)]
        ps.append(procs.spawn(argv, name="wrk"))
    out = []
    for p in ps:
        try:
            p.wait(timeout=duration + 60)
        except Exception:
            procs.stop(p, signal.SIGKILL)
            raise
        r = parse_wrk(procs.log_text(p))
        if p.returncode != 0:
            r["errors"].append("wrk exited %s" % p.returncode)
        out.append(r)
    return out


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def cpu_per_1000(r):
    """CPU seconds per 1,000 requests of a single-node run's whole system."""
    return sum(r["cpu"].values()) / r["r"]["requests"] * 1000


def fleet_l1_env():
    return {k: v for k, v in (("SPOE_CACHE_L1_TTL", FLEET_L1_TTL),
                              ("SPOE_CACHE_L1_MB", FLEET_L1_MB)) if v}


class Fleet:
    """n nodes of each multi-node system in front of one origin, on the
    bench's three memcached shards:
      ours     n x (HAProxy running cache-before-ratelimit.cfg as it ships,
               the L1 on, and its own agent); every agent on the same pool
      haproxy  n x HAProxy with its own in-memory cache (haproxy-cache.cfg)
      srcache  n x nginx srcache+memc on the same pool (srcache.conf)
    Every process is the bench's Procs'; stop() ends them by PID."""

    def __init__(self, b, tag, n, origin_port, origin_pids):
        self.b, self.tag, self.n = b, tag, n
        self.origin_port, self.origin_pids = origin_port, origin_pids
        self.procs_started = []
        self.ports = {"ours": [], "haproxy": [], "srcache": []}
        self.watch = {"ours": {"haproxy": [], "agent": []}, "haproxy": {"haproxy": []},
                      "srcache": {"nginx": []}}
        self.admin_ports = []
        self.ours_haproxy = []

    def spawned(self, p):
        self.procs_started.append(p)
        return p

    def start(self):
        b, pr = self.b, self.b.procs
        user = "user root;" if os.geteuid() == 0 else ""
        template = os.path.join(ROOT, "haproxy-conf", "cache-before-ratelimit.cfg")
        for i in range(self.n):
            name = "%s-%d" % (self.tag, i)
            agent_port, admin_port, port = free_port(), free_port(), free_port()
            conf = pr.write("agent-%s.conf" % name, agent_config(
                [(s.port, w) for s, w in zip(b.shards, (100, 100, 50))],
                agent_port, admin_port, FLEET_POLICIES, threads=2, log_level="notice"))
            agent = self.spawned(pr.spawn([AGENT, "-c", conf], name="agent-" + name))
            wait_port(agent_port, proc=agent)
            wait_port(admin_port, proc=agent)
            self.admin_ports.append(admin_port)
            hp = self.spawned(haproxy(pr, "ours-" + name, template, {
                "SPOE_CACHE_HOME": ROOT,
                "SPOE_CACHE_BIND": "%s:%d" % (HOST, port),
                "SPOE_CACHE_ORIGIN": "%s:%d" % (HOST, self.origin_port),
                "SPOE_CACHE_AGENT": "%s:%d" % (HOST, agent_port),
                "SPOE_CACHE_ADMIN": "%s:%d" % (HOST, admin_port),
                "SPOE_CACHE_STATS_SOCKET": pr.path("haproxy-ours-%s.sock" % name),
                "SPOE_CACHE_RATE_LIMIT": str(RATE_LIMIT),
                "SPOE_CACHE_POLICY": "default", **fleet_l1_env()}, port))
            self.ports["ours"].append(port)
            self.ours_haproxy.append(hp)
            self.watch["ours"]["haproxy"].append(hp.pid)
            self.watch["ours"]["agent"].append(agent.pid)

            port = free_port()
            hp = self.spawned(haproxy(pr, "cache-" + name, os.path.join(HERE, "haproxy-cache.cfg"), {
                "BENCH_NBTHREAD": b.nbthread,
                "BENCH_BIND": "%s:%d" % (HOST, port),
                "BENCH_ORIGIN": "%s:%d" % (HOST, self.origin_port),
                "BENCH_STATS_SOCKET": pr.path("haproxy-cache-%s.sock" % name)}, port))
            self.ports["haproxy"].append(port)
            self.watch["haproxy"]["haproxy"].append(hp.pid)

            port = free_port()
            ng = self.spawned(nginx(pr, "srcache-" + name, fill("srcache.conf", {
                "USER": user, "WORKERS": WORKERS, "DIR": pr.dir, "PORT": port,
                "NAME": "srcache-" + name, "ORIGIN": self.origin_port,
                "MC1": b.shards[0].port, "MC2": b.shards[1].port, "MC3": b.shards[2].port}),
                port))
            self.ports["srcache"].append(port)
            self.watch["srcache"]["nginx"] += children(ng.pid)
        mc = [s.pid for s in b.shards]
        self.watch["ours"]["memcached"] = mc
        self.watch["srcache"]["memcached"] = mc
        for w in self.watch.values():
            w["origin"] = self.origin_pids
        self.all_pids = sorted(set(b.all_pids + self.origin_pids + [
            pid for w in self.watch.values() for pids in w.values() for pid in pids]))

    def stop(self):
        for p in reversed(self.procs_started):
            self.b.procs.stop(p)
        self.procs_started = []

    def window(self, sysname, fn):
        """fn() between two readings of the CPU of sysname's processes and of
        the machine: (fn's result, CPU seconds by process kind, share of
        the CPUs other jobs took)."""
        watch = self.watch[sysname]
        cpu0 = {k: cpu_ticks(v) for k, v in watch.items()}
        all0, busy0, wrk0 = cpu_ticks(self.all_pids), machine_busy_ticks(), reaped_children_secs()
        t0 = time.time()
        res = fn()
        secs = time.time() - t0
        all1, busy1, wrk1 = cpu_ticks(self.all_pids), machine_busy_ticks(), reaped_children_secs()
        cpu = {k: (cpu_ticks(v) - cpu0[k]) / CLK_TCK for k, v in watch.items()}
        other = ((busy1 - busy0) - (all1 - all0)) / CLK_TCK - (wrk1 - wrk0)
        return res, cpu, max(0.0, other) / (os.cpu_count() * secs)

    # ---- the Zipf workload
    def zipf(self, sysname):
        pr = self.b.procs
        script = pr.write("zipf.lua", ZIPF_LUA % (ZIPF_KEYS, ZIPF_S, ", ".join(
            str(k) for k in ZIPF_SIZES_KB)))
        ports = self.ports[sysname][:ZIPF_NODES]
        seed = [int(time.time()) % 100000]
        # warm-up: the same distribution, other seeds
        wrk_many(pr, ports, ZIPF_CONNS, ZIPF_WARMUP, script, seed)
        o0 = origin_requests(self.b.origin_status)
        e0 = sum(spoe_errors(p) for p in self.ours_haproxy)
        a0 = self.agent_lookups() if sysname == "ours" else 0
        rs, cpu, other = self.window(sysname, lambda: wrk_many(
            pr, ports, ZIPF_CONNS, ZIPF_DURATION, script, [seed[0] + 1]))
        o1 = origin_requests(self.b.origin_status)
        e1 = sum(spoe_errors(p) for p in self.ours_haproxy)
        errs = [e for r in rs for e in r["errors"]]
        if sysname == "ours" and e1 > e0:
            errs.append("HAProxy logged %d failed SPOE lookups or stores" % (e1 - e0))
        requests = sum(r["requests"] or 0 for r in rs)
        # ours: what the agents did not see, the L1 answered
        l1 = (", L1 answered %.0f%%" % (100.0 * max(0, requests - (self.agent_lookups() - a0))
                                        / requests)) if sysname == "ours" and requests else ""
        run = {"kind": "zipf", "sys": sysname, "cpu": cpu, "other": other,
               "origin": o1 - o0 - 1, "notes": errs,
               "requests": requests,
               "rps": sum(r["rps"] or 0 for r in rs),
               "p50": max((r["p50"] or 0) for r in rs), "p99": max((r["p99"] or 0) for r in rs)}
        say("  zipf  %-20s %9s req/s  p50 %-9s p99 %-9s origin %d%s%s" % (
            FLEET_NAMES[sysname], fmt_rps(run["rps"]), fmt_ms(run["p50"]), fmt_ms(run["p99"]),
            run["origin"], l1, "  " + "; ".join(notes(run)) if notes(run) else ""))
        return run

    def agent_lookups(self):
        """Lookups every agent of ours has answered, whatever their status."""
        return sum(v for port in self.admin_ports for k, v in agent_metrics(port).items()
                   if k.startswith("spoe_cache_lookups_total{"))

    # ---- the thundering herd
    def origin_count(self, path):
        st, _, body = get(self.origin_port, "/__count?u=" + urllib.parse.quote("GET " + path))
        return int(body)

    def herd(self, sysname):
        ports = self.ports[sysname]
        lat, codes, labels, origin = [], {}, {}, []
        lock = threading.Lock()
        for rnd in range(HERD_ROUNDS):
            # cacheable by every system (FLEET_POLICIES honour Cache-Control)
            path = "/gen?delay=%d&h=Cache-Control:max-age=60&k=herd-%s-%d-%s" % (
                HERD_ORIGIN_MS, sysname, rnd, uuid.uuid4().hex[:8])
            barrier = threading.Barrier(HERD_CLIENTS)

            def client(i):
                try:
                    barrier.wait(timeout=30)
                    t0 = time.time()
                    st, h, _ = get(ports[i % len(ports)], path, host="www.example.com")
                    dt = (time.time() - t0) * 1e3
                except Exception as e:  # a refused or reset connection
                    st, h, dt = "error %s" % type(e).__name__, {}, None
                with lock:
                    codes[st] = codes.get(st, 0) + 1
                    v = h.get("x-cache-status") or h.get("x-cache") or "-"
                    labels[v] = labels.get(v, 0) + 1
                    if dt is not None:
                        lat.append(dt)
            ts = [threading.Thread(target=client, args=(i,)) for i in range(HERD_CLIENTS)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            origin.append(self.origin_count(path))
        run = {"kind": "herd", "sys": sysname, "origin": origin, "codes": codes,
               "labels": labels, "p50": percentile(lat, 0.50), "p99": percentile(lat, 0.99),
               "requests": len(lat), "notes": [], "other": 0}
        say("  herd  %-20s origin per cold key %s  p50 %-9s p99 %-9s %s" % (
            FLEET_NAMES[sysname], "/".join(str(o) for o in origin), fmt_ms(run["p50"]),
            fmt_ms(run["p99"]), codes))
        return run

    # ---- the origin outage
    def outage_urls(self):
        fresh = ["/gen?body=outage-fresh-%d&h=%s" % (i, urllib.parse.quote(
            "Cache-Control: max-age=300")) for i in range(OUTAGE_URLS)]
        stale = ["/gen?body=outage-stale-%d&h=%s" % (i, urllib.parse.quote(
            "Cache-Control: max-age=1, stale-if-error=300")) for i in range(OUTAGE_URLS)]
        return fresh, stale

    def outage_store(self):
        """Every URL through every node of every system, twice (the second
        time a hit where the first one was stored)."""
        fresh, stale = self.outage_urls()
        for sysname, ports in self.ports.items():
            for port in ports:
                for path in fresh + stale:
                    for _ in range(2):
                        st, h, b = get(port, path)
                        if st != 200:
                            raise RuntimeError("outage: %s %s: status %d before the outage"
                                               % (sysname, path, st))

    def outage(self, sysname):
        """Every stored URL through every node, OUTAGE_PASSES times, from
        OUTAGE_CLIENTS threads: served (2xx) or not, and how long it took.
        A fixed count rather than a duration: a proxy that waits for its
        retries before its 503 (about 3 s) would otherwise hardly show."""
        fresh, stale = self.outage_urls()
        run = {"kind": "outage", "sys": sysname, "notes": [], "other": 0}
        for label, paths in (("fresh", fresh), ("stale", stale)):
            todo = [(port, p) for _ in range(OUTAGE_PASSES) for port in self.ports[sysname]
                    for p in paths]
            lat, codes, lock = [], {}, threading.Lock()

            def client():
                while True:
                    with lock:
                        if not todo:
                            return
                        port, path = todo.pop()
                    t0 = time.time()
                    try:
                        st = get(port, path)[0]
                    except Exception as e:  # refused, reset, timed out
                        st = "error %s" % type(e).__name__
                    with lock:
                        lat.append((time.time() - t0) * 1e3)
                        codes[st] = codes.get(st, 0) + 1
            ts = [threading.Thread(target=client) for _ in range(OUTAGE_CLIENTS)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            ok = sum(n for st, n in codes.items() if isinstance(st, int) and 200 <= st < 300)
            run[label] = {"requests": len(lat), "served": ok, "errors": len(lat) - ok,
                          "codes": codes, "p50": percentile(lat, 0.50),
                          "p99": percentile(lat, 0.99)}
        say("  outage %-19s fresh: %d served, %d not; stale: %d served, %d not %s" % (
            FLEET_NAMES[sysname], run["fresh"]["served"], run["fresh"]["errors"],
            run["stale"]["served"], run["stale"]["errors"], run["stale"]["codes"]))
        return run


def run_fleets(b):
    """The multi-node runs of PARTS: the Zipf workload on the bench's nginx
    origin, then the thundering herd and the origin outage on a Python
    origin that can wait (origin.py /slow) and be stopped. b.fleet_runs gets
    their results."""
    b.fleet_runs = []
    order = ["ours", "haproxy", "srcache"]
    if "zipf" in PARTS:
        say("bench: Zipf workload, %d keys, s=%.2f, %s KB, %d nodes per system, c=%d per node"
            % (ZIPF_KEYS, ZIPF_S, "/".join(str(k) for k in ZIPF_SIZES_KB), ZIPF_NODES,
               ZIPF_CONNS))
        b.fresh_shards()
        f = Fleet(b, "zipf", ZIPF_NODES, b.origin_port, children(b.origin.pid))
        f.start()
        try:
            for s in order:
                b.fleet_runs.append(f.zipf(s))
        finally:
            f.stop()
    if "herd" in PARTS or "outage" in PARTS:
        pr = b.procs
        oport = free_port()
        origin = pr.spawn([sys.executable, os.path.join(ROOT, "tests", "lib", "origin.py"),
                           str(oport)], name="origin-py")
        wait_port(oport, proc=origin)
        f = Fleet(b, "herd", HERD_NODES, oport, [origin.pid])
        f.start()
        try:
            if "herd" in PARTS:
                say("bench: thundering herd, %d clients at once on one cold key, %d nodes per "
                    "system, origin %d ms, %d keys" % (HERD_CLIENTS, HERD_NODES, HERD_ORIGIN_MS,
                                                       HERD_ROUNDS))
                for s in order:
                    b.fleet_runs.append(f.herd(s))
            if "outage" in PARTS:
                say("bench: origin outage, %d fresh and %d stale stored URLs, %d nodes per "
                    "system, origin stopped" % (OUTAGE_URLS, OUTAGE_URLS, HERD_NODES))
                f.outage_store()
                time.sleep(2.5)     # the stale set is now past its max-age=1
                pr.stop(origin, signal.SIGKILL)
                for s in order:
                    b.fleet_runs.append(f.outage(s))
        finally:
            f.stop()
            pr.stop(origin, signal.SIGKILL)


def fleet_report(b):
    runs = getattr(b, "fleet_runs", [])
    if not runs:
        return

    def find(kind, s):
        return next((r for r in runs if (r["kind"], r["sys"]) == (kind, s)), None)

    say("")
    zipf = [r for r in runs if r["kind"] == "zipf"]
    if zipf:
        ours = find("zipf", "ours")
        say("ZIPF (%d keys, s=%.2f, %s KB objects; %d nodes per system at once, %d conns each, "
            "%d s after a %d s warm-up; p50/p99: the slower node)" % (
                ZIPF_KEYS, ZIPF_S, "/".join(str(k) for k in ZIPF_SIZES_KB), ZIPF_NODES,
                ZIPF_CONNS, ZIPF_DURATION, ZIPF_WARMUP))
        say("ours: %d HAProxy (cache-before-ratelimit.cfg as shipped, L1 on) + %d agents on one "
            "pool; HAProxy cache: each node its own; srcache: %d nginx on the same pool"
            % (ZIPF_NODES, ZIPF_NODES, ZIPF_NODES))
        say("%-20s %9s %9s %9s %8s %8s  %s" % ("system", "req/s", "p50", "p99", "rps/ours",
                                             "origin", "CPU s per 1,000 requests: "
                                             "haproxy agent memcachd nginx origin total"))
        for s in ("ours", "haproxy", "srcache"):
            r = find("zipf", s)
            if not r:
                continue
            n = r["requests"] or 1
            cells = " ".join("%.4f" % (r["cpu"][k] / n * 1000) if k in r["cpu"] else "-"
                             for k in ("haproxy", "agent", "memcached", "nginx", "origin"))
            say("%-20s %9s %9s %9s %8s %8d  %s %.4f  %s" % (
                FLEET_NAMES[s], fmt_rps(r["rps"]), fmt_ms(r["p50"]), fmt_ms(r["p99"]),
                ratio(r["rps"], ours["rps"]) if ours else "-", r["origin"], cells,
                sum(r["cpu"].values()) / n * 1000, "; ".join(notes(r))))
        o, x = find("zipf", "ours"), find("zipf", "srcache")
        if o and x and x["rps"]:
            v = o["rps"] / x["rps"]
            say("TARGET zipf >= 1.2x nginx srcache+memc: %.2fx %s" % (
                v, "met" if v >= 1.2 else "MISSED"))
        say("")
    if any(r["kind"] == "herd" for r in runs):
        say("THUNDERING HERD (%d clients at once per cold key over %d nodes per system, origin "
            "%d ms, %d cold keys; latency of each client request)" % (
                HERD_CLIENTS, HERD_NODES, HERD_ORIGIN_MS, HERD_ROUNDS))
        say("%-20s %-22s %9s %9s  %s" % ("system", "origin req per key", "p50", "p99",
                                         "statuses; cache labels"))
        for s in ("ours", "haproxy", "srcache"):
            r = find("herd", s)
            if r:
                say("%-20s %-22s %9s %9s  %s; %s" % (
                    FLEET_NAMES[s], "/".join(str(o) for o in r["origin"]), fmt_ms(r["p50"]),
                    fmt_ms(r["p99"]), r["codes"], r["labels"]))
        say("(ideal: 1 origin request per key; a cache without collapsed forwarding sends "
            "every concurrent miss)")
        say("")
    if any(r["kind"] == "outage" for r in runs):
        say("ORIGIN OUTAGE (origin stopped; each of %d stored URLs still fresh, then each of %d "
            "past max-age=1 with stale-if-error=300, %d times through each of %d nodes, %d "
            "clients at once)" % (OUTAGE_URLS, OUTAGE_URLS, OUTAGE_PASSES, HERD_NODES,
                                  OUTAGE_CLIENTS))
        say("%-20s %9s %9s %9s   %9s %9s %9s %9s  %s" % (
            "system", "fresh ok", "fresh err", "p99", "stale ok", "stale err", "p50", "p99",
            "stale statuses"))
        for s in ("ours", "haproxy", "srcache"):
            r = find("outage", s)
            if r:
                f, st = r["fresh"], r["stale"]
                say("%-20s %9d %9d %9s   %9d %9d %9s %9s  %s" % (
                    FLEET_NAMES[s], f["served"], f["errors"], fmt_ms(f["p99"]), st["served"],
                    st["errors"], fmt_ms(st["p50"]), fmt_ms(st["p99"]), st["codes"]))
        say("(err: not 2xx: a 5xx from a proxy without its origin, or a failed connection; "
            "ideal: every stored URL served, the stale ones under stale-if-error)")
        say("")


# ---------------------------------------------------------------- report


def notes(run):
    out = ["!! " + n for n in run["notes"]]
    if run.get("other", 0) > BUSY:
        out.append("machine busy: other jobs took %.0f%% of the CPUs" % (100 * run["other"]))
    return out


def fmt_rps(x):
    return "-" if x is None else "%.0f" % x


def fmt_ms(x):
    if x is None:
        return "-"
    return "%.0fus" % (x * 1e3) if x < 1 else "%.2fms" % x


def ratio(a, b):
    return "-" if not a or not b else "%.2fx" % (a / b)


def report(b):
    def find(kind, obj, conns, s):
        for r in b.runs:
            if (r["kind"], r["obj"], r["conns"], r["sys"]) == (kind, obj, conns, s):
                return r
        return None

    hdr = "%-10s %5s  %-20s %9s %9s %9s  %8s %8s %8s  %s" % (
        "object", "conns", "system", "req/s", "p50", "p99", "rps/ours", "p50/ours",
        "p99/ours", "notes")
    say("")
    say("=" * len(hdr))
    say("spoe-cache bench: every process on 127.0.0.1, 2 CPUs shared by client and servers")
    say("wrk -t%d, %d s per run after a %d s warm-up; %s, nbthread %s for every HAProxy; "
        "nginx %d workers" % (WRK_THREADS, DURATION, WARMUP, b.haproxy_version, b.nbthread,
                              WORKERS))
    say("L1 and ours (L2: SPOE_CACHE_L1_TTL=0): haproxy-conf/cache-before-ratelimit.cfg "
        "unchanged, agent -O2 with 2 threads, shards weighted 100/100/50 (ketama); "
        "every HAProxy with GLIBC_TUNABLES=%s"
        % HAPROXY_TUNABLES)
    say("nginx srcache+memc: same 3 memcached shards, set_hashed_upstream (modulo hashing, "
        "not ketama)")
    say("rps/ours = that system's req/s divided by ours (>1: faster than ours); "
        "p50/p99 ratios likewise (>1: slower than ours)")
    say("")
    say("HITS (every response from the cache; the origin's request count is checked)")
    say(hdr)
    for label, _, _ in OBJECTS:
        for c in CONNS:
            ours = find("hit", label, c, "ours")
            for s in NAMES:
                r = find("hit", label, c, s)
                if not r:
                    continue
                w = r["r"]
                n = notes(r)
                if s == "straight":
                    n.insert(0, "no cache: every request to the origin")
                if s == "floor":
                    n.insert(0, "no cache work: SPOE Bypass + Lua from memory")
                if s == "floorh":
                    n.insert(0, "the floor plus the %d other headers of ours' 1 KB hit"
                             % b.floorh_headers)
                say("%-10s %5d  %-20s %9s %9s %9s  %8s %8s %8s  %s" % (
                    label, c, NAMES[s], fmt_rps(w["rps"]), fmt_ms(w["p50"]), fmt_ms(w["p99"]),
                    ratio(w["rps"], ours["r"]["rps"]), ratio(w["p50"], ours["r"]["p50"]),
                    ratio(w["p99"], ours["r"]["p99"]), "; ".join(n)))
            say("")
    say("MISS PATH (a cold key every request: lookup miss, origin fetch, store)")
    say(hdr)
    for c in CONNS:
        ours = find("miss", "1 KB cold", c, "ours")
        for s in ("ours", "straight"):
            r = find("miss", "1 KB cold", c, s)
            if not r:
                continue
            w = r["r"]
            say("%-10s %5d  %-20s %9s %9s %9s  %8s %8s %8s  %s" % (
                "1 KB cold", c, NAMES[s], fmt_rps(w["rps"]), fmt_ms(w["p50"]), fmt_ms(w["p99"]),
                ratio(w["rps"], ours["r"]["rps"]), ratio(w["p50"], ours["r"]["p50"]),
                ratio(w["p99"], ours["r"]["p99"]), "; ".join(notes(r))))
    say("")

    say("CPU seconds per 1,000 requests, by process (from /proc utime+stime over each run)")
    say("%-4s %-10s %5s  %-20s %8s %8s %8s %8s %8s %8s  %s" % (
        "", "object", "conns", "system", "haproxy", "agent", "memcachd", "nginx", "origin",
        "total", "other jobs"))
    for r in b.runs:
        n = r["r"]["requests"]
        if not n:
            continue
        cells = []
        for k in ("haproxy", "agent", "memcached", "nginx", "origin"):
            cells.append("%8.4f" % (r["cpu"][k] / n * 1000) if k in r["cpu"] else "%8s" % "-")
        say("%-4s %-10s %5d  %-20s %s %8.4f  %4.0f%%" % (
            r["kind"], r["obj"], r["conns"], NAMES[r["sys"]], " ".join(cells),
            cpu_per_1000(r), 100 * r["other"]))
    say("(total: the server-side processes of that system; other jobs: share of the CPUs "
        "taken by processes this bench did not start, wrk excluded)")
    say("")
    agent_runs = [r for r in b.runs if r["sys"] == "ours" and r["r"]["requests"]]
    for r in agent_runs:
        say("agent: %.4f CPU s per 1,000 %s (%s, %d conns; %d requests, %d %s counted by the agent)"
            % (r["cpu"]["agent"] / r["r"]["requests"] * 1000,
               "hits" if r["kind"] == "hit" else "misses", r["obj"], r["conns"],
               r["r"]["requests"], r["agent"]["hits" if r["kind"] == "hit" else "misses"],
               "hits" if r["kind"] == "hit" else "misses"))
    say("agent peak RSS (VmHWM): %.1f MB; ours' HAProxy peak RSS: %.1f MB"
        % (b.agent_hwm / 1024.0, b.haproxy_hwm / 1024.0))
    say("")

    def compare(mine, kind, other, want):
        """mine's req/s over other's in every cell: (all >= want, cell texts)."""
        cells, ok = [], True
        objs = [o[0] for o in OBJECTS] if kind == "hit" else ["1 KB cold"]
        for obj in objs:
            for c in CONNS:
                o, x = find(kind, obj, c, mine), find(kind, obj, c, other)
                if not o or not x or not o["r"]["rps"] or not x["r"]["rps"]:
                    cells.append("%s c%d: no data" % (obj, c))
                    ok = False
                    continue
                v = o["r"]["rps"] / x["r"]["rps"]
                flag = "" if want is None or v >= want else " MISSED"
                # the same ratio in CPU per request, which survives a busy
                # machine better: the other's CPU over mine (>1: mine cheaper)
                if o["r"]["requests"] and x["r"]["requests"] and sum(o["cpu"].values()):
                    flag += " (CPU %.2fx)" % (cpu_per_1000(x) / cpu_per_1000(o))
                if o["notes"] or x["notes"]:
                    flag += " (run had errors)"
                elif max(o["other"], x["other"]) > BUSY:
                    flag += " (machine busy)"
                ok = ok and (want is None or v >= want)
                cells.append("%s c%d %.2fx%s" % (obj, c, v, flag))
        return ok, cells

    # MISSION.md section 6 (the Zipf target is the fleets' part, below them)
    targets = (("l1", "hit", "haproxy", 0.9, "L1 hits >= 0.9x HAProxy's own cache"),
               ("ours", "hit", "floor", 0.85, "L2 hits >= 0.85x the SPOE+Lua floor"),
               ("ours", "miss", "straight", 0.6, "miss path >= 0.6x straight-to-origin"))
    say("TARGETS (req/s divided by the other's, every cell of the run; in brackets the other's "
        "CPU per request divided by ours)")
    all_ok = True
    for mine, kind, other, want, what in targets:
        ok, cells = compare(mine, kind, other, want)
        all_ok = all_ok and ok
        say("  %-38s %-6s  %s" % (what, "met" if ok else "MISSED", ", ".join(cells)))
    say("COMPARED (req/s divided by the other's)")
    for mine, other, what in (("l1", "srcache", "L1 hits / nginx srcache+memc"),
                              ("ours", "srcache", "L2 hits / nginx srcache+memc"),
                              ("ours", "haproxy", "L2 hits / HAProxy's own cache"),
                              ("ours", "floorh", "L2 hits / the floor, hit's headers"),
                              ("floor", "srcache", "the floor / nginx srcache+memc")):
        say("  %-38s %-6s  %s" % (what, "", ", ".join(compare(mine, "hit", other, None)[1])))
    errs = [r for r in b.runs if r["notes"]]
    if errs:
        say("  note: %d run(s) had errors or failed checks (marked !!), see notes above"
            % len(errs))
    busy = [r for r in b.runs if r["other"] > BUSY]
    if busy or b.idle_before > BUSY:
        say("  note: other jobs shared the machine during %d of %d runs (up to %.0f%% of the "
            "CPUs): those numbers are noisy, run again on an idle machine"
            % (len(busy), len(b.runs), 100 * max([r["other"] for r in b.runs] + [b.idle_before])))
    say("=" * len(hdr))
    return all_ok


def side_by_side(benches):
    """Ours and the floor on every HAProxy of this `make bench`, per cell:
    req/s, and CPU s per 1,000 requests of the whole system under test."""
    say("")
    say("ACROSS HAPROXY VERSIONS (req/s, CPU s per 1,000 requests in brackets)")
    cols = []
    for b in benches:
        for s in ("l1", "ours", "floor"):
            cols.append((b, s, "%s %s" % (b.haproxy_version.split()[1].split("-")[0],
                                           {"l1": "L1", "ours": "L2"}.get(s, "floor"))))
    say("%-10s %5s  " % ("object", "conns") + " ".join("%20s" % c[2] for c in cols))
    cells = [("hit", o[0], c) for o in OBJECTS for c in CONNS] + \
        [("miss", "1 KB cold", c) for c in CONNS]
    for kind, obj, conns in cells:
        row = []
        for b, s, _ in cols:
            r = next((x for x in b.runs if (x["kind"], x["obj"], x["conns"], x["sys"])
                      == (kind, obj, conns, s)), None)
            if not r or not r["r"]["requests"]:
                row.append("%20s" % "-")
                continue
            cpu = cpu_per_1000(r)
            row.append("%20s" % ("%s (%.4f)%s" % (fmt_rps(r["r"]["rps"]), cpu,
                                                   " !!" if r["notes"] else "")))
        say("%-10s %5d  " % (obj, conns) + " ".join(row))
    say("(!!: the run had errors or failed checks, see that version's notes)")
    if not any(getattr(b, "fleet_runs", None) for b in benches):
        return
    say("")
    say("FLEETS ACROSS HAPROXY VERSIONS (zipf: req/s, CPU s per 1,000 requests, origin "
        "requests; herd: origin requests per key, p99; outage: stale URLs served/errors)")
    for b in benches:
        v = b.haproxy_version.split()[1].split("-")[0]
        for r in getattr(b, "fleet_runs", []):
            if r["kind"] == "zipf":
                what = "%s req/s (%.4f), origin %d" % (
                    fmt_rps(r["rps"]), sum(r["cpu"].values()) / (r["requests"] or 1) * 1000,
                    r["origin"])
            elif r["kind"] == "herd":
                what = "origin %s, p99 %s" % ("/".join(str(o) for o in r["origin"]),
                                              fmt_ms(r["p99"]))
            else:
                what = "stale %d served / %d errors" % (r["stale"]["served"],
                                                        r["stale"]["errors"])
            say("  %-6s %-7s %-20s %s%s" % (v, r["kind"], FLEET_NAMES[r["sys"]], what,
                                          " !!" if r["notes"] else ""))


def main():
    global HAPROXY
    preflight()
    procs = Procs()

    def on_signal(*_):
        raise KeyboardInterrupt
    # Also when started with SIGINT ignored (a background job): every process
    # this bench started must go, whatever stops it.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    t0 = time.time()
    benches = []
    failed = interrupted = False
    try:
        for HAPROXY in HAPROXYS:
            b = Bench(procs)
            say("bench: %s: starting memcached x3, nginx origin, agent, 4 HAProxy, nginx "
                "srcache (logs in %s)" % (HAPROXY, procs.dir))
            b.start()
            b.idle_before = b.idle_check()
            say("bench: ~%d s of wrk runs" % (
                ("hits" in PARTS) * len(OBJECTS) * len(NAMES) * (WARMUP + len(CONNS) * DURATION)
                + ("miss" in PARTS) * (2 * WARMUP + 2 * len(CONNS) * DURATION)
                + ("zipf" in PARTS) * 3 * (ZIPF_WARMUP + ZIPF_DURATION)
                + ("outage" in PARTS) * 3 * OUTAGE_PASSES * 3 * OUTAGE_URLS // OUTAGE_CLIENTS * 3))
            b.run_all()
            if "hits" in PARTS or "miss" in PARTS:
                report(b)
            run_fleets(b)
            fleet_report(b)
            benches.append(b)
            if HAPROXY != HAPROXYS[-1]:
                procs.close()
                procs.cleanup()
                procs = Procs()
        if len(benches) > 1:
            side_by_side(benches)
    except KeyboardInterrupt:
        interrupted = True
        say("bench: interrupted")
    except Exception:
        failed = True
        traceback.print_exc()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        procs.close(failed=failed)
        if failed:
            say("bench: logs kept in %s" % procs.dir)
        else:
            procs.cleanup()
        say("bench: stopped every process it started (%.0f s)" % (time.time() - t0))
    sys.exit(1 if failed or interrupted else 0)


if __name__ == "__main__":
    main()
