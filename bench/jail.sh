#!/usr/bin/env bash
# The jail's own cost per run, from a long-lived process: the jail package
# driven directly (boxes started on demand, and with a pool of two warm
# boxes), next to a bare os/exec of the same program and to the same program
# in bubblewrap (when installed), one at a time and with
# 2 parallel workers, every layer on (cgroup limits included). Needs root.
# Usage: bench/jail.sh [runs per sample] [samples]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-300}
count=${2:-5}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test ./internal/jail -run '^$' -bench 'BareExec|BwrapExec|Jail' -benchtime "${runs}x" -count "$count" -cpu 1,2 | tee "$out" >&2
echo
echo "jail cost per run (median of $count samples of $runs runs; $(nproc) cores, $(uname -r))"
go run ./bench/benchtab < "$out"
