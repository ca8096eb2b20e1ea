#!/bin/sh
# Builds the libFuzzer harnesses and runs each in turn for a bounded time.
#
# Usage: sh tests/fuzz/run.sh SECONDS [BUILD_DIR [NAME...]]
# BUILD_DIR defaults to build; NAMEs default to every tests/fuzz/fuzz_NAME.c.
# Prints one line per harness, "fuzz NAME: ok (N runs)", or the crash with
# the sanitizer's report and the saved input; exits non-zero if any harness
# crashed or failed to build. FUZZ_NO_BUILD=1 skips the build (make fuzz).
# Each harness starts from its seeds (tests/fuzz/corpus/NAME, so every crash
# kept there as a regression seed is replayed first) plus what earlier runs
# found (BUILD_DIR/fuzz/corpus/NAME, where new inputs are written).
set -u

if [ $# -lt 1 ]; then
	echo "usage: sh tests/fuzz/run.sh SECONDS [BUILD_DIR [NAME...]]" >&2
	exit 2
fi
seconds=$1
build=${2:-build}
[ $# -ge 2 ] && shift 2 || shift $#
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2

names=$*
if [ -z "$names" ]; then
	for src in tests/fuzz/fuzz_*.c; do
		n=${src#tests/fuzz/fuzz_}
		names="$names ${n%.c}"
	done
fi

if [ "${FUZZ_NO_BUILD:-0}" != 1 ]; then
	bins=
	for n in $names; do bins="$bins $build/fuzz/fuzz_$n"; done
	mkdir -p "$build/fuzz/logs"
	# Alone, so this works whether or not the top-level Makefile includes it.
	if ! make -s --no-print-directory -f tests/fuzz/fuzz.mk BUILD="$build" $bins \
		>"$build/fuzz/logs/build.log" 2>&1; then
		cat "$build/fuzz/logs/build.log"
		echo "fuzz: build failed (is clang installed?)"
		exit 1
	fi
fi

status=0
for n in $names; do
	bin=$build/fuzz/fuzz_$n
	work=$build/fuzz/corpus/$n
	seeds=tests/fuzz/corpus/$n
	log=$build/fuzz/logs/$n.log
	mkdir -p "$work" "$build/fuzz/artifacts" "$build/fuzz/logs" "$seeds"
	if [ ! -x "$bin" ]; then
		echo "fuzz $n: not built ($bin)"
		status=1
		continue
	fi
	set -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$build/fuzz/artifacts/$n-"
	[ -f "tests/fuzz/$n.dict" ] && set -- "$@" -dict="tests/fuzz/$n.dict"
	# The time limit covers fuzzing, not replaying a large corpus: allow slack.
	timeout -k 10 $((seconds + 120)) "$bin" "$@" "$work" "$seeds" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
	if [ "$rc" -eq 0 ]; then
		echo "fuzz $n: ok (${runs:-?} runs)"
		continue
	fi
	status=1
	artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
	echo "fuzz $n: CRASH (exit $rc${artifact:+, input saved as $artifact}; log $log)"
	# The report: from the first sanitizer or libFuzzer error line on.
	if grep -Eq '^==[0-9]+==|runtime error|ERROR: libFuzzer|deadly signal' "$log"; then
		awk 'f || /^==[0-9]+==|runtime error|ERROR: libFuzzer|deadly signal/ { f = 1 } f' "$log" |
			head -n 80 | sed 's/^/    /'
	else
		tail -n 20 "$log" | sed 's/^/    /'
	fi
done
exit $status
