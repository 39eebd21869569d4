#!/bin/bash
# test-deb.sh: builds the Debian package, verifies its systemd unit, installs
# it, runs the installed runbox (the server as the unit's ExecStart starts it,
# plus `runbox run`), then purges it and checks that nothing is left. Needs
# root, dpkg, systemd-analyze, curl and python3 (for the box and to read the
# JSON). Refuses to run where runbox is already installed. Exits non-zero
# with a message naming the failed step.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
step() { echo "test-deb: $*"; }

if [ "$(id -u)" != 0 ]; then
	echo "test-deb: SKIP: needs root (dpkg -i, and runbox serve as the unit runs it)"
	exit 0
fi
for c in dpkg dpkg-deb systemd-analyze curl python3; do
	command -v "$c" >/dev/null || fail "$c not found"
done
if dpkg-query -W -f='${Status}' runbox 2>/dev/null | grep -q installed; then
	fail "runbox is already installed here; this test installs and purges it"
fi
[ ! -e /etc/runbox ] && [ ! -e /var/lib/runbox ] || fail "/etc/runbox or /var/lib/runbox exists; this test would remove it"

unit=/lib/systemd/system/runbox.service
wants=/etc/systemd/system/multi-user.target.wants/runbox.service
work=$(mktemp -d)
installed=
pid=

# On any exit: stop the server we started, purge what we installed, show the
# server's log when something failed.
cleanup() {
	rc=$?
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	if [ "$rc" != 0 ] && [ -s "$work/serve.log" ]; then
		echo "test-deb: last lines of the server's log:" >&2
		tail -n 20 "$work/serve.log" >&2
	fi
	if [ -n "$installed" ]; then
		dpkg --purge runbox >/dev/null 2>&1 || echo "test-deb: dpkg --purge runbox failed" >&2
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT

step "make deb"
# --no-print-directory: under `make test` this is a nested make, which
# would otherwise end its output with "Leaving directory".
make --no-print-directory deb >"$work/build.log" 2>&1 || { tail -n 20 "$work/build.log" >&2; fail "make deb"; }
deb=$(grep '\.deb$' "$work/build.log" | tail -n 1)
[ -f "$deb" ] || fail "make deb did not print the package's path (got: $deb)"
step "built $deb"

dpkg-deb --info "$deb" >"$work/info" || fail "dpkg-deb --info $deb"
grep -q '^ Package: runbox$' "$work/info" || fail "control: Package is not runbox"
grep -q "^ Architecture: $(dpkg --print-architecture)\$" "$work/info" || fail "control: wrong Architecture"
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)" = /etc/runbox/runbox.toml ] ||
	fail "conffiles does not list exactly /etc/runbox/runbox.toml"

step "dpkg -i"
installed=1
dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i $deb"; }
dpkg-query -W -f='${Status}' runbox | grep -q 'install ok installed' || fail "dpkg does not list runbox as installed"
# Not enabled on install: the admin reviews the config, then enables it.
[ ! -L "$wants" ] || fail "dpkg -i enabled the service ($wants)"

step "files in place"
[ -x /usr/bin/runbox ] || fail "/usr/bin/runbox missing or not executable"
[ -f "$unit" ] || fail "$unit missing"
[ -f /etc/runbox/runbox.toml ] || fail "/etc/runbox/runbox.toml missing"
[ -d /var/lib/runbox ] || fail "/var/lib/runbox missing"
[ "$(stat -c %a /var/lib/runbox)" = 700 ] || fail "/var/lib/runbox is not mode 700"
dpkg-query -W -f='${Conffiles}' runbox | grep -q '^ /etc/runbox/runbox.toml ' || fail "/etc/runbox/runbox.toml is not a conffile"
file /usr/bin/runbox 2>/dev/null | grep -q 'statically linked' || [ ! -x /usr/bin/file ] || fail "/usr/bin/runbox is not static"

