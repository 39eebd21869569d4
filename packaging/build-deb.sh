#!/bin/sh
# build-deb.sh: packs bin/runbox (from `make build`) with its systemd unit
# and default config into dist/runbox_<version>_<arch>.deb, with dpkg-deb
# alone. Run from anywhere; `make deb` builds first, then calls it. Prints the
# package's path on its last line.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

die() { echo "build-deb: $*" >&2; exit 1; }

[ -x bin/runbox ] || die "bin/runbox is missing: run make build (or make deb)"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"

# A Debian version from git: a tag v1.2.3 gives 1.2.3 (1.2.3+git<date>.<n>.<hash>
# for commits after it); without tags 0.0~git<commit date>.<hash>, so that a
# first tagged release sorts above every snapshot. +dirty marks uncommitted
# changes. Debian versions allow only [A-Za-z0-9.+~].
debversion() {
	hash=$(git rev-parse --short=12 HEAD 2>/dev/null) || { echo 0.0~dev; return; }
	date=$(git log -1 --format=%cd --date=format:%Y%m%d)
	if desc=$(git describe --tags --match 'v[0-9]*' --long 2>/dev/null); then
		# v1.2.3-4-gabcdef → tag v1.2.3, 4 commits after it.
		n=${desc%-g*}; n=${n##*-}
		tag=${desc%-*-g*}; tag=${tag#v}
		v=$(printf %s "$tag" | tr -c 'A-Za-z0-9.+~\n' '~')
		[ "$n" = 0 ] || v="$v+git$date.$n.$hash"
	else
		v="0.0~git$date.$hash"
	fi
	[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || v="$v+dirty"
	echo "$v"
}

version=$(debversion)
arch=$(dpkg --print-architecture)
out="dist/runbox_${version}_${arch}.deb"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
umask 022

install -D -m 0755 bin/runbox "$stage/usr/bin/runbox"
install -D -m 0644 packaging/runbox.service "$stage/lib/systemd/system/runbox.service"
# 0640: the file may come to hold webhook_secret.
install -D -m 0640 packaging/runbox.toml "$stage/etc/runbox/runbox.toml"
install -d -m 0700 "$stage/var/lib/runbox"
install -d -m 0755 "$stage/DEBIAN"

echo /etc/runbox/runbox.toml >"$stage/DEBIAN/conffiles"

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
# No Depends: bin/runbox is static (CGO_ENABLED=0) and embeds runbox-init.
# The languages' toolchains are the host's own, found at start.
cat >"$stage/DEBIAN/control" <<EOF
Package: runbox
Version: $version
Architecture: $arch
Maintainer: ${DEB_MAINTAINER:-runbox maintainers <maintainers@runbox.invalid>}
Installed-Size: $size
Section: admin
Priority: optional
Homepage: https://github.com/runbox-dev/runbox
Suggests: python3, gcc
Description: run untrusted code in a Linux sandbox
 runbox runs programs in boxes made of Linux namespaces, cgroups, seccomp
 and resource limits. This package installs the runbox command and a
 systemd unit for its HTTP service, runbox serve, which compiles and runs
 programs in many languages (with the toolchains installed on the host),
 keeps sessions and runs jobs. The service is not enabled on install: review
 /etc/runbox/runbox.toml, then run systemctl enable --now runbox.
EOF

# The maintainer scripts follow debhelper's systemd snippets. deb-systemd-helper
# only keeps symlinks and its state files, so it runs without systemd too;
# systemctl and deb-systemd-invoke run only when systemd is the init
# ([ -d /run/systemd/system ]), so the package installs in a container or a
# chroot.
cat >"$stage/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
case "$1" in
configure|abort-upgrade|abort-deconfigure|abort-remove)
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		# Not enabled on a first install (debian-installed is false then,
		# and was-enabled would be true); an admin's enable is kept.
		if deb-systemd-helper debian-installed runbox.service; then
			deb-systemd-helper unmask runbox.service >/dev/null || true
			if deb-systemd-helper --quiet was-enabled runbox.service; then
				deb-systemd-helper enable runbox.service >/dev/null || true
			fi
		fi
		deb-systemd-helper update-state runbox.service >/dev/null || true
	fi
	if [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		# An upgrade restarts a running service on the new binary.
		if [ -n "${2:-}" ]; then
			deb-systemd-invoke try-restart runbox.service >/dev/null || true
		fi
	fi
	;;
esac
exit 0
EOF

cat >"$stage/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	deb-systemd-invoke stop runbox.service >/dev/null || true
fi
exit 0
EOF

cat >"$stage/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
case "$1" in
remove)
	if [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
	fi
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper mask runbox.service >/dev/null || true
	fi
	;;
purge)
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper purge runbox.service >/dev/null || true
		deb-systemd-helper unmask runbox.service >/dev/null || true
	fi
	# The data directory: the node's key, the webhook secret, the job store.
	rm -rf /var/lib/runbox
	;;
esac
exit 0
EOF
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"

mkdir -p dist
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "$out"
