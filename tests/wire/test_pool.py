#!/usr/bin/env python3
"""test_pool.py - the memcached side of the agent, against real memcached
(plain and TLS, -Z) and a scripted fake memcached for fault injection.

  - ketama placement: in-process rings (a host on port 11211, names, weights)
    against libmemcached and an independent implementation, and a live check:
    100k keys stored by libmemcached's own I/O are found exactly where
    ketama_pick() says (build/tools/ketama_oracle);
  - the pool (agent/io/pool.c) through build/asan/tools/pool_driver (built
    by make under ASan+UBSan): binary values, pipelining, oversize values, shards stopped,
    SIGSTOPped and restarted, garbage and half replies, TLS verification,
    SNI, client certificates, plain and TLS pools side by side.

Everything listens on 127.0.0.1 on free ports. This file is also the fake
memcached: `test_pool.py --fake PORT MODE [CERT KEY]`.
"""
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import (BUILD, HOST, ROOT, free_port, main, make_tls, test,  # noqa: E402
                     wait_for, wait_port)

ORACLE = os.path.join(BUILD, "tools", "ketama_oracle")
DRIVER = os.path.join(BUILD, "asan", "tools", "pool_driver")


# ---- building the sanitized driver --------------------------------------------

def build_driver():
    """The pool under ASan+UBSan: make builds it (make asan, make test)."""
    subprocess.check_call(["make", "--no-print-directory", "-s", "-C", ROOT,
                           "build/asan/tools/pool_driver"])
    return DRIVER


# ---- talking to the driver ------------------------------------------------------

def kv(text):
    """'get n=3 ok=2 ms=1.5 first=x' -> {'cmd': 'get', 'n': 3, 'ok': 2, ...}"""
    words = text.split()
    out = {"cmd": words[0] if words else ""}
    for w in words[1:]:
        if "=" in w:
            k, v = w.split("=", 1)
            try:
                out[k] = float(v) if "." in v else int(v)
            except ValueError:
                out[k] = v
    return out


class Driver:
    def __init__(self, procs, args, name="pool_driver", env=None):
        self.procs = procs
        self.p = procs.spawn([build_driver()] + args, name=name, stdin=subprocess.PIPE, env=env)
        self.n = 0
        wait_for(lambda: self._check() and "READY" in self.log(), timeout=20,
                 what="pool_driver READY")

    def log(self):
        return self.procs.log_text(self.p)

    def _check(self):
        if self.p.poll() is not None:
            raise AssertionError("pool_driver exited with %s:\n%s"
                                 % (self.p.returncode, self.log()[-3000:]))
        return True

    def send(self, line):
        self.n += 1
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()
        return self.n

    def wait(self, n, timeout=30):
        pat = re.compile(r"^R %d (.*)$" % n, re.M)

        def got():
            m = pat.search(self.log())
            if m:
                return m.group(1)
            self._check()
            return None
        return kv(wait_for(got, timeout=timeout, what="reply %d" % n))

    def cmd(self, line, timeout=30):
        return self.wait(self.send(line), timeout)

    def shards(self):
        n = self.send("shards")
        self.wait(n)
        text = self.log()
        end = text.index("R %d shards" % n)
        start = text.rfind("\nR ", 0, end)
        out = {}
        for line in text[start:end].splitlines():
            if line.startswith("S "):
                parts = line.split()
                d = kv("S " + " ".join(parts[3:]))
                d["name"] = parts[2]
                out[int(parts[1])] = d
        return out

    def quit(self):
        n = self.send("quit")
        self.wait(n)
        self.p.stdin.close()
        rc = self.p.wait(timeout=30)
        assert rc == 0, "pool_driver exit code %s:\n%s" % (rc, self.log()[-3000:])
        assert "EXIT" in self.log()


def ok_batch(r, n, what="ok"):
    assert r.get(what) == n and r.get("sync") == 0 and r.get("bad") == 0, r


def shard_of_port(drv, port):
    m = re.search(r"^P \d+ shard (\d+) 127\.0\.0\.1:%d$" % port, drv.log(), re.M)
    return int(m.group(1))


# ---- ketama ----------------------------------------------------------------------

