#!/usr/bin/env bash
# The HTTP service against the same programs run bare and with `runbox run`,
# side by side in one run: `true` (command mode) and Python `print(1)`, at
# concurrency 1 and 4, next to the speed targets. Latency p50/p99 and
# throughput from Debian's wrk (-t1 -c1 and -t2 -c4, keep-alive, for a
# fixed duration after a 1 s warm-up; 10 s timeout) against a real
# `runbox serve` on 127.0.0.1. bench/http-post.lua checks every answer
# (2xx, run status ok, exit code 0, the expected stdout) and the script
# fails if one was not, so a broken server cannot produce a fast table.
# Bare and CLI medians from hyperfine, bare throughput from 1 or 4 parallel
# shell loops. Needs root, wrk and hyperfine.
# Usage: bench/http.sh [-d duration per HTTP row, default 10s] [runs, default 300]
set -euo pipefail
cd "$(dirname "$0")/.."
dur=10s
while getopts d: opt; do
	case $opt in
	d) dur=$OPTARG ;;
	*) echo "usage: bench/http.sh [-d duration] [runs]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
n=${1:-300}
command -v hyperfine >/dev/null || { echo "bench/http.sh: needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench/http.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
make -s build >/dev/null

# The server's data (node key, embedded NATS store) goes in a temporary
# dir, not /var/lib/runbox: a benchmark leaves the machine as it found it.
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
curl -sf "127.0.0.1:$port/healthz" >/dev/null || { echo "bench/http.sh: runbox serve did not start:" >&2; cat "$tmp/log" >&2; exit 1; }

url="http://127.0.0.1:$port/v1/run"
declare -A body=(
	[true]='{"command":["/bin/true"]}'
	[print1]='{"language":"python","files":[{"name":"main.py","content":"print(1)"}]}'
)
# What every answer's body must contain (plain strings, JSON as the server
# writes it: "1\n" is the escaped newline).
ran='"run":{"status":"ok","exit_code":0,'
declare -A stdout=([true]='"stdout":"",' [print1]='"stdout":"1\n",')
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
http() { # $1 program, $2 wrk threads, $3 connections, $4 duration → "p50-ms p99-ms req/s"
	local out result reqs rps p50 p99 bad sockerr sample
	out=$(wrk -t"$2" -c"$3" -d"$4" --timeout 10s --latency -s bench/http-post.lua "$url" -- "${body[$1]}" "$ran" "${stdout[$1]}") ||
		{ echo "bench/http.sh: wrk failed for $1 at concurrency $3:" >&2; echo "$out" >&2; exit 1; }
	result=$(grep '^RESULT ' <<<"$out") || { echo "bench/http.sh: wrk printed no result for $1:" >&2; echo "$out" >&2; exit 1; }
	read -r _ reqs rps p50 p99 bad sockerr sample <<<"$result"
	if [ "$reqs" -eq 0 ] || [ "$bad" -ne 0 ] || [ "$sockerr" -ne 0 ]; then
		echo "bench/http.sh: $1 at concurrency $3: $bad of $reqs answers not 2xx or not the program's success, $sockerr socket errors or timeouts; first bad answer: ${sample:-none}" >&2
		{ grep -v '"msg":"request"' "$tmp/log" || true; } | tail -n 10 >&2
		exit 1
	fi
	echo "$p50 $p99 $rps"
}

echo "runbox serve against bare exec and runbox run ($(nproc) cores, $(uname -r); HTTP: wrk for $dur per row; bare and runbox run: $n runs)"
echo
echo "| program | conc. | bare p50 | bare runs/s | runbox run p50 | HTTP p50 | HTTP p99 | HTTP req/s | HTTP p50 − bare | HTTP p50 ÷ bare | HTTP req/s ÷ bare | target | met |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for p in true print1; do
	hyperfine -N -w 10 -r "$n" --export-json "$tmp/bare.json" "${bare[$p]}" >/dev/null 2>&1
	hyperfine -N -w 5 -r "$((n / 3))" --export-json "$tmp/cli.json" "./bin/runbox run -- ${bare[$p]}" >/dev/null 2>&1
	bp50=$(median_ms "$tmp/bare.json")
	cp50=$(median_ms "$tmp/cli.json")
	for c in 1 4; do
		t=$((c < 2 ? 1 : 2))
		brps=$(loops "$c" "${bare[$p]}")
		http "$p" "$t" "$c" 1s >/dev/null # warm-up, checked like the rest
		res=$(http "$p" "$t" "$c" "$dur") # a failure exits here (not so in <(…))
		read -r p50 p99 rps <<<"$res"
		python3 - "$p" "$c" "$bp50" "$brps" "$cp50" "$p50" "$p99" "$rps" <<'PY'
import sys
p, c = sys.argv[1], int(sys.argv[2])
bp50, brps, cp50, p50, p99, rps = map(float, sys.argv[3:])
# The speed issue's targets: each is judged on the row it is about, the
# latency at concurrency 1, the throughput at concurrency 4.
target, met = {
    ("true", 1): ("p50 ≤ bare + 2.5 ms", p50 <= bp50 + 2.5),
    ("true", 4): ("≥ 600 req/s", rps >= 600),
    ("print1", 1): ("p50 ≤ 1.25× bare", p50 <= 1.25 * bp50),
    ("print1", 4): ("req/s ≥ 0.8× bare", rps >= 0.8 * brps),
}[(p, c)]
print(f"| {p} | {c} | {bp50:.2f} ms | {brps:.0f} | {cp50:.2f} ms | {p50:.2f} ms | {p99:.2f} ms | {rps:.0f} | +{p50-bp50:.2f} ms "
      f"| {p50/bp50:.2f}× | {rps/brps:.2f}× | {target} | {'yes' if met else 'no'} |")
PY
	done
done
echo
echo "Targets (the speed issue): \`true\` p50 ≤ bare + 2.5 ms (judged at concurrency 1) and ≥ 600 req/s at concurrency 4;"
echo "\`print(1)\` p50 ≤ 1.25× bare Python (concurrency 1) and ≥ 0.8× its throughput (concurrency 4, against 4 bare loops)."
