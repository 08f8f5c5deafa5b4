#!/usr/bin/env bash
# The CI bench of the registry cache: W1 built on "fresh machines" (an empty store or an empty
# BuildKit daemon every time) that import the cache a first machine exported to a registry,
# against BuildKit doing the same with its registry cache.
#
# For each builder and run: machine A builds W1 cold, exports its cache (mode=max) and pushes
# the image; A rebuilds with nothing changed from its local cache (the "local warm" baseline);
# then a fresh machine imports the cache and pushes the image unchanged ("fresh, unchanged"),
# and another one after one COPY'd file changed ("fresh, one file changed"). Every build pushes
# to the same registry, as a CI pipeline does. Timings include the cache import and, for the
# fresh builds, the push; BuildKit's daemon is started before its timer.
#
# The peer is a current BuildKit (buildkitd + buildctl v0.34.2, OCI worker on runc), built
# from the Go module proxy into --cache DIR/bin when missing. Debian's buildah 1.28 has no
# --cache-to/--cache-from, so it is not in this bench.
#
# Usage: bench/regcache.sh [--quick] [--runs N] [--port N] [--cache DIR] [--keep]
set -euo pipefail
export CGO_ENABLED=0
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
cmdline="bench/regcache.sh $*"
quick=0 runs="" keep=0 port=5056 epoch=1700000000
cache=/var/tmp/strata-bench-cache
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--runs) runs=$2; shift ;;
	--port) port=$2; shift ;;
	--cache) cache=$2; shift ;;
	--keep) keep=1 ;;
	*) echo "bench/regcache.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[ -n "$runs" ] || runs=$([ "$quick" = 1 ] && echo 1 || echo 3)
registry=127.0.0.1:$port
[ "$(id -u)" = 0 ] || { echo "bench/regcache.sh: run as root" >&2; exit 1; }

mkdir -p "$cache/bin"
work=$(mktemp -d /var/tmp/strata-regcache.XXXXXX)
bin=$work/bin results=$work/results.jsonl logs=$work/logs
mkdir -p "$bin" "$logs"
registry_pid="" bk_pid=""