@test
def ketama_rings_match_libmemcached(procs):
    """In process: port 11211 naming, names, weights, 100k keys per ring."""
    p = procs.spawn([ORACLE, "ring", "100000"], name="ketama_oracle")
    assert p.wait(timeout=120) == 0, procs.log_text(p)
    out = procs.log_text(p)
    for ring in ("mixed", "single-11211", "two-11211", "twelve-names"):
        assert re.search(r"^ring %s: libmemcached 100000/100000 reference 100000/100000 "
                         r"server_by_key 1000/1000" % ring, out, re.M), out
    # the naming of port 11211 matters, and the test would see it
    m = re.search(r"ring mixed: .*wrong 11211 naming would agree on only (\d+)/", out)
    assert m and int(m.group(1)) < 90000, out
    assert "ring io calls: 0" in out and "ring ok" in out, out
    assert re.search(r"io hook self-check: [1-9]", out), out
    assert "ring dup: refused" in out, out


@test
def ketama_live_100k_keys_where_libmemcached_puts_them(procs):
    weights = [100, 200, 50, 150]
    mcs = [procs.memcached() for _ in weights]
    hosts = ["127.0.0.1:%d:%d" % (m.port, w) for m, w in zip(mcs, weights)]
    t0 = time.time()
    p = procs.spawn([ORACLE, "live", "100000"] + hosts, name="ketama_oracle_live")
    assert p.wait(timeout=120) == 0, procs.log_text(p)
    out = procs.log_text(p)
    assert "live: 100000/100000 on the predicted shard, 0 on another shard, 0 on several, " \
           "0 missing" in out, out
    per = [int(x) for x in re.findall(r"predicted (\d+) found \1$", out, re.M)]
    assert len(per) == 4 and sum(per) == 100000 and min(per) > 0, out
    sys.stderr.write("live ketama check took %.1fs\n%s" % (time.time() - t0, out))


# ---- the pool against real memcached ----------------------------------------------

@test
def values_round_trip_every_byte(procs):
    # -I 2m: memcached's own 1 MiB limit counts its item header, so a value
    # of exactly max_item_size (1 MiB) needs a larger slab page
    mcs = [procs.memcached(extra=("-I", "2m")) for _ in range(3)]
    d = Driver(procs, ["127.0.0.1:%d" % m.port for m in mcs])
    for size in (0, 1, 2, 255, 256, 1000, 65536, 1048576):
        n = 3 if size >= 65536 else 40
        ok_batch(d.cmd("set b%d %d %d" % (size, n, size)), n)
        ok_batch(d.cmd("get b%d %d %d" % (size, n, size)), n)
    ok_batch(d.cmd("get absent 20 x"), 20, "notfound")
    ok_batch(d.cmd("del b1 40"), 40)
    ok_batch(d.cmd("del b1 40"), 40, "notfound")
    ok_batch(d.cmd("get b1 40 1"), 40, "notfound")
    ok_batch(d.cmd("get b2 40 2"), 40)
    r = d.cmd("stats 0")
    assert r["ok"] == 1 and r["bytes"] > 500 and r["first"].startswith("STAT_pid_"), r
    # flush one shard: its keys are gone, the other shards' stay
    ok_batch(d.cmd("set fl 30 10 1"), 30)
    ok_batch(d.cmd("set fl0 30 10 0"), 30)
    ok_batch(d.cmd("flush 1"), 1)
    ok_batch(d.cmd("get fl 30 10 1"), 30, "notfound")
    ok_batch(d.cmd("get fl0 30 10 0"), 30)
    r = d.cmd("badkey")
    assert r["rc"] == "-1,-1,-1,-1,-1" and r["called"] == 0, r
    # ttl: a 1 s entry expires. On shard 0: memcached's flush_all has a
    # one-second granularity, so what shard 1 gets in the second of its
    # flush is flushed too.
    ok_batch(d.cmd("set ttl 5 10 0 1"), 5)
    ok_batch(d.cmd("get ttl 5 10 0"), 5)
    time.sleep(2.1)
    ok_batch(d.cmd("get ttl 5 10 0"), 5, "notfound")
    st = d.shards()
    assert sum(s["hits"] for s in st.values()) > 0 and all(s["up"] == 1 for s in st.values())
    assert all(s["errors"] == 0 and s["conn_failures"] == 0 for s in st.values()), st
    d.quit()


