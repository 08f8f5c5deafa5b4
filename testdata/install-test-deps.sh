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
packages=(umoci skopeo runc busybox-static docker-registry apache2-utils zstd xz-utils bzip2 gzip tar iproute2 procps libc6-dev slirp4netns)

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
