#!/usr/bin/env python3
"""End to end: the configuration file and the agent's life around it
(issue 8). `spoe-cache-agent -t -c FILE` on a good file and on each kind of
error (every message names the file, the line and the setting); the agent
refusing to start on a bad file; logging levels and targets (no per-request
line at the default level); SIGHUP reloading policies, hosts and the log
level without dropping HAProxy's SPOE connections, and refusing a bad file
while the running configuration keeps serving.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import (AGENT, AGENT_ASAN, CTL, HOST, ROOT, free_port, main, make_tls,  # noqa: E402
                     test, wait_for)
from stack import Stack, agent_config  # noqa: E402

AGENT_BIN = AGENT_ASAN if os.access(AGENT_ASAN, os.X_OK) else AGENT
HOSTS = 'memcached: { hosts = ( { host = "127.0.0.1"; } ); };\n'


def check(path):
    """spoe-cache-agent -t -c path: (exit code, stdout, stderr)."""
    p = subprocess.run([AGENT_BIN, "-t", "-c", path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def status(resp):
    return resp[1].get("x-cache-status")


# ---- spoe-cache-agent -t ------------------------------------------------------

@test
def test_check_accepts_good_configs(procs):
    rc, out, err = check(os.path.join(ROOT, "examples", "spoe-cache.conf"))
    assert rc == 0 and "configuration OK" in out and err == "", (rc, out, err)
    p = procs.write("stack.conf", agent_config([(11211, 100), (11212, 50)], 12345, 12346))
    rc, out, err = check(p)
    assert rc == 0 and out == "%s: configuration OK (2 memcached hosts, 1 policies)\n" % p, out
    # 64-bit literals, hex, signs, every type, in an @included file
    inc = procs.write("policies.inc", """policies: {
  api: {
    response_code = [200, 0x12D];
    request_method = ["GET"];
    content_type = ["*"];
    cache_ttl = 60L;
    storage_ttl = +600;
    cache_control = true;
    allow_force_cache_header = false;
    vary_headers = ["Accept-Language"];
    vary_query_params = ["page"];
    vary_body_json_fields = ["query"];
    key_routing_headers = ["Forwarded", "X-Forwarded-Host"];
    routing_headers = "bypass";
  };
  trusted: {
    key_routing_headers = [];
    routing_headers = "key";
  };
};
""")
    tls = make_tls(procs.dir)
    p = procs.write("full.conf", """agent: {
  listen = "127.0.0.1"; port = 12345; threads = 4; max_frame_size = 16380;
  max_inflight = 64; max_output = 1048576; max_frag_size = 2097152;
  max_query_params = 50; max_headers = 100;
  admin: { listen = ""; port = 12346; token = "x"; };
  log: { level = "warning"; target = "syslog"; };
};
memcached: {
  hosts = ( { host = "127.0.0.1"; port = 11211; weight = 3; },
            { host = "localhost"; port = 11211; } );
  timeout = 100; keepalive_timeout = 1; keepalive_pool_size = 4; fail_threshold = 3;
  retry_interval = 500; max_item_size = 2097152;
  tls = true; tls_verify = true; tls_server_name = "mc"; tls_ca_file = "%s";
  tls_cert_file = "%s"; tls_key_file = "%s";
};
@include "%s"
""" % (tls["ca"], tls["client_cert"], tls["client_key"], inc))
    rc, out, err = check(p)
    assert rc == 0 and "(2 memcached hosts, 2 policies)" in out, (rc, out, err)
    # -t reads the TLS files start-up would read
    for k in ("ca", "client_cert", "client_key"):
        q = procs.write("tls-%s.conf" % k, open(p).read().replace(tls[k], procs.path("gone.pem")))
        rc, out, err = check(q)
        assert rc == 1 and err.startswith("spoe-cache-agent: %s: memcached TLS: " % q), (k, err)
        assert "gone.pem" in err, err
    # -t starts nothing: the agent's port may even be busy
    busy = socket.socket()
    busy.bind((HOST, 0))
    busy.listen(1)
    p = procs.write("busy.conf", agent_config([(11211, 100)], busy.getsockname()[1],
                                              busy.getsockname()[1]))
    rc, out, err = check(p)
    busy.close()
    assert rc == 0, (rc, err)


@test
def test_check_accepts_the_runtime_limits(procs):
    """The largest values the runtime works with (policy.h POL_MAX_*, key.h
    KEY_MAX_PARAMS) are accepted; one more is an error (ERRORS)."""
    p = procs.write("limits.conf", """agent: { max_headers = 1000; max_query_params = 1000; };