@test
def pipelining_1000_in_flight_across_3_shards(procs):
    mcs = [procs.memcached() for _ in range(3)]
    d = Driver(procs, ["--poolsize", "2"] + ["127.0.0.1:%d" % m.port for m in mcs])
    ok_batch(d.cmd("set p 1000 700"), 1000)
    r = d.cmd("get p 1000 700")
    ok_batch(r, 1000)
    # two batches in flight at once, one of them all misses
    a, b = d.send("get p 1000 700"), d.send("get miss 1000 x")
    ok_batch(d.wait(a), 1000)
    ok_batch(d.wait(b), 1000, "notfound")
    st = d.shards()
    assert sum(s["hits"] for s in st.values()) == 2000, st
    assert sum(s["misses"] for s in st.values()) == 1000, st
    for s in st.values():
        assert s["requests"] > 300, st          # every shard had its share
        assert 1 <= s["conn_opened"] <= 2, st   # ...over at most 2 connections
        assert s["lat_count"] == s["requests"], st
        assert sum(int(x) for x in s["hist"].split(",")) == s["lat_count"], st
    d.quit()


@test
def oversize_values_refused_before_sending(procs):
    m = procs.memcached()
    d = Driver(procs, ["--max", "1000", "127.0.0.1:%d" % m.port])
    r = d.cmd("set big 3 1001")
    ok_batch(r, 3, "toobig")
    assert r["error"] == 0
    ok_batch(d.cmd("set fit 3 1000"), 3)
    st = d.shards()[0]
    assert st["too_big"] == 3 and st["stored"] == 3 and st["errors"] == 0, st
    assert re.search(r"not storing big-0: value of 1001 bytes is above max_item_size 1000",
                     d.log()), d.log()
    # nothing of the refused values reached memcached
    ok_batch(d.cmd("get big 3 x"), 3, "notfound")
    # a value stored by a client with a larger limit is an error for this
    # one, and the connection survives it (the value is skipped)
    big = Driver(procs, ["--max", "100000", "127.0.0.1:%d" % m.port], name="driver_bigmax")
    ok_batch(big.cmd("set wide 2 5000"), 2)
    big.quit()
    st0 = d.shards()[0]
    r = d.cmd("get wide 2 x")
    assert r["error"] == 2 and r["sync"] == 0, r
    ok_batch(d.cmd("get fit 3 1000"), 3)
    st = d.shards()[0]
    assert st["conn_failures"] == 0 and st["conn_opened"] == st0["conn_opened"], (st0, st)
    assert "above max_item_size 1000; answered as an error" in d.log()
    d.quit()


@test
def stopped_shard_errors_others_work_restart_brings_it_back(procs):
    mcs = [procs.memcached() for _ in range(3)]
    timeout = 500
    d = Driver(procs, ["--timeout", str(timeout), "--fail", "2", "--retry", "200"] +
               ["127.0.0.1:%d" % m.port for m in mcs])
    for s in range(3):
        ok_batch(d.cmd("set s%d 30 100 %d" % (s, s)), 30)
    victim = mcs[1]
    vs = shard_of_port(d, victim.port)
    port = victim.port
    procs.stop(victim)
    r = d.cmd("get s%d 30 100 %d" % (vs, vs))
    assert r["error"] == 30 and r["sync"] == 0, r
    assert r["maxms"] < 3 * timeout, r              # refused: well within the timeout
    for s in range(3):
        if s != vs:
            ok_batch(d.cmd("get s%d 30 100 %d" % (s, s)), 30)
    assert d.cmd("waitdown %d 3000" % vs)["up"] == 0
    all_before = d.shards()
    before = all_before[vs]
    assert before["went_down"] == 1, before
    r = d.cmd("get s%d 30 100 %d" % (vs, vs))
    assert r["error"] == 30 and r["maxms"] < timeout / 2, r
    all_after = d.shards()
    after = all_after[vs]
    assert after["fast_fails"] - before["fast_fails"] == 30, (before, after)
    assert after["conn_opened"] == before["conn_opened"], (before, after)
    # keys are never moved: the other shards saw none of these requests
    for s in range(3):
        if s != vs:
            assert all_after[s]["requests"] == all_before[s]["requests"], (all_before, all_after)
    # restarted on the same port (empty): back after a probe, used again
    procs.memcached(port=port)
    r = d.cmd("waitup %d 5000" % vs)
    assert r["up"] == 1, r
    ok_batch(d.cmd("get s%d 30 100 %d" % (vs, vs)), 30, "notfound")
    ok_batch(d.cmd("set s%d 30 100 %d" % (vs, vs)), 30)
    ok_batch(d.cmd("get s%d 30 100 %d" % (vs, vs)), 30)
    assert "marked down after 2 failures" in d.log() and "up again" in d.log(), d.log()
    d.quit()


