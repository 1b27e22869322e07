"""harness.py - what every wire and end-to-end test uses.

A test file defines functions decorated with @test that take a Procs object,
and ends with main(). main() runs them in file order and prints one line per
test, "ok - name" or "not ok - name" (tests/run.py counts those). Every
process a test starts through Procs is killed by PID when the test ends,
also when it fails. Everything listens on 127.0.0.1 only.
"""
import atexit
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, "build")
# Wire tests drive the sanitizer build; e2e tests may choose the plain one.
AGENT_ASAN = os.path.join(BUILD, "asan", "spoe-cache-agent")
AGENT = os.path.join(ROOT, "spoe-cache-agent")
CTL = os.path.join(ROOT, "spoe-cache-ctl")
CTL_ASAN = os.path.join(BUILD, "asan", "spoe-cache-ctl")
HOST = "127.0.0.1"
# The HAProxy the end-to-end tier runs: Debian's (2.6) unless tests/run.py
# points SPOE_CACHE_HAPROXY at another build (the 3.4 tier).
HAPROXY = os.environ.get("SPOE_CACHE_HAPROXY", "haproxy")
_haproxy_version = None


def haproxy_version():
    """(major, minor) of HAPROXY, read from its -v output once."""
    global _haproxy_version
    if _haproxy_version is None:
        out = subprocess.run([HAPROXY, "-v"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT).stdout.decode()
        words = out.split()
        ver = words[words.index("version") + 1]
        _haproxy_version = tuple(int(x) for x in ver.split("-")[0].split(".")[:2])
    return _haproxy_version


def haproxy_is_mux():
    """HAProxy 3.1 rewrote SPOE as a multiplexer: no fragmentation, no
    async, frames sized by its own max-frame-size."""
    return haproxy_version() >= (3, 1)

_tests = []
_live = set()


def test(fn):
    _tests.append(fn)
    return fn


_ports_given = set()


def _listen_ports():
    """Where free_port() draws from: below the kernel's ephemeral range (the
    source ports of outgoing connections), else above it. A port from
    bind(0) lies inside that range, and a connection opened between the
    test's bind and the daemon's could take it as its source port: the
    daemon then fails with "Address already in use"."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999
    return (10000, lo) if lo - 10000 >= 4096 else (hi + 1, 65536)


_PORTS = _listen_ports()


def free_port():
    """A port that was free a moment ago on 127.0.0.1, outside the ephemeral
    range (_listen_ports), and that this process never handed out before:
    two daemons of one stack must never be told to listen on one port (the
    second to start cannot, and a wait for its port is answered by the
    first: a test once got the agent's admin endpoint for HAProxy's port)."""
    while True:
        port = random.randrange(*_PORTS)
        if port in _ports_given:
            continue
        s = socket.socket()
        try:
            s.bind((HOST, port))
        except OSError:
            continue
        finally:
            s.close()
        _ports_given.add(port)
        return port


def wait_port(port, timeout=15.0, proc=None):
    """Wait until something accepts on 127.0.0.1:port."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening on %d"
                               % (proc.returncode, port))
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listening on %s:%d" % (HOST, port))


