#!/usr/bin/env bash
# Runs every Fuzz* target of the module for a short while (FUZZTIME, default
# 5s each), one at a time: `go test -fuzz` takes one target of one package per
# run. Targets are found in the sources, so a new one runs without being
# listed here. A crash leaves its input under the package's
# testdata/fuzz/<Target>/ and fails the run; commit that file as a
# regression seed once fixed. New inputs are not minimised (-fuzzminimizetime
# 1x): in a 5 s run, minimising would take most of the time.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5s}
n=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
while IFS=: read -r file name; do
	dir=./$(dirname "$file")
	echo "fuzz $dir $name ($fuzztime)"
	fuzz() { go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 1x "$dir" >"$log" 2>&1; }
	if ! fuzz; then
		# Go's coordinator sometimes gives up on a worker at the very end
		# of a short run ("context deadline exceeded") without any failing
		# input; that run is tried once more. A real failure names its
		# input ("Failing input written to …") and fails at once.
		if grep -q 'Failing input' "$log" || ! grep -q 'context deadline exceeded' "$log" || ! fuzz; then
			cat "$log"
			exit 1
		fi
	fi
	n=$((n + 1))
done < <(git ls-files '*_test.go' | xargs grep -Ho '^func Fuzz[A-Za-z0-9_]*' | sed 's/func //' | sort)
echo "fuzz: $n targets, $fuzztime each"
