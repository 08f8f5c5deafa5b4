#!/usr/bin/env bash
# Installs what Strata's tests need on a fresh Debian machine that has only Go, gcc and git.
# Idempotent: packages already present are left as they are.
set -euo pipefail

# umoci, skopeo, runc: third-party readers and runtime that check our images.
# busybox-static: the base filesystem the tests make their minirootfs from.
# docker-registry: the real registry for end-to-end tests (started by the tests, 127.0.0.1 only).
# zstd, xz-utils, bzip2, gzip, tar: reference compressors and archive formats for tests and benches.
# libc6-dev: static libc for the small C probes the sandbox tests compile with gcc (escape attempts).
# slirp4netns: the user-mode network of RUN steps on the default network (strata needs it at run time).
# apache2-utils: htpasswd, for the registry with basic auth the cache tests push to.
# uidmap: newuidmap/newgidmap, which map a user's /etc/subuid and /etc/subgid ranges into the
# user namespace a rootless build runs in (the rootless end-to-end tests build as such a user).
# qemu-user-static: the emulators a RUN step of a foreign platform (--platform linux/arm64 on an
# amd64 host) runs through, by the kernel's binfmt_misc (registered below).
packages=(umoci skopeo runc busybox-static docker-registry apache2-utils zstd xz-utils bzip2 gzip tar iproute2 procps libc6-dev slirp4netns uidmap qemu-user-static)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian's docker-registry package starts a service on :5000 where an init system runs;
# the tests start their own instance on 127.0.0.1, so stop the packaged one if it runs.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
	systemctl stop docker-registry || true
fi
# A rootless build's RUN steps reach the network through slirp4netns, which opens /dev/net/tun
# as the user who builds. Debian's udev makes it 0666; a machine without udev may have it
# 0600, and then the rootless end-to-end tests fail naming this script. Only the mode changes,
# and not for good: /dev is made afresh at boot, so run this script again after a reboot.
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo chmod 0666 /dev/net/tun
fi

# binfmt_misc handlers for qemu-user-static. Where systemd runs, systemd-binfmt registers
# /usr/lib/binfmt.d/qemu-*.conf at boot; a machine or container without it has none, so they
# are registered here, each only when absent (a handler already there, from binfmt-support or
# an earlier run, is left as it is). Debian's files carry the F flag: the kernel opens the
# interpreter at registration, so a RUN step inside the sandbox's pivot_root still finds it.
# Where binfmt_misc cannot be mounted or written (an unprivileged container), warn and go on:
# only the foreign-platform tests need it, and they skip naming what is missing.
register_binfmt() {
	local fs=/proc/sys/fs/binfmt_misc conf line rest name
	if [ ! -e "$fs/register" ] && ! $sudo mount -t binfmt_misc binfmt_misc "$fs" 2>/dev/null; then
		echo "install-test-deps: warning: cannot mount binfmt_misc at $fs: foreign-platform RUN tests will skip" >&2
		return 0
	fi
	for conf in /usr/lib/binfmt.d/qemu-*.conf; do
		[ -e "$conf" ] || continue
		line=$(grep -v -m1 -e '^[#;]' -e '^$' "$conf") || continue
		rest=${line:1}
		name=${rest%%"${line:0:1}"*}
		[ -e "$fs/$name" ] && continue
		if ! printf '%s' "$line" | $sudo tee "$fs/register" >/dev/null 2>&1; then
			echo "install-test-deps: warning: cannot register $name in $fs (read-only?): foreign-platform RUN tests will skip" >&2
			return 0
		fi
	done
}
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
register_binfmt

# Debian's arm64 busybox-static, for the tests that build and run an arm64 image: its
# bin/busybox lands in /var/cache/strata-test/arm64/busybox (the path the tests read). It is
# fetched with apt-get download from this machine's own Debian sources, but through a
# throwaway apt state (lists, cache, an empty dpkg status) that sees arm64 alone: no
# `dpkg --add-architecture`, and the machine's apt configuration and lists stay as they were.
arm64_busybox=/var/cache/strata-test/arm64/busybox
if [ ! -x "$arm64_busybox" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/deb"
	: >"$tmp/status"
	apt_arm64=(-qq -o APT::Architecture=arm64 -o APT::Architectures::=arm64
		-o Dir::State::Lists="$tmp/lists" -o Dir::Cache="$tmp/cache" -o Dir::State::status="$tmp/status"
		-o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false -o APT::Sandbox::User=root)
	$sudo apt-get "${apt_arm64[@]}" update
	(cd "$tmp/deb" && $sudo apt-get "${apt_arm64[@]}" download busybox-static)
	$sudo dpkg-deb -x "$tmp"/deb/busybox-static_*_arm64.deb "$tmp/root"
	$sudo install -D -m 0755 "$tmp/root/bin/busybox" "$arm64_busybox"
	$sudo rm -rf "$tmp"
fi