%spolicies: {
  %s: {
    vary_headers = [%s];
    vary_body_json_fields = [%s];
    key_routing_headers = [%s];
  };
};
""" % (HOSTS, "p" * 255, VARY(64, "X-H"), VARY(64, "f"), VARY(64, "X-R")))
    rc, out, err = check(p)
    assert rc == 0 and "(1 memcached hosts, 1 policies)" in out, (rc, out, err)


def VARY(n, prefix):
    """A libconfig list of n distinct strings."""
    return ", ".join('"%s%d"' % (prefix, i) for i in range(n))


# (name, text, line, the message after "FILE:LINE: ")
ERRORS = [
    ("syntax", 'memcached: {\n  hosts = ( { host = "127.0.0.1"; } );\n  timeout = ;\n};\n',
     3, "syntax error"),
    ("unknown_setting", 'agent: {\n  port = 12345;\n  bogus = 1;\n};\n' + HOSTS,
     3, "agent.bogus: unknown setting"),
    ("unknown_admin_setting", 'agent: {\n  admin: {\n    tokn = "x";\n  };\n};\n' + HOSTS,
     3, "agent.admin.tokn: unknown setting"),
    ("unknown_section", HOSTS + 'policy: {\n};\n',
     2, "policy: unknown section (agent, memcached, policies)"),
    ("type_int", 'memcached: {\n  hosts = ( { host = "127.0.0.1"; } );\n  timeout = "fast";\n};\n',
     3, "memcached.timeout: expected an integer"),
    ("type_float", 'agent: {\n  threads = 2.5;\n};\n' + HOSTS,
     2, "agent.threads: expected an integer"),
    ("type_bool", HOSTS + 'policies: {\n  default: {\n    cache_control = "yes";\n  };\n};\n',
     4, "policies.default.cache_control: expected true or false"),
    ("type_list", HOSTS + 'policies: {\n  default: {\n    content_type = "text/plain";\n  };\n};\n',
     4, "policies.default.content_type: expected a list of strings"),
    ("type_host", 'memcached: {\n  hosts = ( { host = 127; } );\n};\n',
     2, "memcached.hosts[0].host: expected a string"),
    ("range_threads", 'agent: {\n  threads = 0;\n};\n' + HOSTS,
     2, "agent.threads: 0 is out of range [1, 64]"),
    ("range_port", 'memcached: {\n  hosts = (\n    { host = "127.0.0.1"; },\n'
     '    { host = "127.0.0.2"; port = 70000; }\n  );\n};\n',
     4, "memcached.hosts[1].port: 70000 is out of range [1, 65535]"),
    # -t must refuse what the pool would refuse at start-up
    ("range_keepalive", 'memcached: {\n  hosts = ( { host = "127.0.0.1"; } );\n'
     '  keepalive_timeout = 0;\n};\n',
     3, "memcached.keepalive_timeout: 0 is out of range [1, 86400000]"),
    ("range_code", HOSTS + 'policies: {\n  default: {\n    response_code = [200, 700];\n  };\n};\n',
     4, "policies.default.response_code[1]: 700 is out of range [100, 599]"),
    # a store of the largest item would always be refused
    ("backlog_below_item", 'memcached: {\n  hosts = ( { host = "127.0.0.1"; } );\n'
     '  max_item_size = 65536;\n  store_backlog = 4096;\n};\n',
     4, "memcached.store_backlog: 4096 bytes, less than max_item_size (65536)"),
    # libconfig 1.5 would wrap this to 5 (ms), which is in range
    ("range_wraps_32_bits", 'memcached: {\n  hosts = ( { host = "127.0.0.1"; } );\n'
     '  timeout = 4294967301;\n};\n',
     3, "memcached.timeout: 4294967301 is out of range"),
    ("range_64_bit", 'memcached: {\n  hosts = ( { host = "127.0.0.1"; } );\n'
     '  timeout = 4294967301L;\n};\n',
     3, "memcached.timeout: 4294967301 is out of range [1, 600000]"),
    ("unknown_policy_field", HOSTS + 'policies: {\n  default: {\n    cache_ttl = 60;\n'
     '    cache_tll = 60;\n  };\n};\n',
     5, "policies.default.cache_tll: unknown setting"),
    ("policy_not_group", HOSTS + 'policies: {\n  default = 3;\n};\n',
     3, "policies.default: a policy is a group"),
    ("policy_bad_header", HOSTS + 'policies: {\n  p: {\n    vary_headers = ["Accept Language"];\n'
     '  };\n};\n',
     4, 'policies.p.vary_headers: "Accept Language" is not a header name'),
    ("policy_bad_method", HOSTS + 'policies: {\n  p: {\n    request_method = ["GET", "G T"];\n'
     '  };\n};\n',
     4, 'policies.p.request_method: "G T" is not an HTTP method'),
    ("duplicate_hosts", 'memcached: {\n  hosts = (\n    { host = "127.0.0.1"; port = 11211; },\n'
     '    { host = "127.0.0.1"; port = 11212; },\n    { host = "127.0.0.1"; }\n  );\n};\n',
     5, "memcached.hosts[2]: duplicate host 127.0.0.1:11211 (also at line 3)"),
    ("no_hosts", 'memcached: {\n  hosts = ( );\n};\n',
     2, "memcached.hosts: at least one memcached host is needed"),
    ("bad_log_level", 'agent: {\n  log: {\n    level = "loud";\n  };\n};\n' + HOSTS,
     3, 'agent.log.level: unknown level "loud"'),
    ("bad_log_target", 'agent: {\n  log: {\n    target = "file";\n  };\n};\n' + HOSTS,
     3, 'agent.log.target: unknown target "file" (stderr, syslog)'),
    ("tls_without_tls", 'memcached: {\n  hosts = ( { host = "127.0.0.1"; } );\n'
     '  tls_verify = true;\n};\n',
     1, "memcached: tls_* settings need tls = true"),
    # a NUL ends the text libconfig sees; it must not end the file silently
    ("nul_byte", HOSTS + 'agent: {\n  threads = 2;\x00\n  port = 0;\n};\n',
     3, "syntax error: NUL byte"),
    # -t must refuse what the runtime would refuse on every request (policy.h,
    # key.h), not only what libconfig can type
    ("too_many_vary_headers", HOSTS + 'policies: {\n  p: {\n    vary_headers = [%s];\n'
     '  };\n};\n' % VARY(65, "X-H"),
     4, "policies.p.vary_headers: 65 entries, at most 64"),
    ("too_many_vary_json", HOSTS + 'policies: {\n  p: {\n    cache_ttl = 1;\n'
     '    vary_body_json_fields = [%s];\n  };\n};\n' % VARY(65, "f"),
     5, "policies.p.vary_body_json_fields: 65 entries, at most 64"),
    ("too_many_routing_headers", HOSTS + 'policies: {\n  p: {\n    key_routing_headers = [%s];\n'
     '  };\n};\n' % VARY(65, "X-R"),
     4, "policies.p.key_routing_headers: 65 entries, at most 64"),
    ("routing_header_not_a_name", HOSTS + 'policies: {\n  p: {\n'
     '    key_routing_headers = ["X-Forwarded-Host", "X Forwarded"];\n  };\n};\n',
     4, 'policies.p.key_routing_headers: "X Forwarded" is not a header name'),
    ("routing_headers_value", HOSTS + 'policies: {\n  p: {\n    cache_ttl = 1;\n'
     '    routing_headers = "drop";\n  };\n};\n',
     5, 'policies.p.routing_headers: expected "key" or "bypass"'),
    ("routing_headers_type", HOSTS + 'policies: {\n  p: {\n    routing_headers = true;\n  };\n};\n',
     4, 'policies.p.routing_headers: expected "key" or "bypass"'),
    ("policy_name_too_long", HOSTS + 'policies: {\n  %s: {\n    cache_ttl = 1;\n  };\n};\n'
     % ("p" * 256),
     3, "policies.%s...: a policy name of 256 bytes, at most 255" % ("p" * 32)),
    ("range_max_headers", 'agent: {\n  max_headers = 1001;\n};\n' + HOSTS,
     2, "agent.max_headers: 1001 is out of range [1, 1000]"),
    ("range_max_query_params", 'agent: {\n  port = 12345;\n  max_query_params = 1001;\n};\n'
     + HOSTS,
     3, "agent.max_query_params: 1001 is out of range [1, 1000]"),
    # an entry secret anyone could guess signs nothing
    ("entry_secret_short", 'memcached: {\n  hosts = ( { host = "127.0.0.1"; } );\n'
     '  entry_secret = "fifteen bytes!!";\n};\n',
     3, "memcached.entry_secret: 15 bytes, at least 16"),
    ("entry_secret_twice", 'memcached: {\n  hosts = ( { host = "127.0.0.1"; } );\n'
     '  entry_secret = "0123456789abcdef";\n  entry_secret_file = "/etc/hostname";\n};\n',
     3, "memcached: entry_secret and entry_secret_file: set one of them"),
    ("entry_secret_file_missing", 'memcached: {\n  hosts = ( { host = "127.0.0.1"; } );\n'
     '  entry_secret_file = "/nonexistent/entry.secret";\n};\n',
     3, "memcached.entry_secret_file: cannot read /nonexistent/entry.secret: "
     "No such file or directory"),
]


@test
def test_check_names_file_line_and_setting(procs):
    for name, text, line, msg in ERRORS:
        p = procs.write(name + ".conf", text)
        rc, out, err = check(p)
        assert rc == 1 and out == "", (name, rc, out, err)
        assert err.startswith("spoe-cache-agent: %s:%d: %s" % (p, line, msg)), (name, err)
        assert err.count("\n") == 1, (name, err)
    missing = procs.path("missing.conf")
    rc, out, err = check(missing)
    assert rc == 1 and err == "spoe-cache-agent: %s: cannot read: No such file or directory\n" \
        % missing, err
    # an error in an @included file names that file
    inc = procs.write("inc.conf", 'policies: {\n  p: {\n    cache_ttl = -1;\n  };\n};\n')
    p = procs.write("main.conf", HOSTS + '@include "%s"\n' % inc)
    rc, out, err = check(p)
    assert rc == 1 and err.startswith(
        "spoe-cache-agent: %s:3: policies.p.cache_ttl: -1 is out of range" % inc), err
    wrap = procs.write("incwrap.conf", 'policies: {\n  p: {\n    cache_ttl = 4294967596;\n  };\n};\n')
    p = procs.write("main2.conf", HOSTS + '@include "%s"\n' % wrap)
    rc, out, err = check(p)
    assert rc == 1 and err.startswith(
        "spoe-cache-agent: %s:3: policies.p.cache_ttl: 4294967596 is out of range" % wrap), err
    # usage errors
    for argv in (["-x"], ["-t", "-c"], ["extra"]):
        p = subprocess.run([AGENT_BIN] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert p.returncode == 2 and b"usage:" in p.stderr, (argv, p.returncode)


@test
def test_check_entry_secret_file_and_tls_warning(procs):
    """-t reads the entry secret file as start-up would (its final line end
    dropped), and warns, without failing, about TLS that verifies nothing;
    tls alone verifies (tls_verify's default follows tls)."""
    for text, ok in (("0123456789abcdef\n", True), ("0123456789abcdef", True),
                     ("0123456789abcde\r\n", False), ("", False)):
        sec = procs.write("entry.secret", text, mode=0o600)
        p = procs.write("secret.conf", 'memcached: {\n  hosts = ( { host = "127.0.0.1"; } );\n'
                        '  entry_secret_file = "%s";\n};\n' % sec)
        rc, out, err = check(p)
        if ok:
            assert rc == 0 and err == "", (text, rc, err)
        else:
            assert rc == 1 and err.startswith(
                "spoe-cache-agent: %s:3: memcached.entry_secret_file: %d bytes, at least 16"
                % (p, len(text.strip()))), (text, err)
    p = procs.write("noverify.conf", 'memcached: {\n  hosts = ( { host = "127.0.0.1"; } );\n'
                    '  tls = true;\n  tls_verify = false;\n};\n')
    rc, out, err = check(p)
    assert rc == 0 and "configuration OK" in out, (rc, out, err)
    assert err.startswith("spoe-cache-agent: warning: %s:4: memcached.tls_verify: false: "
                          "TLS without verifying" % p), err
    assert err.count("\n") == 1, err
    for extra in ("", "  tls_verify = true;\n"):
        p = procs.write("verify.conf", 'memcached: {\n  hosts = ( { host = "127.0.0.1"; } );\n'
                        '  tls = true;\n%s};\n' % extra)
        rc, out, err = check(p)
        assert rc == 0 and err == "", (extra, rc, err)
    # the agent says it at start-up too
    port, admin = free_port(), free_port()
    p = procs.write("noverify-run.conf", 'agent: { port = %d; admin: { port = %d; }; };\n'
                    'memcached: {\n  hosts = ( { host = "127.0.0.1"; } );\n'
                    '  tls = true;\n  tls_verify = false;\n};\n' % (port, admin))
    a = procs.spawn([AGENT_BIN, "-c", p], name="agent-noverify")
    wait_for(lambda: "memcached.tls_verify: false" in procs.log_text(a), timeout=20,
             what="the warning in the agent's log")
    procs.stop(a)


def listening(port):
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
        return True
    except OSError:
        return False


@test
def test_agent_refuses_to_start_on_a_bad_config(procs):
    mc = procs.memcached()
    chosen = ("syntax", "unknown_section", "type_int", "type_bool", "range_port",
              "range_wraps_32_bits", "unknown_policy_field", "duplicate_hosts")
    for name, text, line, msg in ERRORS:
        if name not in chosen:
            continue
        port, admin = free_port(), free_port()
        # the same error, one line further down, in a file whose ports are free
        p = procs.write("start-" + name + ".conf",
                        'agent: { port = %d; admin: { port = %d; }; };\n%s' % (port, admin, text))
        a = procs.spawn([AGENT_BIN, "-c", p], name="agent-" + name)
        rc = a.wait(timeout=20)
        assert rc == 1, (name, rc)
        msg = re.sub(r"at line (\d+)", lambda m: "at line %d" % (int(m.group(1)) + 1), msg)
        assert procs.log_text(a).startswith("spoe-cache-agent: %s:%d: %s" % (p, line + 1, msg)), \
            (name, procs.log_text(a))
        assert not listening(port) and not listening(admin), name
    # A file -t accepts but that cannot start: the SPOP port is taken.
    busy = socket.socket()
    busy.bind((HOST, 0))
    busy.listen(1)
    bport, admin = busy.getsockname()[1], free_port()
    try:
        p = procs.write("busy.conf", agent_config([(mc.port, 100)], bport, admin))
        assert check(p)[0] == 0
        a = procs.spawn([AGENT_BIN, "-c", p], name="agent-busy")
        rc = a.wait(timeout=20)
    finally:
        busy.close()
    assert rc != 0, rc
    assert re.search(r" err: cannot listen on 127\.0\.0\.1:%d: Address already in use" % bport,
                     procs.log_text(a)), procs.log_text(a)
    assert not listening(admin)


# ---- the manual ----------------------------------------------------------------

@test
def test_man_pages_render_and_document_every_setting(procs):
    """Both pages render with no warning; the agent's page documents every
    setting of agent/ops/config.c's tables and of examples/spoe-cache.conf."""
    if subprocess.call(["sh", "-c", "command -v groff"], stdout=subprocess.DEVNULL) != 0:
        raise AssertionError("groff is needed (apt-get install groff-base)")
    pages = {}
    for name in ("spoe-cache-agent.8", "spoe-cache-ctl.8"):
        path = os.path.join(ROOT, "man", name)
        p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        assert p.returncode == 0 and p.stderr == b"", (name, p.stderr)
        pages[name] = re.sub(r".\x08", "", p.stdout.decode())   # drop overstrike
    agent = pages["spoe-cache-agent.8"]
    with open(os.path.join(ROOT, "agent", "ops", "config.c")) as f:
        src = f.read()
    settings = set(re.findall(r'^\t\{ "(\w+)", K_', src, re.M))
    assert len(settings) > 30, settings
    for name in sorted(settings):
        assert re.search(r"^ +(?:\w+, )*%s[ ,]" % name, agent, re.M), "%s is not documented" % name
    with open(os.path.join(ROOT, "examples", "spoe-cache.conf")) as f:
        example = set(re.findall(r"^\s*#?\s*(\w+)\s*[=:]", f.read(), re.M))
    for name in sorted(example - {"default"}):
        assert name in agent, "%s (examples/spoe-cache.conf) is not documented" % name
    ctl = pages["spoe-cache-ctl.8"]
    for word in ("get", "purge", "flush", "stats", "key", "--json", "--body", "--policy",
                 "EXIT STATUS", "EXAMPLES"):
        assert word in ctl, word


# ---- logging -----------------------------------------------------------------

def set_log(s, group):
    """Restart s's agent with agent.log set to group ("" = no log group)."""
    s.reconfigure('log: { level = "%s"; };' % s.log_level, group)


def burst(s, tag):
    """200 requests: 50 Misses that are stored, 50 Hits, 50 responses that
    are not stored (Set-Cookie), 50 POSTs (Bypass)."""
    for i in range(50):
        assert status(s.get("/gen?body=%s%d" % (tag, i))) == "Miss"
    for i in range(50):
        assert status(s.get("/gen?body=%s%d" % (tag, i))) == "Hit"
    for i in range(50):
        assert status(s.get("/cookie?%s%d" % (tag, i))) == "Bypass"
    for i in range(50):
        assert status(s.request("POST", "/gen?body=%s%d" % (tag, i), body=b"x")) == "Bypass"


def log_lines_after(procs, p, mark):
    return procs.log_text(p)[mark:].splitlines()


@test
def test_default_level_has_no_per_request_lines(procs):
    s = Stack(procs)
    set_log(s, "")                      # the default: notice, stderr
    st, h, b = s.get("/text")            # SPOE connections up
    time.sleep(0.3)
    mark = len(procs.log_text(s.agent))
    burst(s, "n")
    time.sleep(0.5)
    assert log_lines_after(procs, s.agent, mark) == [], log_lines_after(procs, s.agent, mark)

    # An error is one line with its cause, not one per request.
    down = s.shards[0]
    procs.stop(down, signal.SIGKILL)
    mark = len(procs.log_text(s.agent))
    for i in range(200):
        st, h, b = s.get("/gen?body=e%d" % i)
        assert st == 200
    time.sleep(0.5)
    lines = log_lines_after(procs, s.agent, mark)
    assert 1 <= len(lines) <= 8, lines
    named = [l for l in lines if "shard 127.0.0.1:%d" % down.port in l]
    assert named and any(re.search(r" (err|warning): .*(refused|down)", l) for l in named), lines
    assert all("shard 127.0.0.1:%d" % down.port in l for l in lines), lines


@test
def test_debug_level_logs_requests(procs):
    s = Stack(procs, log_level="debug")
    st, h, b = s.get("/text")
    time.sleep(0.3)
    mark = len(procs.log_text(s.agent))
    burst(s, "d")
    time.sleep(0.5)
    lines = log_lines_after(procs, s.agent, mark)
    assert all(" debug: " in l for l in lines), [l for l in lines if " debug: " not in l]
    # One line per response not stored. (Hits, stored Misses and method
    # Bypasses have no debug line of their own: see cache.c.)
    refused = [l for l in lines if "not stored: set_cookie" in l]
    assert len(refused) == 50, len(refused)


@test
def test_syslog_target(procs):
    s = Stack(procs, log_level="debug")
    set_log(s, 'log: { level = "debug"; target = "syslog"; };')
    assert check(s.conf)[0] == 0
    mark = len(procs.log_text(s.agent))
    for i in range(20):
        s.get("/cookie?s%d" % i)
    assert status(s.get("/text")) == "Miss"
    assert status(s.get("/text")) == "Hit"
    st, h, b = s.request("GET", "/healthz", port=s.admin_port)
    assert st == 200
    # Everything went to syslog (or nowhere without a daemon), not stderr.
    assert log_lines_after(procs, s.agent, mark) == [], log_lines_after(procs, s.agent, mark)
    assert s.agent.poll() is None


# ---- SIGHUP --------------------------------------------------------------------

def policies(**kw):
    lines = []
    for k, v in kw.items():
        if isinstance(v, (list, tuple)):
            v = "[" + ", ".join('"%s"' % x for x in v) + "]"
        lines.append("    %s = %s;" % (k, v))
    return "  default: {\n%s\n  };\n" % "\n".join(lines)


def spop_conns(port):
    """Local ports of ESTABLISHED TCP connections to 127.0.0.1:port (HAProxy's
    side of its SPOE connections, and any health check in flight)."""
    out = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            local, remote, st = parts[1], parts[2], parts[3]
            if st == "01" and int(remote.split(":")[1], 16) == port:
                out.add(int(local.split(":")[1], 16))
    return out


def stable_spop_conns(port):
    """The connections present in two snapshots apart: not health checks."""
    a = spop_conns(port)
    time.sleep(0.3)
    return a & spop_conns(port)


def reload(procs, s, text=None, expect="configuration reloaded"):
    """Write text (when given) to s.conf, SIGHUP the agent, wait for the log
    line; returns the lines logged since."""
    mark = len(procs.log_text(s.agent))
    if text is not None:
        with open(s.conf, "w") as f:
            f.write(text)
    os.kill(s.agent.pid, signal.SIGHUP)
    wait_for(lambda: expect in procs.log_text(s.agent)[mark:], timeout=10,
             what="'%s' in the agent's log" % expect)
    # The workers take the new config on their own loops: wait until every
    # one of them (and the admin endpoint) uses the generation just loaded.
    m = re.search(r"configuration reloaded from .* \(generation (\d+)\)",
                  procs.log_text(s.agent)[mark:])
    if m:
        s.wait_generation(int(m.group(1)))
    return procs.log_text(s.agent)[mark:].splitlines()


def ctl_json(conf, *args):
    p = subprocess.run([CTL, "-c", conf, "--json"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    return p.returncode, [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]


@test
def test_sighup_new_policy_applies_without_dropping_spoe(procs):
    s = Stack(procs, policies=policies(content_type=["text/plain"], cache_ttl=300))
    assert status(s.get("/json")) == "Bypass"
    assert status(s.get("/json")) == "Bypass"
    assert status(s.get("/text")) == "Miss"
    assert status(s.get("/text")) == "Hit"
    for i in range(20):                   # SPOE connections on every HAProxy thread
        s.get("/text")
    before = stable_spop_conns(s.agent_port)
    assert before, "no SPOE connection to the agent"
    m0 = s.metrics()

    s.policies = policies(content_type=["text/plain", "application/json"], cache_ttl=123)
    reload(procs, s, s.config_text())
    st, h, b = s.get("/json")
    assert status((st, h, b)) == "Miss", h
    key = h["x-cache-key"]
    assert status(s.get("/json")) == "Hit"
    rc, (e,) = ctl_json(s.conf, "get", key)
    assert rc == 0 and e["lifetime"] == 123, e
    # the entry stored before the reload is still there and still served
    assert status(s.get("/text")) == "Hit"
    for i in range(20):
        assert status(s.get("/text")) == "Hit"

    after = spop_conns(s.agent_port)
    assert before <= after, (before, after)
    m1 = s.metrics()
    assert m1["spoe_cache_spop_disconnects_total"] == m0["spoe_cache_spop_disconnects_total"]
    assert m1["spoe_cache_spop_connections"] >= len(before), (m1, before)
    assert s.agent.poll() is None and s.haproxy.poll() is None


@test
def test_sighup_host_list_change(procs):
    s = Stack(procs, weights=(100, 100))
    old = ["/gen?body=o%d" % i for i in range(20)]
    for p in old:
        s.wait_cached(p)
    new_mc = procs.memcached()
    s.shards.append(new_mc)
    s.weights.append(100)
    reload(procs, s, s.config_text())
    name = "127.0.0.1:%d" % new_mc.port

    # The admin endpoint and the workers use the new host list.
    m = wait_for(lambda: 'spoe_cache_memcached_up{shard="%s"}' % name in s.metrics()
                 and s.metrics(), timeout=10, what="the new shard in /metrics")
    paths = ["/gen?body=n%d" % i for i in range(60)]
    for p in paths:
        s.wait_cached(p)
    rc, st = ctl_json(s.conf, "stats")
    st = {r["shard"]: r for r in st}
    assert rc == 0 and len(st) == 3 and st[name]["up"], st
    assert st[name]["items"] > 0, st
    wait_for(lambda: s.metrics().get(
        'spoe_cache_memcached_requests_total{shard="%s"}' % name, 0) > 0,
        timeout=10, what="requests on the new shard")
    # The CLI (reading the same file) finds every entry where the agent put it.
    for p in paths:
        st_, h, b = s.get(p)
        assert status((st_, h, b)) == "Hit", p
        rc, (e,) = ctl_json(s.conf, "get", h["x-cache-key"])
        assert rc == 0 and e["found"], (p, e)
    # Entries of the old ring still on their shard are still hits.
    hits = sum(1 for p in old if status(s.get(p)) == "Hit")
    assert hits > 0, hits


@test
def test_sighup_refuses_a_bad_config_and_keeps_serving(procs):
    s = Stack(procs, policies=policies(content_type=["text/plain"]))
    good = s.config_text()
    s.wait_cached("/text")
    assert status(s.get("/json")) == "Bypass"
    bad_files = [
        # a new policy that would cache JSON, and a typo: nothing applies
        (good.replace('content_type = ["text/plain"];',
                      'content_type = ["text/plain", "application/json"];\n    cache_tll = 5;'),
         r"reload refused, keeping the running configuration: %s:\d+: "
         r"policies\.default\.cache_tll: unknown setting" % re.escape(s.conf)),
        (good.replace("threads = 2;", "threads = 2;\n  port = ;"),
         r"reload refused, keeping the running configuration: %s:\d+: syntax error"
         % re.escape(s.conf)),
        (good.replace("timeout = 500;", "timeout = 4294967796;"),
         r"reload refused, keeping the running configuration: %s:\d+: memcached\.timeout: "
         r"4294967796 is out of range" % re.escape(s.conf)),
        (good.replace("timeout = 500;", 'timeout = 500; tls = true;'),
         r"reload refused: changing memcached\.tls needs a restart"),
    ]
    for text, pattern in bad_files:
        lines = reload(procs, s, text, expect="reload refused")
        assert len(lines) == 1 and re.search(pattern, lines[0]), (pattern, lines)
        assert " err: " in lines[0], lines
        assert s.agent.poll() is None
        assert status(s.get("/text")) == "Hit"
        assert status(s.get("/json")) == "Bypass"
        p = "/gen?body=%d" % len(lines[0])
        s.wait_cached(p)
        st, h, b = s.request("GET", "/metrics", port=s.admin_port)
        assert st == 200
    # A missing file is refused too.
    os.rename(s.conf, s.conf + ".away")
    lines = reload(procs, s, None, expect="reload refused")
    assert "cannot read" in lines[0], lines
    os.rename(s.conf + ".away", s.conf)
    assert status(s.get("/text")) == "Hit"

    # The good file again, at debug level: the level changes on the fly.
    with open(s.conf, "w") as f:
        f.write(good)
    s.log_level = "info"
    s.policies = policies(content_type=["text/plain", "application/json"])
    text = s.config_text().replace('level = "info"', 'level = "debug"')
    lines = reload(procs, s, text)
    assert status(s.get("/json")) == "Miss"
    mark = len(procs.log_text(s.agent))
    for i in range(10):
        s.get("/cookie?h%d" % i)
    time.sleep(0.3)
    assert procs.log_text(s.agent)[mark:].count("not stored: set_cookie") == 10
    # and back to notice: silent again
    lines = reload(procs, s, text.replace('level = "debug"', 'level = "notice"'))
    mark = len(procs.log_text(s.agent))
    for i in range(10):
        s.get("/cookie?q%d" % i)
    time.sleep(0.3)
    assert procs.log_text(s.agent)[mark:] == ""


@test
def test_sighup_reload_under_asan_frees_nothing_in_use(procs):
    """Reloads with traffic in flight, under ASan: pools swapped on every
    worker while lookups and stores are pending; no report, clean exit."""
    s = Stack(procs, asan=True)
    stop = []
    errors = []

    def load():
        i = 0
        while not stop:
            try:
                st, h, b = s.get("/gen?body=r%d" % (i % 50))
                if st != 200:
                    errors.append(st)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
            i += 1
    ts = [threading.Thread(target=load) for _ in range(4)]
    for t in ts:
        t.start()
    try:
        for i in range(6):
            s.policies = policies(content_type=["text/plain"], cache_ttl=100 + i)
            reload(procs, s, s.config_text())
    finally:
        stop.append(1)
        for t in ts:
            t.join()
    assert errors == [], errors[:5]
    assert s.stop_agent() == 0


if __name__ == "__main__":
    main()
