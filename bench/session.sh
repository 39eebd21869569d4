#!/usr/bin/env bash
# What a command in a live session costs, next to bare exec and to a
# one-shot run of the same program, in one run: in-process (the jail's
# session, /bin/true back to back and after a 10 ms pause), over HTTP (a
# session command against a one-shot /v1/run), a session's creation and
# deletion, and over WebSocket the time from a command's start, and from
# the program's write, to the client's receipt. Medians of each sample's
# p50. Needs root.
# Usage: bench/session.sh [runs per sample] [samples]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-300}
count=${2:-3}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test ./internal/jail -run '^$' -bench 'BareExec/true$|SessionExec' -benchtime "${runs}x" -count "$count" -cpu 1 | tee "$out" >&2
go test ./internal/api -run '^$' -bench 'SessionCommandHTTP|RunTrueHTTP|SessionCreateDelete|WSFirstByte|WSRunStreamFirstByte' \
	-benchtime "${runs}x" -count "$count" -cpu 1 | tee -a "$out" >&2
echo
echo "sessions (median of $count samples' p50 over $runs operations; $(nproc) cores, $(uname -r))"
go run ./bench/p50tab -base BareExec < "$out"
