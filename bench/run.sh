#!/bin/sh
# The benchmark driver behind `make bench`: a private MariaDB sandbox and a
# private tablelockd, every scenario (issues 7 and 10) with the daemon and its
# direct baselines interleaved in the same run, the daemon's syscalls per
# cycle under strace, then bench/results/*.json, summary.md and SVG plots.
#
# Usage: sh bench/run.sh            (after `make` and `make -C bench`)
# Env:
#   TABLELOCKD=PATH        daemon binary (default daemon/tablelockd)
#   BENCH_RESULTS=DIR      where results go (default bench/results)
#   BENCH_QUICK=1          one short repetition of everything (development)
#   BENCH_REPS=N           repetitions of scenarios 2-7 (default 3)
#   BENCH_REPS_S1=N        repetitions of scenario 1, unpinned (default 5)
#   BENCH_REPS_S1_PINNED=N repetitions of scenario 1 on one CPU (default 3)
#   BENCH_SYSCALL_CYCLES=N cycles counted under strace per mode (default 2000)
#   BENCH_DURATION=S       measured seconds per run (default 2)
#   BENCH_BUDGET=S         stop starting new scenarios after S seconds (default 780)
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
bench=$root/bench/tablelock-bench
daemon_bin=${TABLELOCKD:-$root/daemon/tablelockd}
results=${BENCH_RESULTS:-$root/bench/results}
case $daemon_bin in /*) ;; *) daemon_bin=$(pwd)/$daemon_bin ;; esac
case $results in /*) ;; *) results=$(pwd)/$results ;; esac

if [ "${BENCH_QUICK:-0}" = 1 ]; then
	reps_s1=${BENCH_REPS_S1:-1} reps_s1_pinned=${BENCH_REPS_S1_PINNED:-1}
	reps=${BENCH_REPS:-1} duration=${BENCH_DURATION:-0.5}
	rounds=10 warmup=0.1 big=2000 syscall_cycles=${BENCH_SYSCALL_CYCLES:-200}
else
	reps_s1=${BENCH_REPS_S1:-5} reps_s1_pinned=${BENCH_REPS_S1_PINNED:-3}
	reps=${BENCH_REPS:-3} duration=${BENCH_DURATION:-2}
	rounds=100 warmup=0.3 big=10000 syscall_cycles=${BENCH_SYSCALL_CYCLES:-2000}
fi
budget=${BENCH_BUDGET:-780}
ncpu=$(nproc)
all_cpus=0-$((ncpu - 1))

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

for f in "$bench" "$daemon_bin"; do
	[ -x "$f" ] || die "$f is missing: run make and make -C bench first"
done
for tool in mariadbd mariadb-install-db mariadb python3 taskset; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (sh scripts/deps.sh run bench installs it)"
done
have_gnuplot=0
command -v gnuplot >/dev/null 2>&1 && have_gnuplot=1
[ $have_gnuplot = 1 ] || log "gnuplot is missing (Debian gnuplot-nox): no plots"
# strace counts the daemon's syscalls per cycle (`make bench` installs it:
# scripts/deps.sh bench).
have_strace=0
command -v strace >/dev/null 2>&1 && have_strace=1
[ $have_strace = 1 ] || log "strace is missing (Debian strace): no syscall counts"

# ---------------------------------------------------------------- sandbox

# Unix socket paths are limited to 107 bytes: keep the directory short.
tmp=$(mktemp -d /tmp/tlbench.XXXXXX) || die "mktemp failed"
mysqld_pid="" daemon_pid=""
cleanup() {
	trap - EXIT INT TERM
	[ -n "$daemon_pid" ] && kill -KILL "$daemon_pid" 2>/dev/null
	[ -n "$mysqld_pid" ] && kill -KILL "$mysqld_pid" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Children die with us even if this shell is killed with SIGKILL.
pdeath=""
setpriv --pdeathsig KILL true 2>/dev/null && pdeath="setpriv --pdeathsig KILL"

# Thousands of connections need as many descriptors on each side. Without
# CAP_SYS_RESOURCE the hard limit is the ceiling.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
nofile=$(ulimit -n)
[ "$nofile" = unlimited ] && nofile=1048576
if [ "$nofile" -lt $((big + 200)) ]; then
	log "open files limit $nofile is below $((big + 200)): scenarios 4-5 will fail"
fi

# How busy the machine is without us: other work on the CPUs slows every
# mode (interleaving spreads it over all of them) and the report says so.
cpu_sample() { awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
background_busy() { # percent of all CPUs busy over one second
	s0=$(cpu_sample)
	sleep 1
	s1=$(cpu_sample)
	echo "$s0 $s1" | awk '{ d = $4 - $2; printf "%d", (d > 0 ? 100 * ($3 - $1) / d : 0) }'
}
busy_before=$(background_busy)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
top_before=$(ps -eo pcpu=,comm= --sort=-pcpu | head -5 | awk '{ printf "%s%s %s%%", (NR > 1 ? ", " : ""), $2, $1 }')
[ "$busy_before" -lt 20 ] || log "the machine is already ${busy_before}% busy ($top_before): expect noisy figures"

mkdir -p "$results"
rm -f "$results"/*.json "$results"/*.jsonl "$results"/*.dat "$results"/*.svg "$results"/summary.md
raw=$results/raw.jsonl
: >"$raw"
: >"$results/bench.log"
started=$(date +%s)

datadir=$tmp/data
msock=$tmp/mysql.sock
dsock=$tmp/d.sock
# The daemon's Prometheus endpoint, on a loopback port free right now.
metrics_addr=127.0.0.1:$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
password=bench-$$-$(date +%s)
mysqld_args="--no-defaults --datadir=$datadir --socket=$msock --skip-networking --user=root
--innodb-flush-log-at-trx-commit=2 --innodb-buffer-pool-size=256M --max-connections=500
--pid-file=$tmp/mysqld.pid --log-error=$tmp/mysqld.err"

log "MariaDB sandbox in $tmp"
mariadb-install-db --no-defaults --datadir="$datadir" --user=root \
	--auth-root-authentication-method=normal --skip-test-db >"$tmp/install.log" 2>&1 ||
	die "mariadb-install-db failed: $(tail -5 "$tmp/install.log")"
# shellcheck disable=SC2086
$pdeath mariadbd $mysqld_args </dev/null >/dev/null 2>&1 &
mysqld_pid=$!
sql() { mariadb --no-defaults --socket="$msock" -uroot "$@"; }
i=0
until sql -e 'SELECT 1' >/dev/null 2>&1; do
	kill -0 "$mysqld_pid" 2>/dev/null || die "mariadbd exited: $(tail -20 "$tmp/mysqld.err")"
	i=$((i + 1))
	[ $i -lt 600 ] || die "mariadbd did not come up in 60 s"
	sleep 0.1
done
{
	echo "CREATE DATABASE app;"
	echo "CREATE USER tablelockd@localhost IDENTIFIED BY '$password';"
	echo "GRANT SELECT, INSERT, UPDATE, DELETE, LOCK TABLES ON app.* TO tablelockd@localhost;"
	n=1
	while [ $n -le 64 ]; do
		echo "CREATE TABLE app.t$n (id INT PRIMARY KEY, v INT NOT NULL DEFAULT 0) ENGINE=InnoDB;"
		echo "INSERT INTO app.t$n VALUES (1, 0);"
		n=$((n + 1))
	done
} | sql || die "sandbox setup failed"
sql -N -e 'SHOW GLOBAL VARIABLES' >"$results/mariadb-variables.txt"

# ---------------------------------------------------------------- daemon

conf=$tmp/d.conf
cat >"$conf" <<EOF
[daemon]
listen = unix:$dsock
state_file = $tmp/d.state
max_clients = $((big + 1000))

[mysql]
socket = $msock
user = tablelockd
password = $password
database = app
pool_size = 16

[leases]
default_wait_ms = 10000
default_ttl_ms = 30000
max_ttl_ms = 600000
max_waiters = 20000

[statements]
timeout_ms = 30000

[metrics]
listen = $metrics_addr
EOF
# A private copy: rebuilding daemon/tablelockd meanwhile cannot disturb the
# run (or fail on a busy text file), and the report names what was measured.
cp "$daemon_bin" "$tmp/tld"
"$tmp/tld" -c "$conf" --check-config >/dev/null 2>&1 || die "daemon config refused: $("$tmp/tld" -c "$conf" --check-config 2>&1)"

start_daemon() {
	rm -f "$dsock"
	$pdeath "$tmp/tld" -c "$conf" -q </dev/null >>"$results/daemon.log" 2>&1 &
	daemon_pid=$!
	i=0
	until [ -S "$dsock" ] && "$bench" -s "$dsock" -d 0 -w 0 ping >/dev/null 2>&1; do
		kill -0 "$daemon_pid" 2>/dev/null || die "tablelockd exited: $(tail -20 "$results/daemon.log")"
		i=$((i + 1))
		[ $i -lt 300 ] || die "tablelockd did not answer in 30 s"
		sleep 0.1
	done
}
stop_daemon() {
	[ -n "$daemon_pid" ] || return 0
	kill -TERM "$daemon_pid" 2>/dev/null
	i=0
	while kill -0 "$daemon_pid" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$daemon_pid" 2>/dev/null
	wait "$daemon_pid" 2>/dev/null
	daemon_pid=""
}
: >"$results/daemon.log"
start_daemon
log "tablelockd $("$tmp/tld" --version 2>&1 | head -1) pid $daemon_pid"

# ---------------------------------------------------------------- runs

# run REP PLACEMENT SCENARIO-NAME ARGS...: one bench run, its JSON line
# tagged with the repetition and placement and appended to raw.jsonl.
run() {
	rep=$1 placement=$2 name=$3
	shift 3
	if ! kill -0 "$daemon_pid" 2>/dev/null; then
		log "tablelockd died; restarting it (see daemon.log)"
		echo "{\"scenario\":\"$name\",\"rep\":$rep,\"status\":\"daemon_died\"}" >>"$raw"
		start_daemon
	fi
	pin=""
	if [ "$placement" = one-cpu ]; then
		taskset -a -p -c 0 "$mysqld_pid" >/dev/null
		taskset -a -p -c 0 "$daemon_pid" >/dev/null
		pin="taskset -c 0"
	fi
	out=$($pin timeout -k 5 300 "$bench" -n "$name" -s "$dsock" -S "$msock" -u tablelockd \
		-p "$password" --daemon-pid "$daemon_pid" --mysqld-pid "$mysqld_pid" \
		--metrics "$metrics_addr" -d "$duration" -w "$warmup" "$@" 2>>"$results/bench.log")
	rc=$?
	if [ "$placement" = one-cpu ]; then
		taskset -a -p -c "$all_cpus" "$mysqld_pid" >/dev/null
		taskset -a -p -c "$all_cpus" "$daemon_pid" >/dev/null
	fi
	case $out in
	"{"*) ;;
	*) out="{\"scenario\":\"$name\",\"status\":\"failed\",\"first_error\":\"exit status $rc, no result\"}" ;;
	esac
	line=$(printf '%s\n' "$out" | sed "s/^{/{\"rep\":$rep,\"placement\":\"$placement\",/")
	printf '%s\n' "$line" >>"$raw"
	summary=$(printf '%s\n' "$line" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
keys = ["p50_us", "p99_us", "throughput", "daemon_bytes_per_connection", "drain_s", "errors",
        "cpu_daemon_us_per_cycle", "cpu_mysqld_us_per_cycle", "resets_per_1000_leases"]
print(" ".join("%s=%.6g" % (k, r[k]) for k in keys if isinstance(r.get(k), (int, float))), r.get("status"), r.get("first_error", ""))' 2>/dev/null)
	log "  $name rep $rep $placement $*: $summary"
}

# rotate N WORDS...: the words rotated left by N, so each repetition runs the
# modes in a different order and no mode always follows the same one.
rotate() {
	n=$1
	shift
	k=$((n % $#))
	while [ $k -gt 0 ]; do
		first=$1
		shift
		set -- "$@" "$first"
		k=$((k - 1))
	done
	echo "$@"
}

over_budget() {
	if [ $(($(date +%s) - started)) -ge "$budget" ]; then
		log "time budget of $budget s spent: skipping $1"
		echo "{\"scenario\":\"$1\",\"status\":\"skipped\",\"first_error\":\"time budget spent\"}" >>"$raw"
		return 0
	fi
	return 1
}

# Scenario 1 modes: the 4-round-trip direct client every ratio divides by,
# its multi-statement floor and per-cycle connect; the daemon one request at
# a time, pipelined and transact; read-decide-write both ways.
s1_modes="direct floor connect daemon pipelined transact direct-rdw daemon-rdw"
log "scenario 1: one client, one table ($reps_s1 repetitions unpinned, $reps_s1_pinned on one CPU)"
rep=1
while [ $rep -le "$reps_s1" ] || [ $rep -le "$reps_s1_pinned" ]; do
	over_budget s1-latency && break
	for placement in $(rotate $rep spread one-cpu); do
		if [ $placement = spread ] && [ $rep -gt "$reps_s1" ]; then continue; fi
		if [ $placement = one-cpu ] && [ $rep -gt "$reps_s1_pinned" ]; then continue; fi
		# shellcheck disable=SC2086
		for mode in $(rotate $rep $s1_modes); do
			run $rep $placement s1-latency -m $mode -c 1 -t 1 cycles
		done
	done
	rep=$((rep + 1))
done

# The daemon's syscalls and wake-ups (epoll_wait returns) per cycle, 1 client:
# exactly N cycles with strace -c attached to the daemon. strace slows every
# syscall, so only its counts are used, never a time from these runs. The
# counts depend on timing (a daemon that finds MySQL's answer already there
# skips a failing read and a sleep), so they are taken in both placements:
# compare a before and an after in the same placement.
syscall_count() {
	mode=$1 placement=$2
	out=$tmp/strace.$mode.$placement
	rm -f "$out"
	pin=""
	if [ "$placement" = one-cpu ]; then
		taskset -a -p -c 0 "$mysqld_pid" >/dev/null
		taskset -a -p -c 0 "$daemon_pid" >/dev/null
		pin="taskset -c 0"
	fi
	$pin strace -c -f -q -o "$out" -p "$daemon_pid" 2>>"$results/bench.log" &
	strace_pid=$!
	sleep 0.5 # attached: strace stops the daemon's threads only briefly
	res=$($pin timeout -k 5 120 "$bench" -n s8-syscalls -m "$mode" -s "$dsock" -S "$msock" \
		-u tablelockd -p "$password" -c 1 -t 1 --cycles "$syscall_cycles" -d 100 -w 0 \
		cycles 2>>"$results/bench.log")
	kill -INT "$strace_pid" 2>/dev/null
	wait "$strace_pid" 2>/dev/null
	if [ "$placement" = one-cpu ]; then
		taskset -a -p -c "$all_cpus" "$mysqld_pid" >/dev/null
		taskset -a -p -c "$all_cpus" "$daemon_pid" >/dev/null
	fi
	line=$(printf '%s\n' "$res" | python3 -c '
import json, sys
try:
    r = json.loads(sys.stdin.read())
except ValueError:
    r = {"scenario": "s8-syscalls", "mode": sys.argv[1], "status": "failed",
         "first_error": "no result"}
calls = {}
try:
    with open(sys.argv[2]) as f:
        for line in f:
            p = line.split()
            if len(p) >= 5 and p[-1] != "total" and p[0][0].isdigit() and p[3].isdigit():
                calls[p[-1]] = int(p[3])
except OSError:
    pass
n = r.get("cycles_run") or 0
if r.get("status") == "ok" and n > 0 and calls:
    wake = sum(v for k, v in calls.items() if k.startswith("epoll_wait") or k.startswith("epoll_pwait"))
    r["syscalls_per_cycle"] = sum(calls.values()) / n
    r["wakeups_per_cycle"] = wake / n
    r["syscalls_by_name_per_cycle"] = {k: round(v / n, 3) for k, v in
                                       sorted(calls.items(), key=lambda kv: -kv[1])}
elif r.get("status") == "ok":
    r["status"] = "failed"
    r["first_error"] = "strace counted nothing"
print(json.dumps(r))' "$mode" "$out")
	printf '{"rep":1,"placement":"%s",%s\n' "$placement" "${line#\{}" >>"$raw"
	log "  s8-syscalls $mode $placement: $(printf '%s' "$line" | python3 -c 'import json, sys; r = json.loads(sys.stdin.read()); print(r.get("status"), "syscalls/cycle", r.get("syscalls_per_cycle"), "wake-ups/cycle", r.get("wakeups_per_cycle"), r.get("first_error", ""))')"
}
if [ $have_strace = 1 ] && ! over_budget s8-syscalls; then
	log "syscalls per cycle: $syscall_cycles cycles per mode under strace -c"
	for placement in spread one-cpu; do
		for mode in daemon transact pipelined daemon-rdw; do
			syscall_count $mode $placement
		done
	done
elif [ $have_strace = 0 ]; then
	echo '{"scenario":"s8-syscalls","status":"skipped","first_error":"strace is missing"}' >>"$raw"
fi

log "scenario 2: 16 clients on 16 tables; scenario 3: 64 clients on one table"
rep=1
while [ $rep -le "$reps" ]; do
	over_budget s2-s3 && break
	for mode in $(rotate $rep direct daemon transact connect); do
		run $rep spread s2-throughput -m $mode -c 16 -t 16 cycles
	done
	for mode in $(rotate $rep direct daemon transact connect); do
		run $rep spread s3-contention -m $mode -c 64 -t 1 cycles
	done
	rep=$((rep + 1))
done

# Memory is measured on a fresh daemon each time: a heap that an earlier run
# grew would hide what new connections cost.
log "scenario 4: many connections, 4 taking leases"
rep=1
while [ $rep -le "$reps" ]; do
	over_budget s4-connections && break
	for n in $(rotate $rep 10 1000 $big); do
		stop_daemon
		start_daemon
		run $rep spread s4-connections -m daemon --connections $n --active 4 idle
	done
	rep=$((rep + 1))
done
# Direct clients need one MariaDB connection each (max_connections=500 here,
# 151 by default): this shows where they stop. Once, on a fresh server
# thread cache.
over_budget s4-connections || run 1 spread s4-connections -m direct --connections 1000 --active 4 idle

log "scenario 5: $big waiters on one table, pool of 16"
rep=1
while [ $rep -le "$reps" ]; do
	over_budget s5-waiters && break
	stop_daemon
	start_daemon
	run $rep spread s5-waiters -m daemon --connections $big waiters
	rep=$((rep + 1))
done

log "scenario 6: release after kill -9, TTL expiry"
rep=1
while [ $rep -le "$reps" ]; do
	over_budget s6-release && break
	for mode in $(rotate $rep daemon direct); do
		run $rep spread s6-release -m $mode --rounds $rounds release
	done
	run $rep spread s6-expiry -m daemon --rounds $rounds --ttl-ms 50 expiry
	rep=$((rep + 1))
done

log "scenario 7: ping"
rep=1
while [ $rep -le "$reps" ]; do
	over_budget s7-ping && break
	run $rep spread s7-ping -m daemon -c 1 --depth 1 ping
	run $rep spread s7-ping -m daemon -c 1 --depth 64 ping
	run $rep spread s7-ping -m daemon -c 100 --depth 1 ping
	rep=$((rep + 1))
done
# Scenario 9: a Django block, the snippet projects copy (LOCK TABLES on
# Django's own connection) against the same block with tablelock.django,
# the same ORM statement, interleaved in one Django process (Debian's
# python3-django and python3-mysqldb; /usr/bin/python3 has them).
if ! over_budget s9-django; then
	log "scenario 9: Django, the copied snippet against tablelock.django"
	py=/usr/bin/python3
	[ -x "$py" ] || py=python3
	if "$py" -c 'import django, MySQLdb' 2>/dev/null; then
		timeout -k 5 300 "$py" "$root/bench/django_cycles.py" --mysql-socket "$msock" \
			--daemon-socket "$dsock" --reps "$reps" --duration "$duration" --warmup "$warmup" \
			>>"$raw" || log "  s9-django exited with status $?"
	else
		log "  python3-django or python3-mysqldb is missing: skipped"
		echo '{"scenario":"s9-django","status":"skipped","first_error":"python3-django or python3-mysqldb is missing"}' >>"$raw"
	fi
fi
stop_daemon
busy_after=$(background_busy)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report

{
	echo "started=$(date -u -d "@$started" '+%Y-%m-%d %H:%M:%S UTC')"
	echo "elapsed_s=$(($(date +%s) - started))"
	echo "host_cpus=$ncpu"
	echo "host_cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
	echo "host_kernel=$(uname -r)"
	echo "host_memory=$(sed -n 's/^MemTotal:[[:space:]]*//p' /proc/meminfo)"
	virt=$(systemd-detect-virt 2>/dev/null | head -1)
	echo "host_hypervisor=${virt:-unknown}"
	echo "host_cpuidle=$(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo none)"
	echo "host_guest_halt_poll_ns=$(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns 2>/dev/null || echo n/a)"
	echo "host_hypervisor_vendor=$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor:[[:space:]]*//p')"
	echo "background_busy_before_pct=$busy_before"
	echo "background_busy_after_pct=$busy_after"
	echo "loadavg_before=$load_before"
	echo "loadavg_after=$load_after"
	echo "top_processes_before=$top_before"
	echo "nofile=$nofile"
	echo "mariadb_version=$(sql -N -e 'SELECT VERSION()' 2>/dev/null)"
	echo "mariadbd_args=$(echo $mysqld_args | sed "s|$tmp|TMP|g")"
	echo "daemon_binary=$daemon_bin"
	echo "daemon_sha256=$(sha256sum "$tmp/tld" | cut -d' ' -f1)"
	echo "daemon_version=$("$tmp/tld" --version 2>&1 | head -1)"
	echo "git_revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)"
	echo "reps_s1=$reps_s1"
	echo "reps_s1_pinned=$reps_s1_pinned"
	echo "syscall_cycles=$syscall_cycles"
	echo "strace_version=$(strace -V 2>/dev/null | head -1)"
	echo "reps=$reps"
	echo "duration_s=$duration"
	echo "warmup_s=$warmup"
	echo "rounds=$rounds"
} >"$results/meta.txt"
sed -e "s|$tmp|TMP|g" -e "s|^password = .*|password = (generated)|" "$conf" >"$results/daemon.conf"

python3 "$root/bench/report.py" "$results" || die "report failed"
if [ $have_gnuplot = 1 ]; then
	gnuplot -e "dir='$results'" "$root/bench/plot.gp" 2>>"$results/bench.log" ||
		log "gnuplot failed (see $results/bench.log)"
fi
log "done in $(($(date +%s) - started)) s: $results/summary.md"
cat "$results/summary.md"
