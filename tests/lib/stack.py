"""stack.py - the whole product on loopback: memcached shards, the agent,
the demo origin and HAProxy running a shipped template unchanged (only its
"${NAME-default}" environment variables are set). Used by the end-to-end
tests and by `make run`.

The templates turn the node-local tier (L1) on; a Stack turns it off
(SPOE_CACHE_L1_TTL=0) unless l1_ttl is given, because most end-to-end tests
are about what the agent and the shared pool do (a purge is seen at once
there, not through the L1's invalidation feed): tests/e2e/test_l1.py is the
one about the L1. HAProxy polls the feed on the agent's admin endpoint
(SPOE_CACHE_ADMIN, with SPOE_CACHE_ADMIN_TOKEN when admin_token is given).
"""
import http.client
import json
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (AGENT, AGENT_ASAN, CTL, HAPROXY, HOST, ROOT, free_port,  # noqa: E402
                     make_tls, wait_for, wait_port)

DEFAULT_POLICIES = """
  default: {
    content_type = ["text/plain", "application/json", "application/octet-stream"];
    cache_ttl = 300;
  };
"""


def agent_config(shards, port, admin_port, policies=DEFAULT_POLICIES, threads=2,
                 pool_extra="", agent_extra="", log_level="info", timeout_ms=500,
                 admin_token=None):
    """shards: list of (port, weight); timeout_ms: memcached.timeout;
    admin_token: agent.admin.token (None: none)."""
    hosts = ",\n".join('    { host = "127.0.0.1"; port = %d; weight = %d; }' % (p, w)
                       for p, w in shards)
    admin = "%d;" % admin_port + (' token = "%s";' % admin_token if admin_token else "")
    return """agent: {
  listen = "127.0.0.1";
  port = %d;
  threads = %d;
  admin: { listen = "127.0.0.1"; port = %s };
  log: { level = "%s"; };
  %s
};
memcached: {
  hosts = (
%s
  );
  timeout = %d;
  %s
};
policies: {
%s
};
""" % (port, threads, admin, log_level, agent_extra, hosts, timeout_ms, pool_extra, policies)


