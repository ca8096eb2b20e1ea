#!/bin/sh
# Runs every test (cmocka unit binaries, then the pytest integration suite)
# and ends with one line: "N passed, N failed".
#
# Usage: sh tests/run.sh BUILD_DIR DAEMON_PATH
# The environment passes through (ASAN_OPTIONS, TABLELOCK_VALGRIND, …).
set -u

if [ $# -ne 2 ]; then
	echo "usage: sh tests/run.sh BUILD_DIR DAEMON_PATH" >&2
	exit 2
fi
build=$1
daemon=$2
root=$(cd "$(dirname "$0")/.." && pwd)
case $build in /*) ;; *) build=$(pwd)/$build ;; esac
case $daemon in /*) ;; *) daemon=$(pwd)/$daemon ;; esac

# A hung suite must fail, not stall: `make test` stays under 10 minutes.
UNIT_TIMEOUT=${TABLELOCK_UNIT_TIMEOUT:-120}
INTEGRATION_TIMEOUT=${TABLELOCK_INTEGRATION_TIMEOUT:-480}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tl-run.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

passed=0
failed=0

# Sums the N of every line matching "<prefix> N test(s)" in a cmocka output.
cmocka_count() { # prefix file
	sed -n "s/^\[  $1  \] \([0-9][0-9]*\) test(s).*/\1/p" "$2" | awk '{ n += $1 } END { print n + 0 }'
}

