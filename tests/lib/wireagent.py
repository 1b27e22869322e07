"""wireagent.py - the agent under test for the limit tests (tests/wire/
test_spop_limits.py, test_admin_limits.py): its config (stack.agent_config
with the lines a test changes), its memcached shards, a way to start it
under a lower RLIMIT_NOFILE, and what /proc says about it (RSS, peak RSS,
CPU time).

Memory and CPU are measured on the release build: AddressSanitizer's
shadow memory and its quarantine of freed blocks (256 MB by default) make
the sanitizer build's RSS say nothing about the agent's own. Functional
checks use the sanitizer build, like every wire test.
"""
import os
import socket
import subprocess
import time
import urllib.request

from harness import (AGENT, AGENT_ASAN, HOST, free_port, proc_status_kb, wait_for,
                     wait_port)
from stack import DEFAULT_POLICIES, agent_config
import spopclient as sc

BASE_HDRS = [("host", "limits.example"), ("user-agent", "spopclient"), ("accept", "*/*")]
_ids = [5000]


def next_id():
    _ids[0] += 1
    return _ids[0]


class Agent:
    """The agent with its memcached shards, all owned by procs.

    release: the plain build (for RSS and CPU measurements), else ASan.
    unix: a path; the agent listens there instead of on a TCP port.
    nofile: start it under RLIMIT_NOFILE = nofile (soft and hard, prlimit).
    admin_extra: settings added to agent.admin."""

    def __init__(self, procs, threads=2, agent_extra="", pool_extra="", admin_extra="",
                 release=False, unix=None, nofile=None, log_level="info", nshards=1,
                 policies=DEFAULT_POLICIES, timeout_ms=500, start=True):
        self.procs = procs
        self.shards = [procs.memcached() for _ in range(nshards)]
        self.port = free_port()
        self.admin_port = free_port()
        self.unix = unix
        text = agent_config([(s.port, 100) for s in self.shards], self.port, self.admin_port,
                            threads=threads, agent_extra=agent_extra, pool_extra=pool_extra,
                            log_level=log_level, policies=policies)
        assert "timeout = 500;" in text
        text = text.replace("timeout = 500;", "timeout = %d;" % timeout_ms)
        if admin_extra:
            old = 'admin: { listen = "127.0.0.1"; port = %d; };' % self.admin_port
            assert old in text
            text = text.replace(old, 'admin: { listen = "127.0.0.1"; port = %d; %s };'
                                % (self.admin_port, admin_extra))
        if unix:
            old = 'listen = "127.0.0.1";\n  port = %d;' % self.port
            assert old in text
            text = text.replace(old, 'listen = "unix:%s";' % unix)
        self.conf = procs.write("agent.conf", text)
        # SPOE_CACHE_AGENT_BIN: another binary (an older one, to see a test fail)
        self.binary = os.environ.get("SPOE_CACHE_AGENT_BIN") or (AGENT if release else AGENT_ASAN)
        self.nofile = nofile
        self.clients = []
        self.proc = None
        if start:
            self.start()

    def start(self):
        argv = [self.binary, "-c", self.conf]
        if self.nofile:
            argv = ["prlimit", "--nofile=%d:%d" % (self.nofile, self.nofile), "--"] + argv
        self.proc = self.procs.spawn(argv, name="agent")
        if self.unix:
            wait_for(self.unix_ready, timeout=15, what="the agent on %s" % self.unix)
        else:
            wait_port(self.port, proc=self.proc)
        wait_port(self.admin_port, proc=self.proc)
        return self.proc

    def unix_ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("agent exited with %s" % self.proc.returncode)
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(self.unix)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def client(self, timeout=10.0):
        if self.unix:
            c = sc.Client(0, connect=False, timeout=timeout)
            c.sock = socket.socket(socket.AF_UNIX)
            c.sock.settimeout(timeout)
            c.sock.connect(self.unix)
        else:
            c = sc.Client(self.port, timeout=timeout)
        c.agent = self
        self.clients.append(c)
        return c

    def ready(self, max_frame=16380, **kw):
        c = self.client()
        c.hello(max_frame_size=max_frame, **kw)
        return c

    def alive(self):
        return self.proc.poll() is None

    def log(self):
        return self.procs.log_text(self.proc)

    def metrics(self):
        with urllib.request.urlopen("http://%s:%d/metrics" % (HOST, self.admin_port),
                                    timeout=30) as r:
            out = {}
            for line in r.read().decode().splitlines():
                if line and not line.startswith("#"):
                    k, _, v = line.rpartition(" ")
                    out[k] = float(v)
            return out

    def metric(self, name):
        return self.metrics().get(name)

    def wait_stored(self):
        """Until every store the agent has answered is done in memcached too
        (it answers a store once decided; the set finishes in the background,
        counted in spoe_cache_store_backlog_bytes from before the answer)."""
        wait_for(lambda: self.metric("spoe_cache_store_backlog_bytes") == 0, timeout=30,
                 step=0.01, what="the background stores")

    def rss_kb(self):
        return proc_status_kb(self.proc.pid, "VmRSS")

    def peak_kb(self):
        return proc_status_kb(self.proc.pid, "VmHWM")

    def cpu_seconds(self):
        """utime + stime of the whole process (every thread)."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def nfds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def finish(self):
        """The agent is alive, then exits 0 on SIGTERM (leak check included)."""
        assert self.alive(), "agent died: rc=%r\n%s" % (self.proc.returncode, self.log()[-3000:])
        for c in self.clients:
            c.close()
        rc = self.procs.stop(self.proc, timeout=30)
        assert rc == 0, "agent exit status %r on SIGTERM\n%s" % (rc, self.log()[-3000:])


def check_served(c, tag=""):
    """A well-behaved connection still gets correct ACKs: a Bypass (unknown
    policy, answered at once) and a real lookup (a memcached round trip)."""
    sid = next_id()
    a = c.lookup(sid, 7, "no-such-policy", "GET", "/x", BASE_HDRS, timeout=30)
    assert (a.sid, a.fid) == (sid, 7) and a["status"] == "Bypass", (tag, a)
    a = c.lookup(next_id(), 1, "default", "GET", "/served-check/%d" % next_id(), BASE_HDRS,
                 timeout=30)
    assert a["status"] in ("Miss", "Hit"), (tag, a)
    assert len(a["key"]) == 64, (tag, a)


def store(c, url, body):
    """Lookup (a Miss) then store body under url; returns the store's ACK."""
    a = c.lookup(next_id(), 1, "default", "GET", url, BASE_HDRS, timeout=30)
    assert a["status"] == "Miss", a
    hdrs = [("content-type", "text/plain"), ("content-length", str(len(body))),
            ("cache-control", "max-age=300")]
    s = c.store(next_id(), 1, a["ctx"], 200, hdrs, body, timeout=30)
    c.agent.wait_stored()
    return s


def check_config(path, binary=None):
    """spoe-cache-agent -t -c path: (exit code, stdout, stderr)."""
    p = subprocess.run([binary or AGENT_ASAN, "-t", "-c", path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def line_of(text, needle):
    """1-based line of the first line of text containing needle."""
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError("%r not in the config" % needle)


def settle(seconds):
    """Let the agent act on what was just sent (no assertion hangs on it)."""
    time.sleep(seconds)
