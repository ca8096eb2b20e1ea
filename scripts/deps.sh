#!/bin/sh
# Installs the Debian packages that the given needs call for, only those
# missing: `make` and `make run` need build and run; `make test` adds test;
# `make bench` adds bench.
#
# Usage: sh scripts/deps.sh NEED...   (NEED: build, run, test, bench)
#
# Debian 12 always has the rest (util-linux: setpriv, flock, setsid,
# taskset; coreutils). --no-install-recommends: only what is listed and what
# it depends on.
set -eu

# One package a line, with why; keep each list sorted so that additions
# from different branches merge cleanly.
packages() {
	case $1 in
	build) cat <<'EOF' ;;
gcc               # cc, and binutils (ld, objcopy, nm) for client/client.mk
libevent-dev
libinih-dev
libjansson-dev
libmariadb-dev
libssl-dev
libsystemd-dev
make
pkg-config
EOF
	run) cat <<'EOF' ;;
mariadb-client    # the sandbox's setup, and the banner's example
mariadb-server    # mariadbd and mariadb-install-db for the sandbox
socat             # the readiness check, and the banner's protocol session
EOF
	test) cat <<'EOF' ;;
clang             # the libFuzzer harnesses (tests/fuzz)
groff-base        # test_ops_files: man pages through groff
libclang-rt-14-dev # clang's fuzzer and sanitizer runtimes
libcmocka-dev     # unit tests
mandoc            # test_ops_files: mandoc -T lint
openssl           # test_security: a throwaway PKI for the TLS listener
prometheus        # promtool for the alert rules, and a real scrape (test_prometheus)
python3-django    # test_django: the ORM on a lease, and the bench's Django block
python3-hypothesis
python3-mysqldb   # Django's MySQL backend (test_django, the bench's snippet)
python3-pymysql
python3-pytest
systemd           # test_ops_files: systemd-analyze verify and security
valgrind          # tests/run.sh: the core tests again under valgrind
EOF
	bench) cat <<'EOF' ;;
gnuplot-nox       # the plots
procps            # ps: the load on the machine before a run
python3-django    # scenario 9: a Django block, the snippet against tablelock.django
python3-mysqldb   # scenario 9: Django's MySQL backend
python3           # bench/report.py and the result summaries
strace            # syscalls per cycle
EOF
	*)
		echo "deps: unknown need '$1' (build, run, test or bench)" >&2
		exit 2
		;;
	esac
}

[ $# -gt 0 ] || set -- build run
wanted=""
for need in "$@"; do
	list=$(packages "$need") || exit 2
	wanted="$wanted $(printf '%s\n' "$list" | sed 's/#.*//')"
done

missing=""
for p in $wanted; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing (run as root, or install them)" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the distribution's own MariaDB service from being started:
# tablelockd's tests and sandbox run their own private servers.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
