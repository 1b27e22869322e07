#!/usr/bin/env python3
"""Wire: the agent's log lines. On a terminal or a file each line carries
its own UTC timestamp, ident, pid and level; under systemd (stderr is the
journal stream JOURNAL_STREAM names) each carries its priority as a "<N>"
prefix instead and no second timestamp."""
import os
import re
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import AGENT_ASAN, free_port, main, test, wait_for, wait_port  # noqa: E402
from stack import agent_config  # noqa: E402

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z spoe-cache-agent\[\d+\] (\w+): ")


def run_agent(procs, journal):
    mc = procs.memcached()
    port, admin = free_port(), free_port()
    conf = procs.write("agent.conf", agent_config([(mc.port, 100)], port, admin,
                                                  log_level="info"))
    p = procs.spawn([AGENT_ASAN, "-c", conf], name="agent", journal=journal)
    wait_port(port, proc=p)
    os.kill(p.pid, signal.SIGHUP)   # a reload: one more notice line
    wait_for(lambda: "reload" in procs.log_text(p), timeout=10, what="the reload's log line")
    procs.stop(p)
    return [line for line in procs.log_text(p).splitlines() if line]


@test
def test_plain_lines_carry_timestamp_and_level(procs):
    lines = run_agent(procs, journal=False)
    assert lines and all(STAMP.match(line) for line in lines), lines[:5]


@test
def test_journal_lines_carry_priority_only(procs):
    lines = run_agent(procs, journal=True)
    assert lines, lines
    for line in lines:
        m = re.match(r"^<([0-7])>(.*)$", line)
        assert m, line
        assert not STAMP.match(m.group(2)) and not re.match(r"^\d{4}-\d\d-\d\d", m.group(2)), line
    # The listening line is a notice (5), as the plain format says.
    assert any(line.startswith("<5>") and "listening on" in line for line in lines), lines


if __name__ == "__main__":
    main()
