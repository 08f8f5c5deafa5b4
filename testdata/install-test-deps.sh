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
packages=(umoci skopeo runc busybox-static docker-registry apache2-utils zstd xz-utils bzip2 gzip tar iproute2 procps libc6-dev slirp4netns uidmap)

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
