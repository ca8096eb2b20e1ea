#!/bin/sh
# Runs the protocol model (tests/integration/test_model.py) against the real
# daemon and a throwaway MariaDB with random seeds, for SOAK_MINUTES (default
# 10). The first seed is printed first; SEED=... starts from that seed (a
# failing round prints its own seed to replay). Ends with the request and
# lease counts and one line, "soak: PASS" or "soak: FAIL".
#
# Usage: SOAK_MINUTES=30 SEED=123 sh tests/soak.sh [DAEMON_PATH]
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
daemon=${1:-$root/daemon/tablelockd}
case $daemon in /*) ;; *) daemon=$(pwd)/$daemon ;; esac
minutes=${SOAK_MINUTES:-10}
seconds=$(awk -v m="$minutes" 'BEGIN { s = int(m * 60); print (s < 1 ? 1 : s) }')
# A round that started before the time ran out finishes (a minute or two,
# more if it shrinks a failure); past this, the soak is stuck.
hard_limit=$((seconds + 900))

cd "$root" || exit 2
echo "soak: ${minutes} min against $daemon"
env TABLELOCKD="$daemon" PYTHONDONTWRITEBYTECODE=1 \
	TABLELOCK_SOAK_SECONDS="$seconds" TABLELOCK_SOAK_SEED="${SEED:-}" \
	TABLELOCK_MODEL_SHRINK_SECONDS="${TABLELOCK_MODEL_SHRINK_SECONDS:-300}" \
	timeout -k 15 "$hard_limit" \
	/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration/test_model.py -k test_model_soak
rc=$?
if [ "$rc" -eq 0 ]; then
	echo "soak: PASS"
else
	[ "$rc" -eq 124 ] && echo "soak: stopped after ${hard_limit} s"
	echo "soak: FAIL"
fi
exit "$rc"
