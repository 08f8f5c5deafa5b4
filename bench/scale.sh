#!/usr/bin/env bash
# The scale series (issue #16): how Strata's and BuildKit's time and peak RSS grow with one
# input at a time. Each point is built once cold per builder, from an empty store or an empty
# buildkitd (started before the timer; its tree's RSS counts), to an OCI tarball:
#   files         a context of N files of 1-4 KiB, a few directories deep, and COPY . /app;
#                 then the rebuild after one file changed
#   layer         one RUN writing N bytes (half random, half zeros), one layer
#   instructions  N instructions, at most 90 making layers (RUN and COPY), the rest ENV/LABEL/ARG
#   stages        N independent stages each doing the same CPU-bound RUN, and a final stage
#                 copying from each; compared with the ideal of min(N, CPUs) at a time
# Points are generated deterministically by `benchtool scale-workloads`, one at a time (the
# largest never share the disk), measured by `benchtool measure`, and summed up by
# `benchtool scale-report` (the table and each curve's log-log slope) and `benchtool plot`
# (an SVG; full mode also writes bench/scale.svg). A point is refused, and recorded so, when
# the disk has less than three times what it needs free; a builder failing a point (or taking
# longer than --timeout) is recorded as failed and the series goes on.
#
# Usage: bench/scale.sh [--quick] [--series "files layer instructions stages"]
#                       [--builders "strata buildkit"] [--port N] [--cache DIR] [--keep]
#                       [--peer-max-gib N] [--timeout SECONDS]
#   --quick         tiny sizes: 1k/2k/5k files, 64/128/256 MiB, 10/50/100 instructions, 2/4/8 stages
#   --peer-max-gib  skip BuildKit on points storing more than N GiB (the context or the layer)
#   --timeout       longest a build may take (default 7200 s), then it is killed and failed
#   --cache         where buildkitd/buildctl and the results are kept (default /var/tmp/strata-bench-cache)
set -euo pipefail
# Static binaries, as shipped: the sandbox drops privileges on every thread only without cgo.
export CGO_ENABLED=0
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=bench/lib.sh
. bench/lib.sh

cmdline="bench/scale.sh $*"
quick=0 keep=0 port=5096 epoch=1700000000 peer_max_gib="" timeout=7200
series="files layer instructions stages" builders="strata buildkit"
cache=/var/tmp/strata-bench-cache
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--series) series=$2; shift ;;
	--builders) builders=$2; shift ;;
	--port) port=$2; shift ;;
	--cache) cache=$2; shift ;;
	--keep) keep=1 ;;
	--peer-max-gib) peer_max_gib=$2; shift ;;
	--timeout) timeout=$2; shift ;;
	*) echo "bench/scale.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
for b in $builders; do
	case $b in
	strata | buildkit) ;;
	*) echo "bench/scale.sh: unknown builder $b (want strata or buildkit)" >&2; exit 2 ;;
	esac
done
for s in $series; do
	case $s in
	files | layer | instructions | stages) ;;
	*) echo "bench/scale.sh: unknown series $s (want files, layer, instructions or stages)" >&2; exit 2 ;;
	esac
done
[[ "$peer_max_gib" =~ ^[0-9]*$ ]] || { echo "bench/scale.sh: --peer-max-gib wants a whole number" >&2; exit 2; }
registry=127.0.0.1:$port
[ "$(id -u)" = 0 ] || { echo "bench/scale.sh: run as root (RUN steps and buildkitd need it)" >&2; exit 1; }

# Each stage's CPU work: random bytes generated into /dev/null (about 1.3 s a GiB on one core).
stage_bytes=$((1 << 30)) qflag=()
if [ "$quick" = 1 ]; then stage_bytes=$((256 << 20)) qflag=(-quick); fi

mkdir -p "$cache"
work=$(mktemp -d /var/tmp/strata-scale.XXXXXX)
bin=$work/bin results=$work/results.jsonl logs=$work/logs
mkdir -p "$bin" "$logs" "$work/out"
registry_pid="" bk_pid=""

