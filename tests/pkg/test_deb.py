#!/usr/bin/env python3
"""The Debian package, as an operator gets it: `make deb` builds it (lintian
must report no error), dpkg installs it on this machine, the installed agent
runs with the installed configuration against a real memcached, a real
HAProxy loads the installed snippets and Lua glue, a URL is a Miss then a
Hit, and the package is purged afterwards, also when a check fails.

It runs when CI=true or when dpkg-buildpackage is present, as root, and only
when no spoe-cache package is installed already (it never replaces one)."""
import glob
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import HOST, ROOT, free_port, main, skip, test, wait_for, wait_port  # noqa: E402
from stack import haproxy_cmd  # noqa: E402

PKG = "spoe-cache"
SHARE = "/usr/share/spoe-cache"
CONF = "/etc/spoe-cache/spoe-cache.conf"


def sh(*argv, check=True):
    p = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s" % (" ".join(argv), p.returncode, out[-3000:]))
    return p.returncode, out


def installed():
    rc, out = sh("dpkg-query", "-W", "-f=${Status}", PKG, check=False)
    return rc == 0 and "installed" in out and "not-installed" not in out


def applies():
    if not (os.environ.get("CI") == "true" or shutil.which("dpkg-buildpackage")):
        return "neither CI=true nor dpkg-buildpackage"
    if os.geteuid() != 0:
        return "not root: dpkg cannot install it"
    if installed():
        return "a %s package is installed on this machine already; not touching it" % PKG
    return None


@test
def test_package_installs_serves_and_purges(procs):
    why = applies()
    if why:
        skip(why)
    sh("make", "-C", ROOT, "--no-print-directory", "deb")
    debs = [d for d in glob.glob(os.path.join(ROOT, "build/deb/%s_*.deb" % PKG))]
    assert len(debs) == 1, debs
    try:
        sh("dpkg", "-i", debs[0])
        assert installed()
        # What the package put where.
        for path in ("/usr/bin/spoe-cache-agent", "/usr/bin/spoe-cache-ctl", CONF,
                     "/lib/systemd/system/spoe-cache-agent.service",
                     "/usr/share/man/man8/spoe-cache-agent.8.gz",
                     SHARE + "/haproxy-conf/cache-before-ratelimit.cfg",
                     SHARE + "/haproxy-conf/spoe-cache.conf", SHARE + "/lua-glue/spoe-cache.lua",
                     SHARE + "/haproxy-conf/spoe-cache-l1-skip.map"):
            assert os.path.exists(path), path
        assert sh("dpkg-query", "-W", "-f=${Conffiles}", PKG)[1].split()[0] == CONF
        assert sh("getent", "passwd", PKG, check=False)[0] == 0, "no system user"
        sh("/usr/bin/spoe-cache-agent", "-t", "-c", CONF)
        check_unit("/lib/systemd/system/spoe-cache-agent.service")
        serve_miss_then_hit(procs)
    finally:
        procs.close()
        sh("dpkg", "--purge", PKG)
    assert not installed()
    assert not os.path.exists("/usr/bin/spoe-cache-agent") and not os.path.exists(CONF)


def check_unit(unit):
    """systemd's own tools on the installed unit: it verifies, and its
    exposure score stays where the hardening put it (8.3 before, 1.4 after)."""
    if not shutil.which("systemd-analyze"):
        return
    sh("systemd-analyze", "verify", unit)
    out = sh("systemd-analyze", "security", "--offline=yes", unit)[1]
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert m and float(m.group(1)) <= 2.0, out[-2000:]


def serve_miss_then_hit(procs):
    """The installed agent with the installed configuration (only its ports
    moved to free ones), the installed template in a real HAProxy."""
    mc = procs.memcached()
    agent_port, admin_port, http_port, origin_port = (free_port() for _ in range(4))
    with open(CONF) as f:
        text = f.read()
    for old, new in (("port = 12345;", "port = %d;" % agent_port),
                     ("port = 12346;", "port = %d;" % admin_port),
                     ("port = 11211;", "port = %d;" % mc.port)):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    conf = procs.write("installed.conf", text)
    agent = procs.spawn(["/usr/bin/spoe-cache-agent", "-c", conf], name="agent")
    wait_port(agent_port, proc=agent)
    origin = procs.spawn([sys.executable, os.path.join(ROOT, "tests/lib/origin.py"),
                          str(origin_port)], name="origin")
    wait_port(origin_port, proc=origin)
    sock = procs.path("haproxy.sock")
    # No SPOE_CACHE_HOME: the template finds the SPOE file and the Lua glue
    # where the package installed them.
    env = {"SPOE_CACHE_BIND": "%s:%d" % (HOST, http_port),
           "SPOE_CACHE_ORIGIN": "%s:%d" % (HOST, origin_port),
           "SPOE_CACHE_AGENT": "%s:%d" % (HOST, agent_port),
           "SPOE_CACHE_ADMIN": "%s:%d" % (HOST, admin_port),
           "SPOE_CACHE_STATS_SOCKET": sock}
    tpl = SHARE + "/haproxy-conf/cache-before-ratelimit.cfg"
    with open(tpl) as f:
        assert re.search(r'\$\{SPOE_CACHE_HOME-%s\}' % re.escape(SHARE), f.read())
    haproxy = procs.spawn(["haproxy", "-db", "-f", tpl], name="haproxy", env=env)
    wait_port(http_port, proc=haproxy)

    def agent_up():
        return any(line.split(",")[17:18] == ["UP"] for line in haproxy_cmd(sock, "show stat")
                   .splitlines() if line.startswith("spoe-cache-agents,agent1,"))
    wait_for(agent_up, timeout=15, step=0.05, what="HAProxy to see the installed agent up")
    import http.client

    def get():
        c = http.client.HTTPConnection(HOST, http_port, timeout=10)
        c.request("GET", "/json")
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, r.getheader("X-Cache-Status"), body
    st, status, body = get()
    assert st == 200 and status == "Miss", (st, status)
    st, status2, body2 = wait_for(lambda: (lambda r: r if r[1] == "Hit" else None)(get()),
                                  timeout=10, step=0.05, what="a Hit from the installed stack")
    assert body2 == body


if __name__ == "__main__":
    main()
