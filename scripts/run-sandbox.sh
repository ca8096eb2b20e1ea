#!/bin/sh
# `make run`: the daemon in the foreground, on a private MariaDB sandbox under
# ./run/ (TABLELOCK_RUN_DIR overrides it) unless run/tablelockd.conf names a
# server of your own.
#
# - No run/tablelockd.conf: create the sandbox (datadir run/mariadb, socket
#   run/mysql.sock, networking off), a `demo` database (scripts/demo.sql), a
#   daemon user with a narrow grant, and a generated run/tablelockd.conf.
# - A generated run/tablelockd.conf (first line starts "; tablelockd-sandbox"):
#   start the sandbox again and apply scripts/demo.sql (idempotent), so an
#   older sandbox gets the tables the docs use.
# - Any other run/tablelockd.conf: yours; the daemon just runs with it.
#
# The sandbox MariaDB and the daemon end with this script, however it ends:
# Ctrl-C, SIGTERM or SIGHUP (the daemon rolls back every lease, then the
# server is stopped), a dead `tee` on its output (SIGPIPE is ignored), or
# SIGKILL (both run under setpriv --pdeathsig, so the kernel signals them
# when this shell dies). A server an earlier run left behind is stopped, not
# reused; a second `make run` on the same directory is refused.
set -eu