def stopped(pid):
    """Every thread of pid is stopped (kill() only queues SIGSTOP)."""
    tasks = os.listdir("/proc/%d/task" % pid)
    for t in tasks:
        with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
            if f.read().rsplit(")", 1)[1].split()[0] != "T":
                return False
    return True


@test
def sigstopped_shard_costs_one_timeout_then_fails_fast(procs):
    mcs = [procs.memcached() for _ in range(3)]
    timeout = 300
    d = Driver(procs, ["--timeout", str(timeout), "--fail", "2", "--retry", "200",
                       "--poolsize", "2"] + ["127.0.0.1:%d" % m.port for m in mcs])
    for s in range(3):
        ok_batch(d.cmd("set z%d 30 50 %d" % (s, s)), 30)
    victim = mcs[2]
    vs = shard_of_port(d, victim.port)
    other = (vs + 1) % 3
    os.killpg(victim.pid, signal.SIGSTOP)
    wait_for(lambda: stopped(victim.pid), timeout=5, what="memcached stopped")
    try:
        a = d.send("get z%d 30 50 %d" % (vs, vs))
        b = d.send("get z%d 30 50 %d" % (other, other))
        ok_batch(d.wait(b), 30)                  # not held up by the stuck shard
        r = d.wait(a)
        assert r["error"] == 30 and r["sync"] == 0, r
        assert timeout * 0.9 <= r["maxms"] < 3 * timeout, r
        st = d.shards()[vs]
        assert st["up"] == 0 and st["timeouts"] == 30 and st["went_down"] == 1, st
        r = d.cmd("get z%d 30 50 %d" % (vs, vs))
        assert r["error"] == 30 and r["maxms"] < timeout / 3, r
        st2 = d.shards()[vs]
        assert st2["fast_fails"] - st["fast_fails"] == 30, (st, st2)
        ok_batch(d.cmd("get z%d 30 50 %d" % (other, other)), 30)
    finally:
        os.killpg(victim.pid, signal.SIGCONT)
    r = d.cmd("waitup %d 5000" % vs)
    assert r["up"] == 1, r
    ok_batch(d.cmd("get z%d 30 50 %d" % (vs, vs)), 30)  # the data survived the stop
    d.quit()


@test
def idle_connections_close_after_keepalive(procs):
    m = procs.memcached()
    d = Driver(procs, ["--keepalive", "200", "127.0.0.1:%d" % m.port])
    ok_batch(d.cmd("get i 1 x"), 1, "notfound")
    assert d.shards()[0]["conn_opened"] == 1
    ok_batch(d.cmd("get i 1 x"), 1, "notfound")
    assert d.shards()[0]["conn_opened"] == 1    # reused while fresh
    d.cmd("sleep 600")
    ok_batch(d.cmd("get i 1 x"), 1, "notfound")
    st = d.shards()[0]
    assert st["conn_opened"] == 2 and st["conn_failures"] == 0, st
    d.quit()


@test
def pool_free_answers_everything_in_flight(procs):
    m = procs.memcached()
    d = Driver(procs, ["127.0.0.1:%d" % m.port])
    r = d.cmd("freeinflight f 200")
    assert r["total"] == 200 and r["called"] == 200 and r["error"] == 200, r
    ok_batch(d.cmd("set f 5 10"), 5)                # the new pool works
    d.quit()


# ---- fault injection with a fake memcached ----------------------------------------

def fake(procs, mode, tls=None):
    port = free_port()
    argv = [sys.executable, os.path.abspath(__file__), "--fake", str(port), mode]
    if tls:
        argv += [tls[0], tls[1]]
    p = procs.spawn(argv, name="fake-%s" % mode)
    wait_port(port, proc=p)
    p.port = port
    return p


