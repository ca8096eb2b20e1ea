#!/bin/sh
# Installs the Debian packages that building, running and testing need, only when missing.
set -eu

PACKAGES="gcc make pkg-config libevent-dev libjansson-dev libmariadb-dev libinih-dev
libsystemd-dev libssl-dev libcmocka-dev mariadb-server mariadb-client
python3-pytest python3-pymysql python3-hypothesis socat clang mandoc gnuplot-nox valgrind
openssl libclang-rt-14-dev"

missing=""
for p in $PACKAGES; do
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
