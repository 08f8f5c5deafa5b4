#!/usr/bin/env bash
# Builds strata and the bundled example image testdata/examples/hello (FROM scratch + ADD of a
# busybox minirootfs, one RUN, one COPY) into an OCI archive, with no registry and no network
# beyond installing Debian's busybox-static when it is missing. Prints the image digest.
#
#   ./testdata/examples/build-hello.sh [OUT.tar]    (default testdata/examples/hello.tar)
#
# SOURCE_DATE_EPOCH (default: the last commit's time) fixes every timestamp, so the digest is
# the same on every machine with the same busybox-static.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
out="$(realpath -m "${1:-$repo/testdata/examples/hello.tar}")"
cd "$repo"

if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox-static
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Static, with no cgo: the sandbox drops privileges on every thread only then, and the binary
# runs in any image.
export CGO_ENABLED=0
go build -o ./strata ./cmd/strata
go build -o "$tmp/mkrootfs" ./cmd/mkrootfs
"$tmp/mkrootfs" testdata/examples/hello/rootfs.tar.gz

epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
./strata build --progress plain --root "$tmp/store" --source-date-epoch "$epoch" \
	--iidfile "$tmp/iid" -o "type=oci,dest=$out" testdata/examples/hello >/dev/null
echo "$out: $(cat "$tmp/iid")"