def conns(procs, p):
    return len(re.findall(r"^CONN \d+$", procs.log_text(p), re.M))


@test
def fake_faults_error_without_crash_and_replace_the_connection(procs):
    timeout = 300
    for mode in ("garbage", "half", "silent", "wrongopaque", "unsolicited", "close",
                 "toolong", "hugeva"):
        f = fake(procs, mode)
        d = Driver(procs, ["--timeout", str(timeout), "--fail", "1000", "--poolsize", "1",
                           "127.0.0.1:%d" % f.port], name="driver-%s" % mode)
        r = d.cmd("get k 5 x")
        assert r["error"] == 5 and r["sync"] == 0, (mode, r)
        assert r["maxms"] < 3 * timeout, (mode, r)
        c1 = conns(procs, f)
        r = d.cmd("get k 5 x")
        assert r["error"] == 5, (mode, r)
        c2 = conns(procs, f)
        assert c1 >= 1 and c2 > c1, (mode, c1, c2, procs.log_text(f))
        st = d.shards()[0]
        assert st["up"] == 1 and st["conn_failures"] >= 2, (mode, st)
        if mode in ("half", "silent"):
            assert st["timeouts"] == 10, (mode, st)
        d.quit()
        procs.stop(f)


@test
def shard_slow_to_read_gets_every_command_in_order(procs):
    # The pool writes each loop pass's commands itself and hands what the
    # socket does not take to the bufferevent (agent/io/bevio.h): a shard
    # that stops reading for a second at its first set, through a tiny
    # receive buffer, leaves most of 1.3 MB of sets queued there. Every set is still answered, in
    # order, and later commands go out the usual way again.
    f = fake(procs, "slowread")
    d = Driver(procs, ["--timeout", "20000", "--fail", "1000", "--poolsize", "1",
                       "127.0.0.1:%d" % f.port])
    r = d.cmd("get w 5 x")          # connected: the pool writes from now on
    assert r["notfound"] == 5 and r["sync"] == 0, r
    ok_batch(d.cmd("set w 20 65536"), 20)
    r = d.cmd("get w 5 x")
    assert r["notfound"] == 5 and r["sync"] == 0, r
    st = d.shards()[0]
    assert st["conn_opened"] == 1 and st["conn_failures"] == 0 and st["timeouts"] == 0, st
    d.quit()


@test
def fake_server_error_keeps_the_connection(procs):
    f = fake(procs, "servererror")
    d = Driver(procs, ["--fail", "2", "--poolsize", "1", "127.0.0.1:%d" % f.port])
    for _ in range(3):
        r = d.cmd("get k 10 x")
        assert r["error"] == 10, r
    st = d.shards()[0]
    assert st["up"] == 1 and st["server_errors"] == 30 and st["conn_failures"] == 0, st
    assert st["conn_opened"] == 1, st
    assert conns(procs, f) == 2             # wait_port's own check, and the pool's
    assert "SERVER_ERROR out of memory" in d.log()
    d.quit()


@test
def fake_garbage_marks_down_and_probe_keeps_it_down(procs):
    f = fake(procs, "garbage")
    d = Driver(procs, ["--timeout", "300", "--fail", "2", "--retry", "100", "--poolsize", "1",
                       "127.0.0.1:%d" % f.port])
    d.cmd("get g 3 x")
    d.cmd("get g 3 x")
    assert d.cmd("waitdown 0 2000")["up"] == 0
    c = conns(procs, f)
    r = d.cmd("get g 20 x")
    assert r["error"] == 20 and r["maxms"] < 100, r
    d.cmd("sleep 500")                               # probes: answered with garbage
    assert conns(procs, f) > c
    assert d.shards()[0]["up"] == 0
    assert "protocol error" in d.log()
    d.quit()


# ---- TLS ----------------------------------------------------------------------------

def tls_files(procs):
    return make_tls(procs.dir)