invoked_from=$(pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
run=${TABLELOCK_RUN_DIR:-$root/run}
case $run in /*) ;; *) run=$invoked_from/$run ;; esac
conf=$run/tablelockd.conf
daemon=${TABLELOCKD:-$root/daemon/tablelockd}
cli=$root/client/tablelock
marker="; tablelockd-sandbox"

datadir=$run/mariadb
mysql_sock=$run/mysql.sock
pidfile=$run/mariadb.pid
errlog=$run/mariadb.err
daemon_sock=$run/tablelockd.sock
# The server's temporary files, kept apart from other servers' in /tmp.
tmpdir=$run/tmp

# A reader that went away (`make run | tee log`, then Ctrl-C kills tee) must
# not kill this script before it has stopped what it started: writes fail
# instead, and every message here tolerates that.
trap '' PIPE
say() { printf 'run: %s\n' "$*" >&2 2>/dev/null || true; }
die() {
	say "$*"
	exit 1
}

[ -x "$daemon" ] || die "no $daemon: run 'make' first"
# sun_path holds 107 bytes and a NUL.
[ "${#daemon_sock}" -le 107 ] || die "$run is too long a path for a Unix socket under it (at most 88 bytes)"

mkdir -p "$run" "$tmpdir"
chmod 700 "$run"
# Held for the whole run, by this shell (its children get 9>&-) or by your
# own daemon: a second run on the same directory is refused here, and a
# sandbox server found running below is a leftover, not another run's.
exec 9>>"$run/run.lock"
flock -n 9 || die "another 'make run' is using $run (its daemon: $daemon_sock); stop it first"

if [ -f "$conf" ]; then
	case $(head -n 1 "$conf") in
	"$marker"*) ;;
	*)
		say "using your $conf"
		exec "$daemon" -c "$conf"
		;;
	esac
fi

sql() { mariadb --no-defaults --socket="$mysql_sock" -uroot "$@"; }

# Pids of the processes whose command line contains $1.
pids_running() {
	for d in /proc/[0-9]*; do
		[ "${d#/proc/}" != $$ ] || continue
		cmd=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
		case $cmd in *"$1"*) echo "${d#/proc/}" ;; esac
	done
}

# The sandbox server of an earlier run that did not stop it (a run from
# before this script stopped it whatever happened, or a server started by
# hand on this datadir): its pid, if one is running.
leftover_server() {
	if [ -f "$pidfile" ] && pid=$(cat "$pidfile" 2>/dev/null) && [ -n "$pid" ] &&
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--datadir=$datadir "; then
		echo "$pid"
		return 0
	fi
	# Without a pid file, a socket left behind is the only trace worth a look.
	[ -S "$mysql_sock" ] || return 1
	pid=$(pids_running "--datadir=$datadir " | head -n 1)
	[ -n "$pid" ] && echo "$pid"
}

# Is pid $1 running (a zombie is not)?
running() {
	state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# Sends signal $2 to pid $1, gives it $3 tenths of a second to end, then
# kills it; reaps it when it is a child of this shell.
stop_pid() {
	kill "-$2" "$1" 2>/dev/null || true
	i=0
	while running "$1"; do
		i=$((i + 1))
		if [ "$i" -eq "$3" ]; then
			say "pid $1 did not end after SIG$2; killing it"
			kill -KILL "$1" 2>/dev/null || true
		fi
		sleep 0.1
	done
	wait "$1" 2>/dev/null || true
}

if [ -S "$daemon_sock" ] && socat -u OPEN:/dev/null "UNIX-CONNECT:$daemon_sock" 2>/dev/null; then
	pids=$(pids_running "$conf" | tr '\n' ' ')
	die "a tablelockd left running by an earlier run answers on $daemon_sock${pids:+ (pid $pids)}: stop it first"
fi
if pid=$(leftover_server); then
	say "stopping the sandbox MariaDB an earlier run left running (pid $pid)"
	stop_pid "$pid" TERM 300
fi

fresh=""
if [ ! -d "$datadir/mysql" ]; then
	say "creating a MariaDB sandbox in $datadir"
	fresh=yes
	rm -rf "$datadir"
	mariadb-install-db --no-defaults --datadir="$datadir" --user=root --tmpdir="$tmpdir" \
		--auth-root-authentication-method=normal --skip-test-db >"$run/install.log" 2>&1 9>&- ||
		die "mariadb-install-db failed; see $run/install.log"
fi

server_pid=""
daemon_pid=""
# The one way out: the daemon first (SIGINT: it rolls back every lease at
# once, while MySQL is still up), then the server.
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	status=$?
	trap '' INT TERM HUP
	if [ -n "$daemon_pid" ]; then
		stop_pid "$daemon_pid" INT 150
	fi
	if [ -n "$server_pid" ]; then
		say "stopping the sandbox MariaDB (pid $server_pid)"
		stop_pid "$server_pid" TERM 300
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

say "starting the sandbox MariaDB (socket $mysql_sock, log $errlog)"
# Its own session: Ctrl-C in this terminal reaches the daemon, not the
# server, which is stopped in order after the daemon has let go. setsid
# does not fork here (a child of a non-interactive shell leads no process
# group), so the parent that --pdeathsig watches is this shell.
setsid setpriv --pdeathsig TERM -- mariadbd --no-defaults --datadir="$datadir" \
	--socket="$mysql_sock" --skip-networking --user=root --pid-file="$pidfile" \
	--log-error="$errlog" --tmpdir="$tmpdir" --innodb-buffer-pool-size=64M \
	--plugin-load-add=metadata_lock_info \
	</dev/null >/dev/null 2>&1 9>&- &
server_pid=$!

i=0
until sql -e 'SELECT 1' >/dev/null 2>&1; do
	running "$server_pid" || { server_pid=""; die "MariaDB exited at start; see $errlog"; }
	i=$((i + 1))
	[ "$i" -le 300 ] || die "MariaDB did not come up in 30s; see $errlog"
	sleep 0.1
done

# Every start: the demo schema (idempotent), so that an existing sandbox
# gets tables added since it was made.
sql <"$root/scripts/demo.sql" || die "scripts/demo.sql failed on the sandbox"
# Sandboxes made before the demo schema had DECIMAL amounts kept them in
# INT columns.
for column in accounts.balance transfers.amount; do
	table=${column%.*}
	type=$(sql -N -B -e "SELECT DATA_TYPE FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = 'demo' AND TABLE_NAME = '$table' AND COLUMN_NAME = '${column#*.}'")
	if [ -z "$type" ] || [ "$type" = decimal ]; then
		continue
	fi
	say "migrating demo.$column from $type to DECIMAL(10,2), as scripts/demo.sql has it"
	sql -e "ALTER TABLE demo.$table MODIFY ${column#*.} DECIMAL(10,2) NOT NULL" ||
		die "could not migrate demo.$column; to start afresh, delete the sandbox: rm -rf $datadir"
done

if [ ! -f "$conf" ] || [ -n "$fresh" ]; then
	say "creating the daemon's MySQL user and $conf"
	password=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
	sql <<EOF
CREATE USER IF NOT EXISTS 'tablelockd'@'localhost';
ALTER USER 'tablelockd'@'localhost' IDENTIFIED BY '$password';
GRANT SELECT, INSERT, UPDATE, DELETE, LOCK TABLES ON demo.* TO 'tablelockd'@'localhost';
GRANT PROCESS ON *.* TO 'tablelockd'@'localhost';
EOF
	umask 077
	cat >"$conf.tmp" <<EOF
$marker (generated by scripts/run-sandbox.sh; delete it to regenerate,
; or replace it with your own config to use your own MySQL server)
[daemon]
listen = unix:$daemon_sock
state_file = $run/lease_id

[mysql]
socket = $mysql_sock
user = tablelockd
password = $password
database = demo
pool_size = 4

[leases]
default_wait_ms = 5000
default_ttl_ms = 30000
max_ttl_ms = 600000
EOF
	mv "$conf.tmp" "$conf"
fi

# In the background so that a signal to this shell is handled at once (a
# shell runs its traps only after a foreground command ends); still in the
# terminal's process group, so Ctrl-C reaches the daemon directly too.
setpriv --pdeathsig INT -- "$daemon" -c "$conf" 9>&- &
daemon_pid=$!

i=0
until socat -u OPEN:/dev/null "UNIX-CONNECT:$daemon_sock" 2>/dev/null; do
	if ! running "$daemon_pid"; then
		status=0
		wait "$daemon_pid" || status=$?
		daemon_pid=""
		die "tablelockd exited at start (status $status)"
	fi
	i=$((i + 1))
	[ "$i" -le 300 ] || die "tablelockd did not answer on $daemon_sock in 30s"
	sleep 0.1
done

# Paths as a newcomer in $root types them.
show() {
	case $1 in "$root"/*) echo "./${1#"$root"/}" ;; *) echo "$1" ;; esac
}
sock=$(show "$daemon_sock")
cat <<EOF 2>/dev/null || true

tablelockd is running on $sock,
in front of a private MariaDB with a demo database
(Ctrl-C stops both; leases still held are rolled back).

In another terminal, the tablelock command (make builds it in client/):

  cd $root
  export TABLELOCK_SOCKET=$daemon_sock
  ./client/tablelock status
  ./client/tablelock exec --write t1 -e "UPDATE t1 SET v = v + 1 WHERE id = 1"
  ./client/tablelock exec --read accounts -e "SELECT id, owner, balance FROM accounts"
  ./client/tablelock shell --write accounts --write transfers

The shell holds the lease until you type commit or rollback; type one
statement per line, e.g.:

  UPDATE accounts SET balance = balance - 10 WHERE id = 1
  UPDATE accounts SET balance = balance + 10 WHERE id = 3
  INSERT INTO transfers (from_account, to_account, amount) VALUES (1, 3, 10)
  commit

Or the protocol itself, one JSON request per line:

  socat - UNIX-CONNECT:$sock
  {"op":"hello","client":"demo-shell"}
  {"op":"acquire","write":["accounts","transfers"],"wait_ms":5000,"ttl_ms":30000}
  {"op":"query","sql":"SELECT id, owner, balance FROM accounts WHERE id IN (?, ?)","params":[1,2]}
  {"op":"query","sql":"UPDATE accounts SET balance = balance - ? WHERE id = ?","params":[25,1]}
  {"op":"query","sql":"UPDATE accounts SET balance = balance + ? WHERE id = ?","params":[25,2]}
  {"op":"query","sql":"INSERT INTO transfers (from_account, to_account, amount) VALUES (?, ?, ?)","params":[1,2,25]}
  {"op":"commit"}
  {"op":"status"}

While a lease is held, its tables are locked for every MySQL client:
  mariadb --no-defaults -S $(show "$mysql_sock") -uroot demo -e 'SELECT * FROM accounts'
waits until you send commit (or rollback, or close socat).

Or in one go (the daemon answers everything sent, then closes; a lease
left uncommitted at the end is rolled back):
  printf '%s\n' '{"op":"acquire","read":["accounts"]}' \\
     '{"op":"query","sql":"SELECT owner, balance FROM accounts ORDER BY id"}' \\
     '{"op":"commit"}' | socat -t 5 - UNIX-CONNECT:$sock

EOF
[ -x "$cli" ] || say "no $cli yet: 'make' builds it"

status=0
wait "$daemon_pid" || status=$?
# A signal interrupts the wait: its trap has run (and exited) by now. Here
# the daemon ended by itself.
daemon_pid=""
exit "$status"