cleanup() {
	stop_buildkitd
	[ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
	umount_under "$work"
	if [ "$keep" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

install_deps() { install_missing docker-registry:docker-registry mmdebstrap:mmdebstrap runc:runc curl:curl; }

build_tools() {
	log "building strata, benchtool, seedimage"
	go build -o "$bin/strata" ./cmd/strata
	go build -trimpath -ldflags=-s -o "$bin/benchtool" ./bench/benchtool
	go build -o "$bin/seedimage" ./bench/seedimage
}

seed_and_generate() {
	local deb=$cache/debian-bookworm-minbase.tar rootfs flags=()
	if [ ! -s "$deb" ]; then
		log "mmdebstrap --variant=minbase bookworm (cached in $cache)"
		SOURCE_DATE_EPOCH=$epoch mmdebstrap --quiet --variant=minbase --format=tar bookworm "$deb.partial"
		mv "$deb.partial" "$deb"
	fi
	log "seeding $registry with debian:bookworm"
	"$bin/seedimage" -ref "$registry/debian:bookworm" -rootfs "$deb" -cmd bash \
		-add "/usr/local/bin/benchtool=$bin/benchtool"
	rootfs=$deb
	if [ "$quick" = 1 ]; then
		go run ./cmd/mkrootfs -epoch "$epoch" "$work/busybox.tar.gz"
		gzip -dc "$work/busybox.tar.gz" >"$work/busybox.tar"
		rootfs=$work/busybox.tar flags=(-quick)
	fi
	"$bin/benchtool" workloads "${flags[@]}" -registry "$registry" -rootfs "$rootfs" "$work/w"
}

# argv_for BUILDER STATE TAG FROM TO: the command that builds W1 and pushes it as TAG, importing
# the cache when FROM=1 and exporting it (mode=max) when TO=1.
argv_for() {
	local b=$1 state=$2 tag=$3 from=$4 to=$5 ctx=$work/w/w1/ctx
	local ref=$registry/cache/$b:w1
	case $b in
	strata)
		argv=("$bin/strata" build --root "$state" --source-date-epoch "$epoch" --progress plain -t "$registry/app/$b:$tag" --push)
		[ "$from" = 0 ] || argv+=(--cache-from "type=registry,ref=$ref")
		[ "$to" = 0 ] || argv+=(--cache-to "type=registry,ref=$ref,mode=max")
		argv+=("$ctx") ;;
	buildkit)
		argv=("$cache/bin/buildctl" --addr "unix://$work/bk/sock" build --progress plain --frontend dockerfile.v0
			--local "context=$ctx" --local "dockerfile=$ctx" --opt "build-arg:SOURCE_DATE_EPOCH=$epoch"
			--output "type=image,name=$registry/app/$b:$tag,push=true,registry.insecure=true")
		[ "$from" = 0 ] || argv+=(--import-cache "type=registry,ref=$ref,registry.insecure=true")
		[ "$to" = 0 ] || argv+=(--export-cache "type=registry,ref=$ref,mode=max,registry.insecure=true") ;;
	esac
}

# measure BUILDER PHASE RUN STATE TAG FROM TO
measure() {
	local b=$1 phase=$2 run=$3 argv=()
	argv_for "$b" "$4" "$5" "$6" "$7"
	local logf=$logs/$b-$phase-$run.log extra=()
	[ "$b" != buildkit ] || extra=(-also-pid "$bk_pid")
	if "$bin/benchtool" measure -record "$results" -workload w1 -builder "$b" -phase "$phase" -run "$run" \
		"${extra[@]}" -- "${argv[@]}" >"$logf" 2>&1; then
		log "$b $phase run $run: $(tail -1 "$results" | grep -o '"seconds":[0-9.]*' | cut -d: -f2) s"
	else
		log "$b $phase run $run: FAILED, see $logf"
	fi
}

apply() { [ ! -d "$work/w/w1/$1" ] || cp -a "$work/w/w1/$1/." "$work/w/w1/ctx/"; }

fresh() { umount_under "$1"; rm -rf "$1"; }

bench_builder() {
	local b=$1 run=$2 a=$work/state/$1-a f=$work/state/$1-fresh
	apply orig
	fresh "$a"
	[ "$b" != strata ] || true
	[ "$b" != buildkit ] || start_buildkitd
	measure "$b" "cold, export" "$run" "$a" "a$run" 0 1
	measure "$b" "local warm" "$run" "$a" "a$run" 0 0
	[ "$b" != buildkit ] || stop_buildkitd
	fresh "$f"
	[ "$b" != buildkit ] || start_buildkitd
	measure "$b" "fresh, unchanged" "$run" "$f" "b$run" 1 0
	[ "$b" != buildkit ] || stop_buildkitd
	fresh "$f"
	apply change
	[ "$b" != buildkit ] || start_buildkitd
	measure "$b" "fresh, one file changed" "$run" "$f" "c$run" 1 0
	[ "$b" != buildkit ] || stop_buildkitd
	apply orig
	fresh "$f"
	fresh "$a"
}

# table: medians by builder and phase, and Strata's ratio to BuildKit and to its own local warm.
table() {
	python3 - "$results" <<-'EOF'
		import json, statistics, sys
		recs = [json.loads(l) for l in open(sys.argv[1])]
		phases = ["cold, export", "local warm", "fresh, unchanged", "fresh, one file changed"]
		med = {}
		for r in recs:
		    if r.get("error"):
		        continue
		    med.setdefault((r["builder"], r["phase"]), []).append(r["seconds"])
		m = lambda b, p: statistics.median(med[(b, p)]) if (b, p) in med else None
		print("| phase | strata (s) | buildkit (s) | strata / buildkit | strata / its local warm |")
		print("|---|--:|--:|--:|--:|")
		for p in phases:
		    s, k, w = m("strata", p), m("buildkit", p), m("strata", "local warm")
		    f = lambda x: "n/a" if x is None else "%.2f" % x
		    ratio = "n/a" if s is None or not k else "%.2fx" % (s / k)
		    own = "n/a" if s is None or not w or p == "local warm" else "%.1fx" % (s / w)
		    print(f"| {p} | {f(s)} | {f(k)} | {ratio} | {own} |")
		for r in recs:
		    if r.get("error"):
		        print(f"\nfailed: {r['builder']} {r['phase']} run {r['run']}: {r['error']}")
	EOF
}

main() {
	install_deps
	build_buildkit
	build_tools
	start_registry
	seed_and_generate
	local run
	for run in $(seq "$runs"); do
		for b in strata buildkit; do bench_builder "$b" "$run"; done
	done
	local stamp out
	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	out=$cache/results/regcache-$stamp
	mkdir -p "$out"
	cp "$results" "$out/results.jsonl"
	cp -r "$logs" "$out/logs"
	{
		echo "Run $stamp: $([ "$quick" = 1 ] && echo quick || echo full) mode, $runs run(s), medians, W1 pushed to a local docker-registry."
		echo "Command: $cmdline"
		echo "- $(nproc) CPUs, kernel $(uname -r); strata at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' plus uncommitted changes'); $("$cache/bin/buildctl" --version)"
		echo
		table
	} | tee "$out/table.md"
	log "results in $out"
}

main
