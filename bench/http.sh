#!/usr/bin/env bash
# The HTTP service against the same programs run bare and with `runbox run`,
# side by side in one run: `true` (command mode) and Python `print(1)`, at
# concurrency 1 and 4. Latency p50/p99 and throughput from bench/httpload
# against a real `runbox serve` on 127.0.0.1; bare and CLI medians from
# hyperfine, their throughput from parallel shell loops. Needs root.
# Usage: bench/http.sh [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-300}
make -s build >/dev/null
go build -o bin/httpload ./bench/httpload
command -v hyperfine >/dev/null || { echo "bench/http.sh: needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The server's data (node key, embedded NATS store) goes in a temporary
# dir, not /var/lib/runbox: a benchmark leaves the machine as it found it.
tmp=$(mktemp -d -t runbox-bench.XXXXXX)
./bin/runbox serve --listen "127.0.0.1:$port" --data-dir "$tmp/data" 2>"$tmp/log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for _ in $(seq 100); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

url="http://127.0.0.1:$port/v1/run"
declare -A body=(
	[true]='{"command":["/bin/true"]}'
	[print1]='{"language":"python","files":[{"name":"main.py","content":"print(1)"}]}'
)
declare -A bare=([true]="/bin/true" [print1]="/usr/bin/python3 -c print(1)")

median_ms() { python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$1"; }
loops() { # $1 parallel loops of $n runs of $2 → runs/s
	local k=$1 c=$2 start end
	start=$(date +%s%N)
	for ((j = 0; j < k; j++)); do (for ((i = 0; i < n; i++)); do $c >/dev/null; done) & done
	wait
	end=$(date +%s%N)
	python3 -c "print('%.0f' % ($k*$n/(($end-$start)/1e9)))"
}

echo "runbox serve against bare exec and runbox run ($(nproc) cores, $(uname -r); $n requests each)"
echo
echo "| program | conc. | bare p50 | bare runs/s | runbox run p50 | HTTP p50 | HTTP p99 | HTTP req/s | HTTP p50 − bare | HTTP p50 ÷ bare | HTTP req/s ÷ bare |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for p in true print1; do
	hyperfine -N -w 10 -r "$n" --export-json "$tmp/bare.json" "${bare[$p]}" >/dev/null 2>&1
	hyperfine -N -w 5 -r "$((n / 3))" --export-json "$tmp/cli.json" "./bin/runbox run -- ${bare[$p]}" >/dev/null 2>&1
	bp50=$(median_ms "$tmp/bare.json")
	cp50=$(median_ms "$tmp/cli.json")
	for c in 1 4; do
		brps=$(loops "$c" "${bare[$p]}")
		read -r p50 p99 rps bad < <(./bin/httpload -url "$url" -n "$n" -c "$c" -body "${body[$p]}")
		python3 - "$p" "$c" "$bp50" "$brps" "$cp50" "$p50" "$p99" "$rps" <<'PY'
import sys
p, c = sys.argv[1], sys.argv[2]
bp50, brps, cp50, p50, p99, rps = map(float, sys.argv[3:])
print(f"| {p} | {c} | {bp50:.2f} ms | {brps:.0f} | {cp50:.2f} ms | {p50:.2f} ms | {p99:.2f} ms | {rps:.0f} | +{p50-bp50:.2f} ms | {p50/bp50:.2f}× | {rps/brps:.2f}× |")
PY
	done
done