# Offline: no systemd needs to run. --man=no: the unit's Documentation= is a
# URL, and no man pages are looked up. Any warning about the unit fails.
step "systemd-analyze verify $unit"
systemd-analyze verify --man=no "$unit" >"$work/verify" 2>&1 || { cat "$work/verify" >&2; fail "systemd-analyze verify"; }
if grep -i 'runbox' "$work/verify" >/dev/null; then
	cat "$work/verify" >&2
	fail "systemd-analyze verify warns about the unit"
fi
cat "$work/verify"

# The unit's own command line, read from the installed unit, with one flag
# added: --listen 127.0.0.1:0 (flags take precedence over the config file) so
# that the test takes a free port and reads it from the "listening" log line.
# As systemd would: root, cwd /, an empty environment but PATH, its
# LimitNOFILE.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$exec_start" = "/usr/bin/runbox serve --config /etc/runbox/runbox.toml" ] || fail "unexpected ExecStart: $exec_start"
step "start: $exec_start --listen 127.0.0.1:0"
(
	cd /
	ulimit -n "$(sed -n 's/^LimitNOFILE=//p' "$unit")" 2>/dev/null || true
	# shellcheck disable=SC2086 # ExecStart is split on spaces, as systemd does here.
	exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin $exec_start --listen 127.0.0.1:0
) >"$work/serve.log" 2>&1 &
pid=$!

addr=
for _ in $(seq 600); do
	kill -0 "$pid" 2>/dev/null || fail "runbox serve exited early"
	addr=$(sed -n 's/.*"msg":"listening","addr":"\([^"]*\)".*/\1/p' "$work/serve.log" | head -n 1)
	[ -n "$addr" ] && break
	sleep 0.1
done
[ -n "$addr" ] || fail "runbox serve did not log \"listening\" within 60s"
step "listening on $addr (pid $pid)"
grep -q '"data_dir":"/var/lib/runbox"' "$work/serve.log" || fail "the server does not use /var/lib/runbox"
curl -fsS "http://$addr/healthz" >/dev/null || fail "GET /healthz"

step "POST /v1/run (python)"
curl -fsS "http://$addr/v1/run" -H 'content-type: application/json' \
	-d '{"language": "python", "files": [{"name": "main.py", "content": "print(input()[::-1])"}], "stdin": "hello deb"}' \
	>"$work/run.json" || fail "POST /v1/run"
out=$(python3 -c 'import json,sys; r=json.load(sys.stdin)["run"]; print(r["status"], repr(r["stdout"]))' <"$work/run.json") ||
	fail "POST /v1/run: unreadable answer: $(head -c 500 "$work/run.json")"
[ "$out" = "ok 'bed olleh\\n'" ] || fail "POST /v1/run: want ok 'bed olleh\\n', got $out: $(head -c 500 "$work/run.json")"

step "/usr/bin/runbox run -- echo hi"
got=$(cd / && /usr/bin/runbox run -- echo hi) || fail "runbox run -- echo hi exited $?"
[ "$got" = hi ] || fail "runbox run -- echo hi printed '$got'"

step "stop the server (SIGTERM to $pid)"
kill -TERM "$pid"
for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "runbox serve still runs 30s after SIGTERM"
wait "$pid" || fail "runbox serve exited $? after SIGTERM"
grep -q '"msg":"shutting down"' "$work/serve.log" || fail "runbox serve did not log its shutdown"
ls -d /sys/fs/cgroup/runbox-"$pid"* /sys/fs/cgroup/*/runbox-"$pid"* 2>/dev/null && fail "cgroups of runbox serve are left behind"
leftover=$(ps -eo pid=,args= | awk '$2 == "/usr/bin/runbox" {print}')
[ -z "$leftover" ] || fail "runbox processes left behind: $leftover"
pid=

step "dpkg --purge runbox"
installed=
dpkg --purge runbox >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg --purge runbox"; }
for f in /usr/bin/runbox "$unit" /etc/runbox /var/lib/runbox /etc/systemd/system/runbox.service "$wants" \
	/var/lib/systemd/deb-systemd-helper-enabled/runbox.service.dsh-also \
	/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/runbox.service; do
	[ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f is left after purge"
done
if dpkg-query -W -f='${Status}' runbox 2>/dev/null | grep -q installed; then fail "dpkg still lists runbox"; fi

step "PASS"