@test
def tls_verified_ok_wrong_name_and_untrusted_ca_refused(procs):
    t = tls_files(procs)
    good = procs.memcached(tls=dict(cert=t["server_cert"], key=t["server_key"]))
    bad = procs.memcached(tls=dict(cert=t["badserver_cert"], key=t["badserver_key"]))
    base = ["--tls", "--verify", "--ca", t["ca"], "--timeout", "1000"]

    # by IP (the cert has IP:127.0.0.1) and by name through tls_server_name
    for extra, name in (([], "tls-ip"), (["--sni", "localhost"], "tls-name")):
        d = Driver(procs, base + extra + ["127.0.0.1:%d" % good.port], name=name)
        ok_batch(d.cmd("set t 20 3000"), 20)
        ok_batch(d.cmd("get t 20 3000"), 20)
        assert d.shards()[0]["conn_opened"] >= 1
        d.quit()

    # a name the certificate does not carry: refused, logged
    d = Driver(procs, base + ["--sni", "wrong.example", "127.0.0.1:%d" % good.port],
               name="tls-wrongname")
    r = d.cmd("get t 3 x")
    assert r["error"] == 3, r
    assert re.search(r"TLS handshake failed: certificate not accepted: hostname mismatch",
                     d.log()), d.log()
    d.quit()

    # a server whose certificate comes from an untrusted CA: refused, logged
    d = Driver(procs, base + ["127.0.0.1:%d" % bad.port], name="tls-untrusted")
    r = d.cmd("get t 3 x")
    assert r["error"] == 3, r
    assert re.search(r"TLS handshake failed: certificate not accepted: "
                     r"(unable to get local issuer certificate|self.signed)", d.log()), d.log()
    assert d.shards()[0]["conn_opened"] == 0
    d.quit()

    # verification off: the same server is accepted
    d = Driver(procs, ["--tls", "--timeout", "1000", "127.0.0.1:%d" % bad.port],
               name="tls-noverify")
    ok_batch(d.cmd("set u 5 100"), 5)
    ok_batch(d.cmd("get u 5 100"), 5)
    d.quit()


@test
def tls_sni_is_sent(procs):
    t = tls_files(procs)
    f = fake(procs, "tls-good", (t["server_cert"], t["server_key"]))
    d = Driver(procs, ["--tls", "--verify", "--ca", t["ca"], "--sni", "localhost",
                       "127.0.0.1:%d" % f.port])
    ok_batch(d.cmd("get s 3 x"), 3, "notfound")
    assert re.search(r"^SNI localhost$", procs.log_text(f), re.M), procs.log_text(f)
    d.quit()
    # an IP address is never sent as SNI (RFC 6066); verified against the IP SAN
    d = Driver(procs, ["--tls", "--verify", "--ca", t["ca"], "127.0.0.1:%d" % f.port],
               name="driver-ip")
    ok_batch(d.cmd("get s 3 x"), 3, "notfound")
    assert not re.search(r"^SNI 127", procs.log_text(f), re.M), procs.log_text(f)
    d.quit()


@test
def tls_client_certificate(procs):
    t = tls_files(procs)
    m = procs.memcached(tls=dict(cert=t["server_cert"], key=t["server_key"], ca=t["ca"]),
                        extra=("-o", "ssl_verify_mode=2"))
    base = ["--tls", "--verify", "--ca", t["ca"], "--timeout", "1000"]
    d = Driver(procs, base + ["--cert", t["client_cert"], "--key", t["client_key"],
                              "127.0.0.1:%d" % m.port], name="with-cert")
    ok_batch(d.cmd("set c 5 10"), 5)
    ok_batch(d.cmd("get c 5 10"), 5)
    d.quit()
    d = Driver(procs, base + ["127.0.0.1:%d" % m.port], name="without-cert")
    r = d.cmd("get c 5 x")
    assert r["error"] == 5, r
    d.quit()


@test
def tls_pipelined_sets_do_not_stall(procs):
    """memcached 1.6 over TLS stops reading pipelined sets (see NUDGE_US in
    pool.c); 2000 of them in flight on one connection must all be answered."""
    t = tls_files(procs)
    m = procs.memcached(tls=dict(cert=t["server_cert"], key=t["server_key"]))
    d = Driver(procs, ["--tls", "--verify", "--ca", t["ca"], "--poolsize", "1",
                       "--timeout", "2000", "127.0.0.1:%d" % m.port])
    for size in (10, 700, 5000):
        ok_batch(d.cmd("set n%d 2000 %d" % (size, size)), 2000)
        ok_batch(d.cmd("get n%d 2000 %d" % (size, size)), 2000)
    st = d.shards()[0]
    assert st["timeouts"] == 0 and st["conn_failures"] == 0 and st["conn_opened"] == 1, st
    d.quit()


