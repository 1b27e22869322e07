#!/usr/bin/env python3
"""End to end: HAProxy speaks SPOP to the agent over a unix socket (issue
15), with the templates' own commented alternative server line, on both
HAProxy versions: misses, hits, a large stored body, HEAD, the health
check; nothing listens on a TCP port for SPOP.
"""
import os
import re
import socket
import stat
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import AGENT, AGENT_ASAN, HOST, ROOT, main, test, wait_for, wait_port  # noqa: E402
from stack import Stack  # noqa: E402


def unix_template(procs, name):
    """A copy of haproxy-conf/NAME whose spoe-cache-agents server line is
    the commented unix-socket alternative the template ships."""
    with open(os.path.join(ROOT, "haproxy-conf", name)) as f:
        text = f.read()
    tcp = re.search(r'^    server agent1 "\$\{SPOE_CACHE_AGENT-[^\n]*$', text, re.M)
    unix = re.search(r'^    #(server agent1 "unix@\$\{SPOE_CACHE_AGENT_SOCKET-[^\n]*)$', text, re.M)
    assert tcp and unix, "%s: no commented unix-socket alternative next to the server line" % name
    text = text[:tcp.start()] + "    " + unix.group(1) + text[tcp.end():]
    return procs.write("unix-" + name, text)


class UnixStack(Stack):
    """The stack with the agent on a unix socket (agent.listen = "unix:PATH")."""

    def __init__(self, procs, template, **kw):
        self.sock_path = procs.path("spop.sock")
        env = {"SPOE_CACHE_AGENT_SOCKET": self.sock_path,
               "SPOE_CACHE_AGENT": "127.0.0.1:1"}     # the TCP line is gone: nothing uses it
        super().__init__(procs, template=template, haproxy_extra_env=env, **kw)

    def config_text(self):
        text = super().config_text()
        old = 'listen = "127.0.0.1";\n  port = %d;' % self.agent_port
        assert old in text
        return text.replace(old, 'listen = "unix:%s"; socket_mode = "0600";' % self.sock_path)

    def start_agent(self):
        def up():
            if self.agent.poll() is not None:
                raise RuntimeError("agent exited with %s" % self.agent.returncode)
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(self.sock_path)
                return True
            except OSError:
                return False
            finally:
                s.close()
        self.agent = self.procs.spawn([AGENT_ASAN if self.asan else AGENT, "-c", self.conf],
                                      name="agent")
        wait_for(up, timeout=15, what="the agent on its unix socket")
        wait_port(self.admin_port, proc=self.agent)
        return self.agent


def tcp_listening(port):
    s = socket.socket()
    try:
        s.settimeout(1)
        s.connect((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


@test
def test_stack_over_unix_socket(procs):
    for name in ("cache-before-ratelimit.cfg", "cache-after-ratelimit.cfg"):
        s = UnixStack(procs, unix_template(procs, name))
        st = os.lstat(s.sock_path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        assert not tcp_listening(s.agent_port), "the agent listens on TCP too"
        wait_for(s.agent_seen_up, timeout=30, step=0.2, what="HAProxy's check of the unix server")
        st, h, b = s.get("/json")
        assert st == 200 and h.get("x-cache-status") == "Miss", (name, h)
        st, h2, b2 = s.get("/json")
        assert st == 200 and h2.get("x-cache-status") == "Hit" and b2 == b, (name, h2)
        assert h2["x-cache-key"] == h["x-cache-key"]
        # a body large enough to be fragmented on 2.6
        path = "/gen?size=100000&ct=text/plain&h=Cache-Control:max-age%3D60"
        st, h, b = s.get(path)
        assert st == 200 and h.get("x-cache-status") == "Miss" and len(b) == 100000, (name, h)
        hit = s.wait_cached(path)
        assert hit[2] == b, name
        st, h, b = s.request("HEAD", "/json")
        assert st == 200 and h.get("x-cache-status") == "Hit" and b == b"", (name, h)
        assert s.origin_count("/json") == 1
        assert s.metrics()["spoe_cache_spop_connections"] >= 1
        procs.stop(s.haproxy)
        procs.stop(s.agent)
        assert not os.path.exists(s.sock_path), "the agent left its socket behind"
        procs.stop(s.origin)
        for m in s.shards:
            procs.stop(m)


if __name__ == "__main__":
    main()
