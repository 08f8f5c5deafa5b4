#!/usr/bin/env bash
# Layer write throughput: Strata's writer (go test -bench) against the
# machine's reference pipelines on the same trees: `tar -c | gzip -1` and
# `tar -c | zstd -3` (and plain `tar -c` as the I/O bound), each writing a
# file that is synced, as Strata syncs its blob. Prints MB/s of file content
# and Strata/reference ratios (above 1: Strata is faster).
#
# Usage: bench/layer.sh [size-in-bytes]   (default 1 GiB of random data)
#        bench/layer.sh --gzip-levels [TAR...]
# The second form places the pinned gzip level on the time/size curve: the
# layer gzip writer (pgzip, its block size, 2 blocks in flight) at levels
# 1-6 and with a 4 MiB block at level 1, on each uncompressed TAR (default:
# 64 MiB of random data and 64 MiB of zeros, W3's mix), one process, 3
# runs: median wall and CPU seconds, compressed bytes, each against level 1.
set -euo pipefail
# Static binaries, as shipped: the sandbox drops privileges on every thread only without cgo.
export CGO_ENABLED=0
cd "$(dirname "$0")/.."

if [ "${1:-}" = --gzip-levels ]; then
	shift
	inputs=""
	for f in "$@"; do inputs="${inputs:+$inputs,}$(realpath "$f")"; done
	go test -run '^$' -bench BenchmarkGzipLevels -benchtime 1x -count 3 -timeout 60m ./layer \
		-layer.gzipinputs="$inputs" |
		awk '$1 ~ /^BenchmarkGzipLevels\// {
			name = $1; sub(/^BenchmarkGzipLevels\//, "", name); sub(/-[0-9]+$/, "", name)
			for (i = 2; i < NF; i++) {
				if ($(i+1) == "ns/op") wall[name] = wall[name] " " $i / 1e9
				if ($(i+1) == "cpu-s/op") cpu[name] = cpu[name] " " $i
				if ($(i+1) == "gzbytes") size[name] = $i
			}
			if (!(name in seen)) { seen[name] = 1; order[n++] = name }
		}
		function median(list,   v, k, i, j, t) {
			k = split(list, v, " ")
			for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
			return v[int((k + 1) / 2)]
		}
		END {
			printf "%-40s %8s %8s %14s %9s %9s\n", "input/block/level", "wall s", "cpu s", "bytes", "cpu/L1", "size/L1"
			for (i = 0; i < n; i++) {
				name = order[i]; input = name; sub(/\/.*/, "", input)
				if (name ~ /block=1M\/level=1$/) { c1[input] = median(cpu[name]); s1[input] = size[name] }
				printf "%-40s %8.2f %8.2f %14d %9.2f %9.4f\n", name, median(wall[name]), median(cpu[name]), size[name], \
					median(cpu[name]) / c1[input], size[name] / s1[input]
			}
		}'
	exit
fi

size=${1:-$((1 << 30))}
runs=3
work=$(mktemp -d "${TMPDIR:-/var/tmp}/strata-bench-layer.XXXXXX")
trap 'rm -rf "$work"' EXIT
for tool in tar gzip zstd go awk; do
	command -v "$tool" >/dev/null || { echo "bench/layer.sh: $tool is needed" >&2; exit 1; }
done

echo "== Strata (go test -bench BenchmarkWriteLayer, $runs writes each)"
go test -run '^$' -bench 'BenchmarkWriteLayer' -benchtime "${runs}x" ./layer \
	-layer.size="$size" -layer.dir="$work" | tee "$work/go.txt"

# strata_mbps TREE COMPRESSION: MB/s reported by the Go benchmark.
strata_mbps() {
	awk -v name="BenchmarkWriteLayer/$1/$2-" 'index($1, name) == 1 { print $(NF-1) }' "$work/go.txt"
}

# reference_mbps TREE COMPRESSOR...: median MB/s of tar | COMPRESSOR > file; sync.
reference_mbps() {
	local tree=$1; shift
	local bytes secs=()
	bytes=$(find "$work/$tree" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
	for _ in $(seq "$runs"); do
		local start end
		start=$(date +%s.%N)
		tar -C "$work/$tree" -cf - . | "$@" >"$work/ref.out"
		sync "$work/ref.out"
		end=$(date +%s.%N)
		secs+=("$(awk -v s="$start" -v e="$end" 'BEGIN { print e - s }')")
	done
	printf '%s\n' "${secs[@]}" | sort -g | sed -n 2p | awk -v b="$bytes" '{ printf "%.2f\n", b / $1 / 1e6 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }

trees=("incompressible-$((size >> 20))MiB" smallfiles-10000)
echo
printf '%-26s %-6s %12s %-12s %14s %8s\n' tree codec "Strata MB/s" reference "ref MB/s" ratio
for tree in "${trees[@]}"; do
	tar_mbps=$(reference_mbps "$tree" cat)
	printf '%-26s %-6s %12s %-12s %14s %8.2f\n' "$tree" none "$(strata_mbps "$tree" none)" "tar" "$tar_mbps" \
		"$(ratio "$(strata_mbps "$tree" none)" "$tar_mbps")"
	for pair in "gzip:gzip -1" "zstd:zstd -3 -q -T1"; do
		codec=${pair%%:*}
		read -r -a cmd <<<"${pair#*:}"
		ref=$(reference_mbps "$tree" "${cmd[@]}")
		ours=$(strata_mbps "$tree" "$codec")
		printf '%-26s %-6s %12s %-12s %14s %8.2f\n' "$tree" "$codec" "$ours" "tar|${cmd[0]} ${cmd[1]}" "$ref" "$(ratio "$ours" "$ref")"
	done
done
