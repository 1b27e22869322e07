#!/bin/sh
# promtool.sh DIR - promtool, from Debian's prometheus package, unpacked
# under DIR (DIR/usr/bin/promtool) and never installed: installing the
# package would start a Prometheus server. The wire tier checks a live
# /metrics scrape with it (tests/wire/test_metrics_prom.py).
# Exit 1, with the reason in DIR/download.log, when it cannot be had (no
# network, no such package); that test then says skip.
set -e
dir=$1
[ -n "$dir" ] || { echo "usage: $0 DIR" >&2; exit 2; }
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
log=download.log
fetch() {
	apt-get download prometheus >>$log 2>&1
}
if ! fetch; then
	# A fresh machine may have no package lists yet: update them once, as
	# deps.sh does (sudo only if it needs no password: make never prompts).
	if [ "$(id -u)" != 0 ]; then SUDO="sudo -n"; else SUDO=; fi
	if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >>$log 2>&1 || ! fetch; then
		echo "promtool: cannot download Debian's prometheus package (see $dir/$log): its test will be skipped"
		exit 1
	fi
fi
# Only promtool is kept (the server and the rest are about 80 MB more).
dpkg-deb -x prometheus_*.deb pkg >>$log 2>&1
mkdir -p usr/bin
mv pkg/usr/bin/promtool usr/bin/
rm -rf pkg prometheus_*.deb
./usr/bin/promtool --version >>$log 2>&1
echo "promtool: $(sed -n 's/^promtool, version \([^ ]*\).*/\1/p' $log) in $dir/usr/bin"
