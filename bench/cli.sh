#!/usr/bin/env bash
# The CLI against the reference jail, side by side in the same run:
# bare /bin/true, bubblewrap (Debian's bwrap, no cgroup limits), and
# `runbox run -- /bin/true` (every layer, cgroup limits included). One at a
# time (hyperfine, median), after idle pauses (the cgroup v1 migration's
# slow path), and as 2 parallel shell loops (throughput). Needs root.
# Usage: bench/cli.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-300}
make -s build >/dev/null
RUNBOX="$PWD/bin/runbox run --"
BWRAP="bwrap --ro-bind / / --unshare-all --die-with-parent --proc /proc --dev /dev --tmpfs /tmp"
command -v bwrap >/dev/null || { echo "bench/cli.sh: needs bwrap (apt-get install bubblewrap)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "bench/cli.sh: needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }

declare -A cmd=([bare]="/bin/true" [bwrap]="$BWRAP /bin/true" [runbox]="$RUNBOX /bin/true")
names=(bare bwrap runbox)

median_ms() { # hyperfine JSON → median in ms
	python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$1"
}

loops() { # 2 parallel loops of $runs runs each → runs/s
	local c=$1 start end
	start=$(date +%s%N)
	for _ in 1 2; do (for ((i = 0; i < runs; i++)); do $c >/dev/null; done) & done
	wait
	end=$(date +%s%N)
	python3 -c "print('%.0f' % (2*$runs/(($end-$start)/1e9)))"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
declare -A seq idle par
for n in "${names[@]}"; do
	hyperfine -N -w 20 -r "$runs" --export-json "$tmp/$n.json" "${cmd[$n]}" >/dev/null 2>&1
	seq[$n]=$(median_ms "$tmp/$n.json")
	hyperfine -N -w 3 -r 30 --prepare 'sleep 0.1' --export-json "$tmp/$n-idle.json" "${cmd[$n]}" >/dev/null 2>&1
	idle[$n]=$(median_ms "$tmp/$n-idle.json")
	par[$n]=$(loops "${cmd[$n]}")
done

echo "runbox run -- /bin/true against bwrap ($(nproc) cores, $(uname -r); median of $runs runs)"
echo
echo "| command | median, back to back | median after 100 ms idle | runs/s, 2 loops | × bwrap (median) | × bwrap (runs/s) |"
echo "|---|---|---|---|---|---|"
for n in "${names[@]}"; do
	python3 - "$n" "${seq[$n]}" "${idle[$n]}" "${par[$n]}" "${seq[bwrap]}" "${par[bwrap]}" <<'PY'
import sys
n, s, i, p, bs, bp = sys.argv[1], *map(float, sys.argv[2:])
print(f"| {n} | {s:.2f} ms | {i:.2f} ms | {p:.0f} | {s/bs:.2f}× | {p/bp:.2f}× |")
PY
done
