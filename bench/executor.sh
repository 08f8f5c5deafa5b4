#!/usr/bin/env bash
# Measures the RUN sandbox (run as root; needs busybox-static):
#   - the fixed cost of `RUN true`, from Run to its result (median and mean over many runs);
#   - overlayfs against the copy fallback for a base of 10,000 files, with the scratch space
#     on the disk ($TMPDIR, /tmp by default) and on tmpfs (/dev/shm).
# Usage: bench/executor.sh [runs]   (default 50 runs for `RUN true`, 10 for the 10k base)
set -euo pipefail
# Static binaries, as shipped: the sandbox drops privileges on every thread only without cgo.
export CGO_ENABLED=0
cd "$(dirname "$0")/.."
runs="${1:-50}"
[ "$(id -u)" -eq 0 ] || { echo "bench/executor.sh: needs root (namespaces, mounts)" >&2; exit 1; }

bench() { # dir pattern count
	TMPDIR="$1" go test -count=1 -run '^$' -bench "$2" -benchtime "$3x" ./executor/ |
		awk -v where="$1" '/^Benchmark/ {
			name = $1; sub(/-[0-9]+$/, "", name)
			for (i = 2; i < NF; i++) { if ($(i+1) == "ns/op") mean = $i / 1e6; if ($(i+1) == "median-ms") median = $i }
			printf "%-32s %-10s median %9.2f ms   mean %9.2f ms   (%s runs)\n", name, where, median, mean, $2
		}'
}

# ratio prints copy-fallback time over overlay time per scratch location, from bench's lines.
ratio() {
	awk '{ split($1, n, "/"); med[n[2] " " $2] = $4; where[$2] = 1 }
		END { for (w in where) if (med["overlay " w] > 0)
			printf "%-32s %-10s copy/overlay %9.1fx (median)\n", "BenchmarkBase10k", w, med["copy " w] / med["overlay " w] }'
}

echo "# strata executor benchmarks ($(nproc) cores, kernel $(uname -r))"
bench "${TMPDIR:-/tmp}" 'BenchmarkRunTrue$' "$runs"
base=$(bench "${TMPDIR:-/tmp}" 'BenchmarkBase10k' 10)
if [ -d /dev/shm ]; then
	base+=$'\n'$(bench /dev/shm 'BenchmarkBase10k' 10)
fi
echo "$base"
echo "$base" | ratio