@test
def plain_and_tls_pools_side_by_side(procs):
    t = tls_files(procs)
    plain = [procs.memcached() for _ in range(2)]
    secure = [procs.memcached(tls=dict(cert=t["server_cert"], key=t["server_key"]))
              for _ in range(2)]
    d = Driver(procs, ["127.0.0.1:%d" % m.port for m in plain] +
               ["--", "--tls", "--verify", "--ca", t["ca"]] +
               ["127.0.0.1:%d" % m.port for m in secure])
    d.cmd("use 0")
    a = d.send("set x 300 500")
    d.cmd("use 1")
    b = d.send("set x 300 700")
    ok_batch(d.wait(a), 300)
    ok_batch(d.wait(b), 300)
    a = d.send("get x 300 700")                      # pool 1 (TLS)
    d.cmd("use 0")
    b = d.send("get x 300 500")                      # pool 0 (plain)
    ok_batch(d.wait(a), 300)
    ok_batch(d.wait(b), 300)
    d.quit()


# ---- the fake memcached ------------------------------------------------------------

def fake_main(port, mode, cert=None, key=None):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if mode == "slowread":
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # accepted ones inherit it
    srv.bind((HOST, port))
    srv.listen(64)
    ctx = None
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)

        def sni(sslobj, name, c):
            print("SNI %s" % name, flush=True)
        ctx.sni_callback = sni
    n = 0
    while True:
        c, _ = srv.accept()
        n += 1
        print("CONN %d" % n, flush=True)
        threading.Thread(target=fake_serve, args=(c, mode, ctx), daemon=True).start()


def fake_reply(mode, parts, op):
    cmd = parts[0]
    if mode in ("good", "tls-good", "slowread"):
        return {b"mg": b"EN O%s\r\n" % op, b"ms": b"HD O%s\r\n" % op,
                b"md": b"NF O%s\r\n" % op, b"mn": b"MN\r\n"}.get(cmd, b"ERROR\r\n")
    if mode == "garbage":
        return b"\x00\x01garbage\r\n"
    if mode == "half":
        return b"VA 10 O%s\r\nabc" % op if parts[0] == b"mg" else None
    if mode == "silent":
        return None
    if mode == "wrongopaque":
        return b"EN O%d\r\n" % (int(op or b"0") + 1000) if cmd != b"mn" else b"MN\r\n"
    if mode == "unsolicited":
        return None
    if mode == "close":
        return "close"
    if mode == "toolong":
        return b"STAT " + b"A" * 5000
    if mode == "hugeva":
        # a size that would overflow 64 bits
        return b"VA 99999999999999999999999 O%s\r\n" % op
    if mode == "servererror":
        return b"SERVER_ERROR out of memory\r\n"
    return b"ERROR\r\n"


def fake_serve(c, mode, ctx):
    try:
        if ctx:
            c = ctx.wrap_socket(c, server_side=True)
        if mode == "unsolicited":
            c.sendall(b"HD O4242\r\n")
        buf = b""
        answered = False
        while True:
            d = c.recv(65536)
            if not d:
                return
            buf += d
            while b"\r\n" in buf:
                line, rest = buf.split(b"\r\n", 1)
                parts = line.split() or [b""]
                if parts[0] == b"ms":
                    if mode == "slowread" and not answered:
                        time.sleep(1)   # the first set: stop reading for a while
                        answered = True
                    size = int(parts[2])
                    if len(rest) < size + 2:
                        break
                    rest = rest[size + 2:]
                buf = rest
                op = next((p[1:] for p in parts[1:] if p.startswith(b"O")), b"")
                reply = fake_reply(mode, parts, op)
                if mode == "half":
                    if answered:
                        reply = None    # half a reply, then silence
                    answered = True
                if reply == "close":
                    c.close()
                    return
                if reply:
                    c.sendall(reply)
    except (OSError, ssl.SSLError) as e:
        print("fake: %s" % e, flush=True)
    finally:
        try:
            c.close()
        except OSError:
            pass


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--fake":
        fake_main(int(sys.argv[2]), sys.argv[3], *sys.argv[4:6])
    else:
        main()