class Stack:
    def __init__(self, procs, template="cache-before-ratelimit.cfg", weights=(100, 100, 50),
                 policies=DEFAULT_POLICIES, rate_limit=10**9, asan=False, threads=2,
                 pool_extra="", agent_extra="", log_level="info", policy="default",
                 haproxy_extra_env=None, shards=None, ports=None, l1_ttl=0, timeout_ms=500,
                 admin_token=None):
        ports = ports or {}
        self.procs = procs
        self.shards = shards if shards is not None else [
            procs.memcached(port=p) for p in (ports.get("memcached") or [None] * len(weights))]
        self.weights = list(weights)
        self.agent_port = ports.get("agent") or free_port()
        self.admin_port = ports.get("admin") or free_port()
        self.origin_port = ports.get("origin") or free_port()
        self.http_port = ports.get("http") or free_port()
        self.stats_sock = procs.path("haproxy.sock")
        self.template = template
        self.policies = policies
        self.threads = threads
        self.pool_extra = pool_extra
        self.agent_extra = agent_extra
        self.log_level = log_level
        self.timeout_ms = timeout_ms
        self.admin_token = admin_token
        self.asan = asan
        self.conf = procs.write("spoe-cache.conf", self.config_text())
        self.origin = procs.spawn([sys.executable, os.path.join(ROOT, "tests/lib/origin.py"),
                                   str(self.origin_port)], name="origin")
        wait_port(self.origin_port, proc=self.origin)
        self.agent = None
        self.start_agent()
        self.env = {
            "SPOE_CACHE_HOME": ROOT,
            "SPOE_CACHE_BIND": "%s:%d" % (HOST, self.http_port),
            "SPOE_CACHE_ORIGIN": "%s:%d" % (HOST, self.origin_port),
            "SPOE_CACHE_AGENT": "%s:%d" % (HOST, self.agent_port),
            "SPOE_CACHE_ADMIN": "%s:%d" % (HOST, self.admin_port),
            "SPOE_CACHE_STATS_SOCKET": self.stats_sock,
            "SPOE_CACHE_RELAY_SOCKET": procs.path("relay.sock"),
            "SPOE_CACHE_RATE_LIMIT": str(rate_limit),
            "SPOE_CACHE_POLICY": policy,
            "SPOE_CACHE_L1_TTL": str(l1_ttl),
            # HAProxy touches all of its cache at start: the templates'
            # 256 MiB per HAProxy is more than any test fills
            "SPOE_CACHE_L1_MB": "16",
        }
        if admin_token:
            self.env["SPOE_CACHE_ADMIN_TOKEN"] = admin_token
        if haproxy_extra_env:
            self.env.update(haproxy_extra_env)
        self.haproxy = None
        self.start_haproxy()

    def config_text(self):
        return agent_config([(s.port, w) for s, w in zip(self.shards, self.weights)],
                            self.agent_port, self.admin_port, self.policies, self.threads,
                            self.pool_extra, self.agent_extra, self.log_level, self.timeout_ms,
                            self.admin_token)

    def start_agent(self):
        binary = AGENT_ASAN if self.asan else AGENT
        self.agent = self.procs.spawn([binary, "-c", self.conf], name="agent")
        wait_port(self.agent_port, proc=self.agent)
        wait_port(self.admin_port, proc=self.agent)
        return self.agent

    def reconfigure(self, old, new):
        """Restart the agent with the line old of its config replaced by new;
        returns once HAProxy's health check sees it up again (a check that
        ran while it was stopped marks it down for a few seconds)."""
        self.stop_agent()
        with open(self.conf) as f:
            text = f.read()
        assert old in text, old
        with open(self.conf, "w") as f:
            f.write(text.replace(old, new))
        agent = self.start_agent()
        wait_for(self.agent_seen_up, timeout=15, step=0.1, what="HAProxy to see the agent up")
        return agent

    def generation(self):
        """(taken, loaded, held) from /metrics: the configuration generation
        every worker and the admin endpoint use, the newest one loaded, and
        how many generations the agent still holds."""
        m = self.metrics()
        return (int(m["spoe_cache_config_generation"]),
                int(m["spoe_cache_config_generation_loaded"]),
                int(m["spoe_cache_configs_held"]))

    def wait_generation(self, n, timeout=15):
        """Wait until every thread of the agent uses generation n or newer."""
        return wait_for(lambda: self.generation()[0] >= n, timeout=timeout, step=0.02,
                        what="every agent thread on configuration generation %d" % n)

    def reload(self, text=None, timeout=15):
        """SIGHUP the agent (after writing text to its config, when given)
        and return the new generation once every thread uses it; an
        AssertionError when the reload is refused (no new generation)."""
        want = self.generation()[1] + 1
        if text is not None:
            with open(self.conf, "w") as f:
                f.write(text)
        os.kill(self.agent.pid, signal.SIGHUP)
        self.wait_generation(want, timeout)
        return want

    def agent_seen_up(self, sock=None):
        try:
            stat = haproxy_cmd(sock or self.stats_sock, "show stat")
        except OSError:     # the stats socket comes up after the listener
            return False
        for line in stat.splitlines():
            f = line.split(",")
            if len(f) > 17 and f[0] == "spoe-cache-agents" and f[1] == "agent1":
                return f[17].startswith("UP")
        return False

    def stop_agent(self):
        rc = self.procs.stop(self.agent)
        return rc

    def second_agent(self):
        """Another agent on the same memcached shards, policies and admin
        token, with its own ports and config: (agent_port, admin_port,
        process). A node() given SPOE_CACHE_AGENT and SPOE_CACHE_ADMIN of
        its ports uses it instead of the first."""
        port, admin = free_port(), free_port()
        conf = self.procs.write("spoe-cache-%d.conf" % port, agent_config(
            [(s.port, w) for s, w in zip(self.shards, self.weights)], port, admin,
            self.policies, self.threads, self.pool_extra, self.agent_extra, self.log_level,
            self.timeout_ms, self.admin_token))
        p = self.procs.spawn([AGENT_ASAN if self.asan else AGENT, "-c", conf], name="agent2")
        wait_port(port, proc=p)
        wait_port(admin, proc=p)
        return port, admin, p

    def admin_headers(self):
        """What an admin request needs: the bearer token, if any."""
        return {"Authorization": "Bearer " + self.admin_token} if self.admin_token else {}

    def start_haproxy(self, template=None):
        cfg = os.path.join(ROOT, "haproxy-conf", template or self.template)
        self.haproxy = self.procs.spawn([HAPROXY, "-db", "-f", cfg], name="haproxy",
                                        env=self.env)
        wait_port(self.http_port, proc=self.haproxy)
        # The SPOE agent connection comes up with the first request; wait
        # until the agent's backend is seen up by its health check.
        return self.haproxy

    def node(self, **env):
        """Another HAProxy on the same agent, origin and template, with its
        own port and stats socket (and env overrides, e.g.
        SPOE_CACHE_POLICY): (port, process)."""
        port = free_port()
        e = dict(self.env, SPOE_CACHE_BIND="%s:%d" % (HOST, port),
                 SPOE_CACHE_STATS_SOCKET=self.procs.path("haproxy-%d.sock" % port),
                 SPOE_CACHE_RELAY_SOCKET=self.procs.path("relay-%d.sock" % port))
        e.update(env)
        cfg = os.path.join(ROOT, "haproxy-conf", self.template)
        p = self.procs.spawn([HAPROXY, "-db", "-f", cfg], name="haproxy", env=e)
        wait_port(port, proc=p)
        wait_for(lambda: self.agent_seen_up(e["SPOE_CACHE_STATS_SOCKET"]), timeout=15,
                 step=0.05, what="the new HAProxy to see the agent up")
        return port, p

    # ---- clients ----
    def request(self, method, path, headers=None, body=None, port=None):
        """One request on a fresh connection: (status, headers dict lowercased, body)."""
        conn = http.client.HTTPConnection(HOST, port or self.http_port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            hdrs = {}
            for k, v in r.getheaders():
                k = k.lower()
                hdrs[k] = v if k not in hdrs else hdrs[k] + ", " + v
            return r.status, hdrs, data
        finally:
            conn.close()

    def get(self, path, headers=None):
        return self.request("GET", path, headers)

    def origin_count(self, path, method="GET"):
        st, _, body = self.request("GET", "/__count?u=" + _quote("%s %s" % (method, path)),
                                   port=self.origin_port)
        return int(body)

    def metrics(self):
        st, _, body = self.request("GET", "/metrics", self.admin_headers(), port=self.admin_port)
        return parse_prometheus(body)

    def lookups(self, status):
        return self.metrics().get('spoe_cache_lookups_total{status="%s"}' % status, 0)

    def ctl(self, *args):
        import subprocess
        p = subprocess.run([CTL, "-c", self.conf] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def haproxy_cmd(self, cmd):
        return haproxy_cmd(self.stats_sock, cmd)

    def wait_cached(self, path, headers=None, timeout=10, method="GET", body=None):
        """Request path until it is a Hit; returns the hit response."""
        def hit():
            st, h, b = self.request(method, path, headers, body)
            return (st, h, b) if h.get("x-cache-status") == "Hit" else None
        return wait_for(hit, timeout=timeout, step=0.05, what="a Hit for %s" % path)


def tls_pool(procs, n):
    """n memcached shards speaking TLS with a certificate from a throwaway CA,
    and the memcached settings that verify it: (shards, pool_extra, tls).
    tls_verify is left to its default, which must be on: the tests of a
    certificate that stops verifying rely on it."""
    tls = make_tls(procs.dir)
    shards = [procs.memcached(tls=dict(cert=tls["server_cert"], key=tls["server_key"]))
              for _ in range(n)]
    extra = ('tls = true; tls_server_name = "localhost"; '
             'tls_ca_file = "%s";' % tls["ca"])
    return shards, extra, tls


def parse_prometheus(body):
    """{"name{labels}": value} of a Prometheus text exposition."""
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, val = line.rpartition(" ")
        out[name] = float(val)
    return out


def talk(address, data, timeout=30):
    """data sent on a fresh connection to address ((host, port), or a unix
    socket's path), and everything read back until the peer closes."""
    if isinstance(address, str):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        s.connect(address)
    else:
        s = socket.create_connection(address, timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out
            out += d
    finally:
        s.close()


def haproxy_cmd(sock_path, cmd):
    """One command on HAProxy's stats socket; its whole answer."""
    return talk(sock_path, (cmd + "\n").encode()).decode()


def _quote(s):
    from urllib.parse import quote
    return quote(s, safe="")


def jdump(x):
    return json.dumps(x, indent=1, sort_keys=True)