cleanup() {
	stop_buildkitd
	[ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
	umount_under "$work"
	if [ "$keep" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# uses BUILDER: whether BUILDER is among --builders.
uses() { [[ " $builders " == *" $1 "* ]]; }

install_deps() {
	local pairs=(docker-registry:docker-registry curl:curl)
	! uses buildkit || pairs+=(runc:runc)
	install_missing "${pairs[@]}"
}

# build_tools: strata, the static benchtool (also put in the base) and seedimage.
build_tools() {
	log "building strata, benchtool, seedimage"
	go build -o "$bin/strata" ./cmd/strata || log "strata does not build: its builds will be recorded as failed"
	go build -trimpath -ldflags=-s -o "$bin/benchtool" ./bench/benchtool
	go build -o "$bin/seedimage" ./bench/seedimage
}

# seed_base: busybox:bench (cmd/mkrootfs) with the static benchtool in /usr/local/bin.
seed_base() {
	go run ./cmd/mkrootfs -epoch "$epoch" "$work/busybox.tar.gz"
	log "seeding $registry with busybox:bench"
	"$bin/seedimage" -ref "$registry/busybox:bench" -rootfs "$work/busybox.tar.gz" -cmd sh \
		-add "/usr/local/bin/benchtool=$bin/benchtool"
}

# record_not_built POINT BUILDER PHASE WHY: a record of a build not measured, so that the
# table says why (an error starting "skipped" shows as skipped, the rest as failed).
record_not_built() {
	printf '{"workload":"%s","builder":"%s","phase":"%s","run":1,"ok":false,"error":"%s","seconds":0,"peak_rss":0,"base_rss":0}\n' \
		"$1" "$2" "$3" "$4" >>"$results"
	log "$1 $2 $3: $4"
}

# build_argv BUILDER POINT CTX OUT STATE: sets argv to the build of CTX into the OCI tarball
# OUT, under timeout (which stays the measured tree's root: a few hundred KiB of RSS).
build_argv() {
	local b=$1 name=$2 ctx=$3 out=$4 state=$5
	argv=(timeout --kill-after=30 "$timeout")
	case $b in
	strata)
		argv+=("$bin/strata" build --root "$state" -t "scale/${name//\//-}" -o "type=oci,dest=$out"
			--source-date-epoch "$epoch" --insecure-registry "$registry" --progress plain "$ctx") ;;
	buildkit)
		argv+=("$cache/bin/buildctl" --addr "unix://$work/bk/sock" build --progress plain --frontend dockerfile.v0
			--local "context=$ctx" --local "dockerfile=$ctx" --opt "build-arg:SOURCE_DATE_EPOCH=$epoch"
			--output "type=oci,dest=$out,name=scale/${name//\//-}") ;;
	esac
}

# measure BUILDER POINT PHASE CTX STATE: one timed, sampled build, recorded in results.jsonl;
# its status is the build's.
measure() {
	local b=$1 name=$2 phase=$3 out=$work/out/$1.tar extra=() argv=()
	local logf=$logs/${name//\//-}-$b-$phase.log
	rm -f "$out"
	[ "$b" != buildkit ] || extra=(-also-pid "$bk_pid")
	build_argv "$b" "$name" "$4" "$out" "$5"
	if "$bin/benchtool" measure -record "$results" -workload "$name" -builder "$b" -phase "$phase" \
		-run 1 -image "oci:$out" "${extra[@]}" -- "${argv[@]}" >"$logf" 2>&1; then
		log "$name $b $phase: $(tail -1 "$results" | grep -o '"seconds":[0-9.]*' | cut -d: -f2) s, peak RSS $(($(tail -1 "$results" | grep -o '"peak_rss":[0-9]*' | cut -d: -f2) >> 20)) MiB"
		rm -f "$out"
	else
		log "$name $b $phase: FAILED, see $logf"
		rm -f "$out"
		return 1
	fi
}

fresh() { umount_under "$1"; rm -rf "$1"; }

free_bytes() { df -B1 --output=avail "$work" | tail -1 | tr -d ' '; }

# run_point POINT DISK DATA: generate the point, then build it with each builder in turn.
run_point() {
	local name=$1 disk=$2 data=$3 dir=$work/p b free state
	free=$(free_bytes)
	if [ "$free" -lt $((3 * disk)) ]; then
		for b in $builders; do
			record_not_built "$name" "$b" cold "skipped: $((free >> 20)) MiB free, the point needs 3 x $((disk >> 20)) MiB"
		done
		return
	fi
	log "$name: generating"
	rm -rf "$dir"
	if ! "$bin/benchtool" scale-workloads "${qflag[@]}" -registry "$registry" -stage-bytes "$stage_bytes" \
		-point "$name" "$dir" >"$logs/${name//\//-}-generate.log" 2>&1; then
		for b in $builders; do record_not_built "$name" "$b" cold "generating the point failed"; done
		rm -rf "$dir"
		return
	fi
	for b in $builders; do
		if [ "$b" = buildkit ] && [ -n "$peer_max_gib" ] && [ "$data" -gt $((peer_max_gib << 30)) ]; then
			record_not_built "$name" "$b" cold "skipped: above --peer-max-gib $peer_max_gib"
			continue
		fi
		state=$work/state/$b
		fresh "$state"
		[ "$b" != buildkit ] || start_buildkitd
		if ! measure "$b" "$name" cold "$dir/ctx" "$state"; then
			# Nothing to rebuild from (and a timed-out buildctl leaves its daemon busy).
			[ ! -d "$dir/change" ] || record_not_built "$name" "$b" change "skipped: the cold build failed"
		elif [ -d "$dir/change" ]; then
			cp -a "$dir/change/." "$dir/ctx/"
			measure "$b" "$name" change "$dir/ctx" "$state" || true
			cp -a "$dir/orig/." "$dir/ctx/"
		fi
		[ "$b" != buildkit ] || stop_buildkitd
		fresh "$state"
	done
	rm -rf "$dir"
}

# measure_unit: one stage's work run on the host three times (the report takes the median),
# for the stages' ideal.
measure_unit() {
	local run
	for run in 1 2 3; do
		"$bin/benchtool" measure -record "$results" -workload stages/unit -builder host -phase unit -run "$run" -- \
			sh -c "'$bin/benchtool' fill -seed 1 -kind random -bytes $stage_bytes - >/dev/null" >/dev/null 2>&1 ||
			log "measuring one stage's work on the host failed"
	done
}

machine() {
	echo "- $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -h | awk '/^Mem:/ { print $2 }') RAM; kernel $(uname -r)"
	echo "- disk: $(df -hT "$work" | awk 'NR == 2 { print $1 ", " $2 ", " $3 " (" $5 " used)" }')"
	echo "- strata built from the work tree at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' plus uncommitted changes')"
	! uses buildkit || echo "- BuildKit v0.34.2 (buildkitd + buildctl, OCI worker on runc), a fresh buildkitd for each point"
}

main() {
	install_deps
	! uses buildkit || build_buildkit
	build_tools
	start_registry
	seed_base
	local points=() line i=0 name disk data
	mapfile -t points < <("$bin/benchtool" scale-workloads "${qflag[@]}" -series "$series" -stage-bytes "$stage_bytes" -list)
	[[ " $series " != *" stages "* ]] || measure_unit
	for line in "${points[@]}"; do
		i=$((i + 1))
		read -r name _ disk data <<<"$line"
		log "[$i/${#points[@]}] $name"
		run_point "$name" "$disk" "$data"
	done
	local stamp out title
	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	out=$cache/results/scale-$stamp
	mkdir -p "$out"
	cp "$results" "$out/results.jsonl"
	cp -r "$logs" "$out/logs"
	title="Strata and BuildKit at scale ($([ "$quick" = 1 ] && echo quick || echo full) mode, $(nproc) CPUs, $stamp)"
	"$bin/benchtool" plot -cpus "$(nproc)" -title "$title" -o "$out/scale.svg" "$results"
	if [ "$quick" = 0 ]; then cp "$out/scale.svg" "$repo/bench/scale.svg"; fi
	{
		echo "Run $stamp: $([ "$quick" = 1 ] && echo quick || echo full) mode, one cold build per point and builder (files: and the one-file change)."
		echo "Command: $cmdline"
		echo
		machine
		echo
		"$bin/benchtool" scale-report -cpus "$(nproc)" "$results"
	} | tee "$out/table.md"
	log "results in $out$([ "$quick" = 1 ] || echo ", plot also in bench/scale.svg")"
}

main