# ---- unit tests
units=0
for bin in "$build"/tests/unit/test_*; do
	[ -f "$bin" ] && [ -x "$bin" ] || continue
	case $bin in *.o | *.d | *.c) continue ;; esac
	units=$((units + 1))
	name=${bin#"$build"/}
	echo "== $name"
	CMOCKA_MESSAGE_OUTPUT=stdout timeout -k 5 "$UNIT_TIMEOUT" "$bin" >"$tmp/unit.out" 2>&1
	rc=$?
	cat "$tmp/unit.out"
	p=$(cmocka_count PASSED "$tmp/unit.out")
	f=$(cmocka_count FAILED "$tmp/unit.out")
	summary=$(grep -c '^\[==========\] .* test(s) run\.' "$tmp/unit.out")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		# Crashed, timed out (124) or failed after its summary (e.g. a
		# sanitizer at exit): at least one failure.
		if [ "$summary" -eq 0 ]; then
			echo "** $name exited with status $rc without a summary"
		else
			echo "** $name exited with status $rc"
		fi
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
done
[ "$units" -gt 0 ] || echo "** no unit test binaries under $build/tests/unit"

# ---- integration tests
# run_pytest LABEL [VAR=VALUE...] -- PYTEST_ARGS...: one pytest run, counted,
# stopped after $pytest_timeout seconds; sets pytest_seconds (how long it
# took) and pytest_rc.
pytest_timeout=$INTEGRATION_TIMEOUT
run_pytest() {
	label=$1
	shift
	envs=""
	while [ "$1" != "--" ]; do
		envs="$envs $1"
		shift
	done
	shift
	echo "== $label (daemon: $daemon)"
	started=$(date +%s)
	{
		# shellcheck disable=SC2086
		env TABLELOCKD="$daemon" PYTHONDONTWRITEBYTECODE=1 $envs \
			timeout -k 15 "$pytest_timeout" \
			/usr/bin/python3 -m pytest -q -p no:cacheprovider "$@"
		echo $? >"$tmp/pytest.rc"
	} 2>&1 | tee "$tmp/pytest.out"
	rc=$(cat "$tmp/pytest.rc" 2>/dev/null || echo 1)
	pytest_seconds=$(($(date +%s) - started))
	pytest_rc=$rc

	# pytest's last summary line, e.g. "3 failed, 40 passed, 1 error in 12.3s"
	# (with -q it may or may not be framed by "====").
	summary=$(grep -E '[0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed)' "$tmp/pytest.out" |
		grep -E ' in [0-9.]+s' | tail -n 1)
	p=$(($(count passed) + $(count xpassed)))
	f=$(($(count failed) + $(count errors) + $(count error)))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		# Collection error, nothing collected (5), timeout (124), crash.
		echo "** pytest exited with status $rc"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
}
count() { # word
	echo "$summary" | tr ',' '\n' | sed -n "s/^[ =]*\([0-9][0-9]*\) $1[ =]*\( in .*\)\{0,1\}$/\1/p" |
		awk '{ n += $1 } END { print n + 0 }'
}

cd "$root" || exit 2

# ---- alert rules: `promtool check rules` (one test) and `promtool test
# rules`, where each eval_time of the test file counts as one test. promtool
# (Debian's prometheus) is a test dependency: its absence is a failure.
rules=prometheus/tablelockd.rules.yml
rules_test=prometheus/tablelockd.rules.test.yml
echo "== $rules"
if ! command -v promtool >/dev/null 2>&1; then
	echo "** promtool not found (Debian package prometheus; scripts/deps.sh installs it)"
	failed=$((failed + 1))
else
	if timeout -k 5 "$UNIT_TIMEOUT" promtool check rules "$rules"; then
		passed=$((passed + 1))
	else
		echo "** promtool check rules $rules failed"
		failed=$((failed + 1))
	fi
	timeout -k 5 "$UNIT_TIMEOUT" promtool test rules "$rules_test" >"$tmp/promtool.out" 2>&1
	rc=$?
	cat "$tmp/promtool.out"
	total=$(grep -c '^ *- eval_time:' "$rules_test")
	# A failed evaluation is reported as "    alertname: X, time: T," or
	# "    expr: E, time: T,".
	f=$(grep -c '^    \(alertname\|expr\): .*time: ' "$tmp/promtool.out")
	if [ "$rc" -eq 0 ] && [ "$total" -gt 0 ]; then
		p=$total
		f=0
	elif [ "$f" -gt 0 ]; then
		p=$((total - f))
		[ "$p" -ge 0 ] || p=0
	else
		# Timed out, or the rules or the tests did not load.
		echo "** promtool test rules $rules_test exited with status $rc"
		p=0
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
fi

# ---- fuzzing: each libFuzzer harness for a short time (seeds first, so
# every crash kept as a regression seed is replayed). `make fuzz` runs
# them longer.
if command -v clang >/dev/null 2>&1 && [ -z "${TABLELOCK_SKIP_FUZZ:-}" ]; then
	echo "== tests/fuzz (${TABLELOCK_FUZZ_SECONDS:-12} s each)"
	sh tests/fuzz/run.sh "${TABLELOCK_FUZZ_SECONDS:-12}" "$build" 2>&1 | tee "$tmp/fuzz.out"
	p=$(grep -c '^fuzz [a-z_]*: ok' "$tmp/fuzz.out")
	f=$(grep -c '^fuzz [a-z_]*: ' "$tmp/fuzz.out")
	f=$((f - p))
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		echo "** the fuzz harnesses did not run"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
fi

run_pytest tests/integration -- tests/integration

# The daemon's core integration tests again under valgrind (leaks are
# errors), unless the daemon is a sanitizer build (the two do not mix).
# They take about as long as the whole suite above (1 to 2.3 times, seen
# under load), and both slow down together on a busy machine, where a fixed
# limit can fail a run that is merely slow (up to 369 s of the 480 seen).
# So their limit is three times what the suite above took in this same run
# (when that one finished), never less than the usual one.
if [ "$pytest_rc" -ne 124 ] && [ "$pytest_rc" -ne 137 ] && [ $((3 * pytest_seconds)) -gt "$INTEGRATION_TIMEOUT" ]; then
	pytest_timeout=$((3 * pytest_seconds))
fi
if command -v valgrind >/dev/null 2>&1 && [ -z "${TABLELOCK_SKIP_VALGRIND:-}" ] &&
	! nm -u "$daemon" 2>/dev/null | grep -q __asan; then
	run_pytest "tests/integration/test_core.py under valgrind" TABLELOCK_VALGRIND=1 -- \
		tests/integration/test_core.py
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
