#!/bin/sh
# deps.sh check|install - the Debian packages that build, demo, tests and bench need.
set -e
PKGS="build-essential pkg-config libevent-dev libmemcached-dev libconfig-dev libssl-dev
haproxy memcached openssl python3 curl clang libclang-rt-14-dev wrk groff-base
liblua5.4-dev libpcre2-dev zlib1g-dev
debhelper lintian fakeroot dpkg-dev
nginx libnginx-mod-http-srcache-filter libnginx-mod-http-memc libnginx-mod-http-set-misc"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
case "$1" in
check)
	[ -z "$missing" ] && exit 0
	echo "missing packages:$missing" >&2
	exit 1 ;;
install)
	[ -z "$missing" ] && { echo "all dependencies present"; exit 0; }
	if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing ;;
*)
	echo "usage: $0 check|install" >&2; exit 2 ;;
esac
