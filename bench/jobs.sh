#!/usr/bin/env bash
# The jobs queue against synchronous /v1/run, side by side in one run of
# one `runbox serve` (embedded NATS, its store in a temporary data dir):
# `true` (command mode) and Python `print(1)`, at concurrency 1 and 4.
# From bench/jobload: latency p50/p99 and throughput of each, a job's
# latency being submit to result in hand (the terminal event of
# /v1/jobs/{id}/events, then one GET). The queue's overhead is shown two
# ways: the p50 of each job's latency less the run time it reports
# (finished_at − started_at), and jobs p50 − sync p50. Target: jobs/s at
# least 0.8× sync req/s, overhead p50 at most 5 ms. Needs root.
# Usage: bench/jobs.sh [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-300}
make -s build >/dev/null
go build -o bin/jobload ./bench/jobload

tmp=$(mktemp -d -t runbox-bench.XXXXXX)
server=
cleanup() {
	if [ -n "$server" ]; then
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
./bin/runbox serve --listen "127.0.0.1:$port" --data-dir "$tmp/data" 2>"$tmp/log" &
server=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "127.0.0.1:$port/healthz" >/dev/null || { echo "bench/jobs.sh: runbox serve did not start:" >&2; cat "$tmp/log" >&2; exit 1; }

url="http://127.0.0.1:$port"
declare -A body=(
	[true]='{"command":["/bin/true"]}'
	[print1]='{"language":"python","files":[{"name":"main.py","content":"print(1)"}]}'
)
load() { # mode program concurrency → p50 p99 per_s errors [overhead_p50]
	local out
	if ! out=$(./bin/jobload -url "$url" -n "$n" -c "$3" -mode "$1" -body "${body[$2]}" -v 2>"$tmp/err"); then
		echo "bench/jobs.sh: $1 $2 -c $3: errors ($out)" >&2
		cat "$tmp/err" >&2
		tail -n 20 "$tmp/log" >&2
		exit 1
	fi
	echo "$out"
}

echo "jobs queue against synchronous /v1/run ($(nproc) cores, $(uname -r); $n requests each)"
echo
echo "| program | conc. | sync p50 | sync p99 | sync req/s | jobs p50 | jobs p99 | jobs/s | jobs/s ÷ sync req/s | overhead p50 (jobs − own run time) | jobs p50 − sync p50 |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for p in true print1; do
	for c in 1 4; do
		s=$(load sync "$p" "$c")
		j=$(load jobs "$p" "$c")
		read -r sp50 sp99 srps _ <<<"$s"
		read -r jp50 jp99 jrps _ jover <<<"$j"
		python3 - "$p" "$c" "$sp50" "$sp99" "$srps" "$jp50" "$jp99" "$jrps" "$jover" <<'PY'
import sys
p, c = sys.argv[1], sys.argv[2]
sp50, sp99, srps, jp50, jp99, jrps, jover = map(float, sys.argv[3:])
print(f"| {p} | {c} | {sp50:.2f} ms | {sp99:.2f} ms | {srps:.0f} | {jp50:.2f} ms | {jp99:.2f} ms | {jrps:.0f} | {jrps/srps:.2f}× | {jover:.2f} ms | +{jp50-sp50:.2f} ms |")
PY
	done
done
