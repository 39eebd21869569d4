#!/bin/bash
# langtable.sh: writes the README's language table from the environment
# files, with the versions this host has (bin/runbox env table; root, for
# the boxes that run each version command). A test (internal/env) checks
# that the table names every environment with its aliases.
set -euo pipefail
cd "$(dirname "$0")/.."
table=$(bin/runbox env table)
python3 - "$table" <<'PY'
import re, sys
table = sys.argv[1]
path = "README.md"
s = open(path).read()
begin, end = "<!-- languages:begin -->", "<!-- languages:end -->"
i, j = s.index(begin) + len(begin), s.index(end)
s = s[:i] + "\n" + table.strip() + "\n" + s[j:]
open(path, "w").write(s)
PY
echo "README.md: language table written ($(grep -c '^| `' <<<"$table") environments)"