def wait_for(cond, timeout=15.0, step=0.05, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(step)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def _kill(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGCONT)
        except OSError:
            pass
        try:
            os.killpg(p.pid, getattr(p, "kill_sig", signal.SIGTERM))
        except OSError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
    _live.discard(p)


@atexit.register
def _kill_all():
    for p in list(_live):
        _kill(p)


class Procs:
    """Processes and temp files of one test; close() kills and removes them."""

    def __init__(self):
        self.procs = []
        self.dir = tempfile.mkdtemp(prefix="spoe-cache-test-")
        self.logs = []

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text, mode=0o644):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def spawn(self, argv, name=None, env=None, stdin=subprocess.DEVNULL, journal=False):
        """Start argv in its own process group, output to a log file
        (journal: announced as systemd's journal stream, as a unit gets it)."""
        name = name or os.path.basename(argv[0])
        log = self.path("%s.%d.log" % (name, len(self.procs)))
        f = open(log, "wb")
        e = dict(os.environ)
        e.pop("JOURNAL_STREAM", None)
        if journal:
            st = os.fstat(f.fileno())
            e["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        if env:
            e.update(env)
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                             stdin=stdin, env=e, start_new_session=True)
        f.close()
        p.log = log
        p.name = name
        self.procs.append(p)
        self.logs.append((name, log))
        _live.add(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        """Stop one process and return its exit code."""
        if p.poll() is None:
            os.killpg(p.pid, sig)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill(p)
        _live.discard(p)
        return p.returncode

    def memcached(self, port=None, tls=None, mem_mb=64, extra=()):
        """A real memcached on 127.0.0.1; tls = dict(cert=, key=[, ca=])."""
        port = port or free_port()
        argv = ["memcached", "-U", "0", "-l", HOST, "-p", str(port),
                "-m", str(mem_mb), "-t", "1", "-c", "4096"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        if tls:
            argv += ["-Z", "-o", "ssl_chain_cert=%s" % tls["cert"],
                     "-o", "ssl_key=%s" % tls["key"]]
            if tls.get("ca"):
                argv += ["-o", "ssl_ca_cert=%s" % tls["ca"]]
        argv += list(extra)
        p = self.spawn(argv, name="memcached-%d" % port)
        p.kill_sig = signal.SIGKILL  # nothing to check at its exit; TERM takes a second
        wait_port(port, proc=p)
        p.port = port
        return p

    def log_text(self, p):
        try:
            with open(p.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self, failed=False):
        for p in reversed(self.procs):
            _kill(p)
        if failed:
            for name, log in self.logs:
                try:
                    with open(log, "rb") as f:
                        data = f.read()[-3000:].decode("utf-8", "replace")
                except OSError:
                    continue
                if data.strip():
                    sys.stderr.write("---- %s (%s) ----\n%s\n" % (name, log, data))
        # Sanitizer reports in any agent log fail the test.
        bad = []
        for name, log in self.logs:
            try:
                with open(log, "rb") as f:
                    t = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            if "ERROR: AddressSanitizer" in t or "runtime error:" in t \
                    or "ERROR: LeakSanitizer" in t:
                bad.append(name)
        return bad

    def cleanup(self):
        if not os.environ.get("KEEP_TMP"):
            subprocess.call(["rm", "-rf", self.dir])


def proc_status_kb(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM, ...); 0 when absent."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def make_tls(dirpath, names=("localhost",), ips=("127.0.0.1",)):
    """A throwaway CA, a server cert for names/ips signed by it, a client
    cert signed by it, and a second untrusted CA with its own server cert.
    Returns a dict of paths."""
    def run(*a):
        subprocess.check_call(list(a), cwd=dirpath, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)

    san = ",".join(["DNS:%s" % n for n in names] + ["IP:%s" % i for i in ips])
    out = {}
    for ca in ("ca", "badca"):
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", ca + ".key", "-out", ca + ".crt", "-days", "2",
            "-subj", "/CN=spoe-cache test %s" % ca)
        out[ca] = os.path.join(dirpath, ca + ".crt")
    with open(os.path.join(dirpath, "san.ext"), "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n" % san)

    def leaf(name, ca, cn):
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout",
            name + ".key", "-out", name + ".csr", "-subj", "/CN=%s" % cn)
        run("openssl", "x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt",
            "-CAkey", ca + ".key", "-CAcreateserial", "-out", name + ".crt",
            "-days", "2", "-extfile", "san.ext")
        out[name + "_cert"] = os.path.join(dirpath, name + ".crt")
        out[name + "_key"] = os.path.join(dirpath, name + ".key")

    leaf("server", "ca", names[0])
    leaf("client", "ca", "spoe-cache client")
    leaf("badserver", "badca", names[0])
    return out


class Skip(Exception):
    """Raised by skip(): the test does not apply to this HAProxy."""


def skip(why):
    raise Skip(why)


def main():
    only = set(sys.argv[1:])
    failed = 0
    for fn in _tests:
        if only and fn.__name__ not in only:
            continue
        procs = Procs()
        ok = True
        skipped = None
        t0 = time.time()
        try:
            fn(procs)
        except Skip as e:
            skipped = str(e)
        except Exception:
            ok = False
            traceback.print_exc()
        bad = procs.close(failed=not ok)
        if bad:
            ok = False
            sys.stderr.write("sanitizer report in: %s\n" % ", ".join(bad))
            procs.close(failed=True)
        if ok:
            procs.cleanup()
        dt = time.time() - t0
        if skipped is not None and ok:
            print("skip - %s: %s" % (fn.__name__, skipped), flush=True)
            continue
        print("%s - %s (%.1fs)" % ("ok" if ok else "not ok", fn.__name__, dt),
              flush=True)
        if not ok:
            failed += 1
    sys.exit(1 if failed else 0)
