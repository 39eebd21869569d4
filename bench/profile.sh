#!/usr/bin/env bash
# Where each millisecond of a box goes. Runs the jail's benchmark
# JailPool/true (a pool of 2 warm boxes, 2 workers, every layer on) and
# profiles the whole machine under it with `perf record -a -g` (cpu-clock,
# one sample per 0.5 ms of CPU) for a window of [seconds] (default 8).
# bench/profile then attributes every sample by process ancestry and name
# to a role (box init, spawner, supervisor, program, kernel threads, perf,
# other processes), splits the init and the spawner by runbox-init phase
# and by kernel entry, and turns shares into ms per box with the cpu-ms/op
# the same benchmark run reports (the whole machine's busy CPU per box).
#
# runbox-init runs from a memfd, where perf finds no symbols: its frames
# are named with an unstripped build whose code layout is checked against
# both the embedded (stripped) init and the one the benchmark really runs.
# The benchmark is sized from a short calibration run to outlast the
# window; it ends on its own, so that it reports cpu-ms/op and closes its
# jail. Only if this script is interrupted is it stopped, by its pid (the
# next jail to start then sweeps the cgroups it leaves).
# With a second argument, perf.data, perf's script output and the two
# runbox-init builds are kept in that directory for a closer look (perf
# report, or bench/profile with other flags).
# Needs root and perf (Debian: linux-perf). Takes about 15 s plus the window.
# Usage: bench/profile.sh [seconds] [directory to keep the data in]
set -euo pipefail
cd "$(dirname "$0")/.."
window=${1:-8}
keep=${2:-}
[[ $window =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/profile.sh [seconds] [directory]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "bench/profile.sh: needs root (boxes, perf record -a)" >&2; exit 1; }
perf version >/dev/null 2>&1 || { echo "bench/profile.sh: needs perf (apt-get install linux-perf)" >&2; exit 1; }

tmp=$(mktemp -d -t runbox-profile.XXXXXX)
bench= perfpid=
cleanup() {
	# Only what this script started, each by its pid. SIGTERM: a script's
	# background jobs ignore SIGINT.
	if [ -n "$perfpid" ]; then
		kill -TERM "$perfpid" 2>/dev/null || true
		wait "$perfpid" 2>/dev/null || true
	fi
	if [ -n "$bench" ]; then
		kill -TERM "$bench" 2>/dev/null || true
		wait "$bench" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
say() { echo "bench/profile.sh: $*" >&2; }

# What is there before. Another runbox (tests, a server) may be running
# boxes meanwhile: its samples are told apart by ancestry, and what it
# leaves is not counted against this script (see the end).
mounts0=$(grep -c runbox /proc/self/mountinfo || true)
exes0=$(pgrep -xc exe || true)
[ "$exes0" -eq 0 ] || say "note: $exes0 box processes (exe) of another runbox are running; their samples count as other processes"

# 1. The embedded init (go generate, stripped) and one with symbols, built
# the same way but for -s: stripping only drops the symbol table, so the
# code is the same bytes at the same addresses. Checked, not assumed.
go generate ./internal/initbin
CGO_ENABLED=0 go build -trimpath -o "$tmp/runbox-init-sym" ./cmd/runbox-init
go build -o "$tmp/profile" ./bench/profile
"$tmp/profile" textcheck internal/initbin/bin/runbox-init "$tmp/runbox-init-sym" >&2

# 2. The benchmark, calibrated: a short run gives ns/op and how long the
# test binary takes to set up (TestMain builds its own runbox-init and test
# programs), so the real run starts measuring before the window opens and
# goes on ~4 s after it closes.
go test -c -o "$tmp/jail.test" ./internal/jail
bench_args=(-test.run '^$' -test.bench '^BenchmarkJailPool$/^true$' -test.cpu 2)
t0=$(date +%s%N)
cal=$(cd internal/jail && "$tmp/jail.test" "${bench_args[@]}" -test.benchtime 200x)
t1=$(date +%s%N)
nsop=$(awk '/^BenchmarkJailPool\/true/ { print int($3) }' <<<"$cal")
[ -n "$nsop" ] && [ "$nsop" -gt 0 ] || { say "calibration run printed no ns/op:"; echo "$cal" >&2; exit 1; }
setup_ms=$(((t1 - t0) / 1000000 - 200 * nsop / 1000000))
lead_ms=$((setup_ms + 1000))
runs=$(((lead_ms + window * 1000 + 4000) * 1000000 / nsop))
say "calibration: $((nsop / 1000)) µs per box, ${setup_ms} ms of set-up; running $runs boxes"

(cd internal/jail && exec "$tmp/jail.test" "${bench_args[@]}" -test.benchtime "${runs}x" >"$tmp/bench.out" 2>&1) &
bench=$!
benchpid=$bench
sleep "$((lead_ms / 1000)).$(printf %03d $((lead_ms % 1000)))"
kill -0 "$bench" 2>/dev/null || { say "the benchmark ended before the window:"; cat "$tmp/bench.out" >&2; exit 1; }

# The init the boxes really run: the benchmark's jail holds it in a memfd.
# Its code must be laid out as the symbol build's is. (The jail's tests
# build their own, without -trimpath: the same functions at the same
# addresses, the code's references to data differ.)
live=
for fd in /proc/"$bench"/fd/*; do
	if [ "$(readlink "$fd" 2>/dev/null)" = "/memfd:runbox-init (deleted)" ]; then
		cp "$fd" "$tmp/runbox-init-live"
		live=1
		break
	fi
done
[ -n "$live" ] || { say "no runbox-init memfd in the benchmark (pid $bench)"; exit 1; }
"$tmp/profile" textcheck "$tmp/runbox-init-live" "$tmp/runbox-init-sym" >&2

# 3. The window.
perf record -a -g -e cpu-clock -c 500000 -o "$tmp/perf.data" -- sleep "$window" 2>"$tmp/perf.log" &
perfpid=$!
perfpid_seen=$perfpid
wait "$perfpid" || { say "perf record failed:"; cat "$tmp/perf.log" >&2; exit 1; }
perfpid=
kill -0 "$bench" 2>/dev/null || { say "the benchmark ended inside the window (faster than calibrated); run again"; exit 1; }
wait "$bench" || { say "the benchmark failed:"; cat "$tmp/bench.out" >&2; exit 1; }
bench=
cpums=$(awk '/^BenchmarkJailPool\/true/ { for (i = 1; i < NF; i++) if ($(i + 1) == "cpu-ms/op") print $i }' "$tmp/bench.out")
[ -n "$cpums" ] || { say "the benchmark reported no cpu-ms/op:"; cat "$tmp/bench.out" >&2; exit 1; }
grep '^BenchmarkJailPool/true' "$tmp/bench.out" >&2

# 4. Symbolize and attribute.
perf script -i "$tmp/perf.data" -F comm,pid,tid,ip,sym,dso --show-task-events >"$tmp/perf.script" 2>"$tmp/perf-script.log" ||
	{ say "perf script failed:"; cat "$tmp/perf-script.log" >&2; exit 1; }
echo "runbox box profile ($(nproc) cores, $(uname -r))"
echo
report_args=(-bench-pid "$benchpid" -perf-pid "$perfpid_seen" -cpu-ms "$cpums" -period-ms 0.5 -window "$window")
"$tmp/profile" report -script "$tmp/perf.script" -bin "$tmp/runbox-init-sym" "${report_args[@]}"
if [ -n "$keep" ]; then
	mkdir -p "$keep"
	cp "$tmp/perf.data" "$tmp/perf.script" "$tmp/runbox-init-sym" "$tmp/runbox-init-live" "$tmp/bench.out" "$keep/"
	echo "go run ./bench/profile report -script $keep/perf.script -bin $keep/runbox-init-sym ${report_args[*]}" >"$keep/report.sh"
	say "kept the data in $keep (report.sh re-runs the report)"
fi

# 5. Nothing left behind by this benchmark: its boxes live in cgroups
# named runbox-<its pid>-…, which must be gone with every process in them;
# and no runbox mount may have appeared in this mount namespace. The count
# of box processes (exe) is compared too, but only reported: another
# runbox may be starting boxes.
ours() { # processes still in the benchmark's cgroups, and those cgroups
	grep -l "/runbox-$benchpid-" /proc/[0-9]*/cgroup 2>/dev/null | cut -d/ -f3 | tr '\n' ' ' || true
	find /sys/fs/cgroup -type d -name "runbox-$benchpid-*" 2>/dev/null | tr '\n' ' ' || true
}
left=$(ours)
for _ in $(seq 20); do
	[ -z "$left" ] && break
	sleep 0.1
	left=$(ours)
done
mounts1=$(grep -c runbox /proc/self/mountinfo || true)
exes1=$(pgrep -xc exe || true)
if [ -n "$left" ] || [ "$mounts1" -gt "$mounts0" ]; then
	say "left behind: processes and cgroups: ${left:-none}; runbox mounts $mounts0 → $mounts1"
	exit 1
fi
[ "$exes1" -eq "$exes0" ] || say "note: box processes (exe) $exes0 → $exes1, none of them this benchmark's"
