#!/usr/bin/env python3
"""test_layers.py - the agent's layers are a build fact.

agent/core (pure codecs and the policy core), agent/ops (configuration,
logging, counters), agent/io (event-loop shells) and agent/cmd (the two
programs): each may include only the layers before it, no file of the agent
is in an include loop, the core library calls nothing of libevent or
libconfig, and spoe-cache-ctl carries no SPOP connection or worker code.
Reads the tree and the built objects (make all asan); starts nothing.
"""
import glob
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import ROOT, main, test  # noqa: E402

LAYERS = ["core", "ops", "io", "cmd"]
ALLOWED = {l: set(LAYERS[:i + 1]) for i, l in enumerate(LAYERS)}
FOREIGN = {  # system headers a layer must not see
    "core": ("event2/", "libconfig.h"),
    "ops": ("event2/",),
}


def sources():
    out = {}
    for layer in LAYERS:
        for p in sorted(glob.glob(os.path.join(ROOT, "agent", layer, "*.[ch]"))):
            out[os.path.relpath(p, ROOT)] = layer
    return out


def includes(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        text = f.read()
    return (re.findall(r'^\s*#\s*include\s+"([^"]+)"', text, re.M),
            re.findall(r'^\s*#\s*include\s+<([^>]+)>', text, re.M))


def by_name(srcs):
    names = {}
    for p in srcs:
        names.setdefault(os.path.basename(p), []).append(p)
    return names


@test
def test_every_agent_file_is_in_a_layer(procs):
    stray = [p for p in glob.glob(os.path.join(ROOT, "agent", "*")) if not os.path.isdir(p)]
    assert not stray, "files outside agent/{%s}: %s" % (",".join(LAYERS), stray)
    dirs = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "agent", "*")))
    assert dirs == sorted(LAYERS), dirs


@test
def test_includes_go_down_the_layers_only(procs):
    srcs = sources()
    names = by_name(srcs)
    bad = []
    for path, layer in srcs.items():
        local, system = includes(path)
        for inc in local:
            hits = names.get(inc, [])
            assert len(hits) == 1, "%s includes \"%s\": %d files of that name" % (path, inc, len(hits))
            if srcs[hits[0]] not in ALLOWED[layer]:
                bad.append("%s (%s) -> %s (%s)" % (path, layer, hits[0], srcs[hits[0]]))
        for inc in system:
            if any(inc.startswith(f) for f in FOREIGN.get(layer, ())):
                bad.append("%s (%s) -> <%s>" % (path, layer, inc))
    assert not bad, "includes against the layering:\n  " + "\n  ".join(bad)


@test
def test_no_include_loop(procs):
    """A .c and its .h are one module; module A uses B when A's .c or .h
    includes B's .h. The use graph must have no cycle."""
    srcs = sources()
    names = by_name(srcs)

    def module(p):
        return os.path.splitext(p)[0]

    uses = {}
    for path in srcs:
        for inc in includes(path)[0]:
            dep = module(names[inc][0])
            if dep != module(path):
                uses.setdefault(module(path), set()).add(dep)
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(uses.get(m, ())):
            if state.get(d) == 1:
                raise AssertionError("include loop: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(uses):
        if m not in state:
            visit(m)


def undefined(path):
    out = subprocess.check_output(["nm", "-u", "--format=just-symbols", path],
                                  stderr=subprocess.DEVNULL).decode()
    return set(out.split())


def defined(path):
    out = subprocess.check_output(["nm", "--defined-only", "--format=just-symbols", path],
                                  stderr=subprocess.DEVNULL).decode()
    return set(out.split())


@test
def test_core_library_calls_no_event_loop_or_config_parser(procs):
    lib = os.path.join(ROOT, "build", "obj", "libspoecache-core.a")
    assert os.path.exists(lib), "build it first: make"
    calls = undefined(lib)
    own = defined(lib)
    foreign = sorted(s for s in calls - own
                     if re.match(r"(event_|evbuffer_|bufferevent_|evhttp_|evutil_|config_|log_)", s))
    assert not foreign, "the core calls: %s" % foreign


@test
def test_ctl_links_no_connection_or_worker_code(procs):
    ctl = os.path.join(ROOT, "spoe-cache-ctl")
    assert os.path.exists(ctl), "build it first: make"
    syms = defined(ctl)
    carried = sorted(s for s in syms if re.match(r"(spoe_conn_|spoe_req_|spoe_server_|worker_|cacheio_|admin_(new|free|reload))", s))
    assert not carried, "spoe-cache-ctl carries: %s" % carried
    assert "policy_request" in syms, "spoe-cache-ctl should compute keys with the policy core"


if __name__ == "__main__":
    main()
