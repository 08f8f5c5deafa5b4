#!/usr/bin/env bash
# Strata against Buildah and a current BuildKit on the same workloads, in one run, and the
# issue's targets: each with its measured value, its limit, and whether it holds.
#
# Installs what it needs (Debian packages, idempotent; buildkitd + buildctl v0.34.2 built once
# into --cache DIR/bin), starts a docker-registry on 127.0.0.1 with temporary storage, seeds it
# with a busybox and a Debian (mmdebstrap minbase) base image, generates the workloads
# deterministically, then, for each run, workload and builder (builders interleaved, their
# order rotated every run): a cold build to an OCI tarball from empty caches, a warm rebuild
# with no change, and a rebuild after one COPY'd file changes. Each build is timed and its
# process tree's RSS sampled every 50 ms by `benchtool measure`. W0, W5 and W6 (fixed costs
# per step) and W3's cold-zstd phase are Strata's own targets: only strata and strata-before
# build them. Then the machine limits: W3's data written, then tar | zstd -3 and tar | pgzip
# (at layer/compress.go's settings), and W2's tarball decompressed. The table gives medians,
# Strata's ratio to BuildKit, and the targets table. Opt-in builders: docker (Debian's 20.10,
# BuildKit of 2020), strata-rootless and strata-chroot (Strata's modes without root; their
# ratio is to strata as root), and strata-before (--baseline BIN: BIN run with strata's
# arguments, with an "after / before" column). See bench/README.md.
#
# Usage: bench/run.sh [--quick] [--runs N] [--workloads "w0 w1 w2 w3 w4 w5 w6"]
#                     [--builders "strata buildah buildkit"] [--baseline BIN] [--port N]
#                     [--cache DIR] [--keep]
#   --builders  any of strata, buildah, buildkit, docker, strata-rootless, strata-chroot
#   --baseline  another strata binary (say, built from the commit before a change), run as the
#               builder strata-before with strata's exact arguments
#   --quick   one run and small sizes (W1 a tenth, W3 64 MiB + 64 MiB, W2 the busybox rootfs)
#   --cache   where the Debian rootfs, buildkit binaries and results are kept
#             (default /var/tmp/strata-bench-cache)
#   --keep    keep the work directory (contexts, outputs, logs) for inspection
set -euo pipefail
# Static binaries, as shipped: the sandbox drops privileges on every thread only without cgo.
export CGO_ENABLED=0
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=bench/lib.sh
. bench/lib.sh

cmdline="bench/run.sh $*"
quick=0 runs="" keep=0 port=5055 epoch=1700000000 baseline=""
workloads="w0 w1 w2 w3 w4 w5 w6" builders="strata buildah buildkit"
cache=/var/tmp/strata-bench-cache
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--runs) runs=$2; shift ;;
	--workloads) workloads=$2; shift ;;
	--builders) builders=$2; shift ;;
	--baseline) baseline=$2; shift ;;
	--port) port=$2; shift ;;
	--cache) cache=$2; shift ;;
	--keep) keep=1 ;;
	*) echo "bench/run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
for b in $builders; do
	case $b in
	strata | buildah | buildkit | docker | strata-rootless | strata-chroot) ;;
	*) echo "bench/run.sh: unknown builder $b (want strata, buildah, buildkit, docker, strata-rootless or strata-chroot)" >&2; exit 2 ;;
	esac
done
if [ -n "$baseline" ]; then
	[ -x "$baseline" ] || { echo "bench/run.sh: --baseline $baseline is not an executable" >&2; exit 2; }
	baseline=$(realpath "$baseline")
	# Next to strata in the rotation, so that both see the same neighbours.
	builders=$(echo " $builders " | sed 's/ strata / strata strata-before /')
	[[ " $builders " == *" strata-before "* ]] || builders="strata-before $builders"
fi
[ -n "$runs" ] || runs=$([ "$quick" = 1 ] && echo 1 || echo 3)
registry=127.0.0.1:$port
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: run as root (buildah, dockerd and Strata's RUN need it)" >&2; exit 1; }

mkdir -p "$cache"
work=$(mktemp -d /var/tmp/strata-bench.XXXXXX)
bin=$work/bin results=$work/results.jsonl logs=$work/logs
mkdir -p "$bin" "$logs"
registry_pid="" dockerd_pid="" bk_pid=""
# The user strata-rootless builds as, and the command prefix that runs as it, with its home
# and a clean environment (set up by setup_rootless).
bench_user=strata-bench bench_uid="" bench_gid="" bench_home="" as_user=()

cleanup() {
	stop_dockerd
	stop_buildkitd
	[ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
	umount_under "$work"
	if [ "$keep" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# uses BUILDER: whether BUILDER is among --builders.
uses() { [[ " $builders " == *" $1 "* ]]; }

# strata_only W: whether W is one of Strata's own fixed-cost workloads, which the peers skip.
strata_only() { [[ " w0 w5 w6 " == *" $1 "* ]]; }

# is_strata BUILDER: strata itself or its baseline (the modes are measured as other builders).
is_strata() { [ "$1" = strata ] || [ "$1" = strata-before ]; }

# install_deps: the Debian packages for the peers, the registry and the bases, if missing;
# slirp4netns for Strata's RUN network, runc for buildkitd's OCI worker, uidmap (newuidmap,
# newgidmap) for strata-rootless.
install_deps() {
	local pairs=(docker-registry:docker-registry
		mmdebstrap:mmdebstrap zstd:zstd gzip:gzip curl:curl slirp4netns:slirp4netns)
	! uses buildah || pairs+=(buildah:buildah)
	! uses docker || pairs+=(dockerd:docker.io)
	! uses buildkit || pairs+=(runc:runc)
	! uses strata-rootless || pairs+=(newuidmap:uidmap newgidmap:uidmap setpriv:util-linux)
	install_missing "${pairs[@]}"
}

# build_tools: strata, the static benchtool (also put in the bases), seedimage, pgzip (W3's
# gzip limit) and, when used, buildkitd and buildctl (once, into the cache).
build_tools() {
	log "building strata, benchtool, seedimage, pgzip"
	go build -o "$bin/strata" ./cmd/strata || log "strata does not build: its builds will be recorded as failed"
	go build -trimpath -ldflags=-s -o "$bin/benchtool" ./bench/benchtool
	go build -o "$bin/seedimage" ./bench/seedimage
	go build -o "$bin/pgzip" ./bench/pgzip
	! uses buildkit || build_buildkit
}

# seed_bases: debian:bookworm (mmdebstrap minbase, cached) and busybox:bench (cmd/mkrootfs),
# each with the static benchtool in /usr/local/bin for the workloads' RUN steps.
seed_bases() {
	local deb=$cache/debian-bookworm-minbase.tar
	if [ ! -s "$deb" ]; then
		log "mmdebstrap --variant=minbase bookworm (cached in $cache)"
		SOURCE_DATE_EPOCH=$epoch mmdebstrap --quiet --variant=minbase --format=tar bookworm "$deb.partial"
		mv "$deb.partial" "$deb"
	fi
	go run ./cmd/mkrootfs -epoch "$epoch" "$work/busybox.tar.gz"
	gzip -dc "$work/busybox.tar.gz" >"$work/busybox.tar"
	log "seeding $registry with debian:bookworm and busybox:bench"
	"$bin/seedimage" -ref "$registry/debian:bookworm" -rootfs "$deb" -cmd bash \
		-add "/usr/local/bin/benchtool=$bin/benchtool"
	"$bin/seedimage" -ref "$registry/busybox:bench" -rootfs "$work/busybox.tar.gz" -cmd sh \
		-add "/usr/local/bin/benchtool=$bin/benchtool"
}

gen_workloads() {
	local rootfs=$cache/debian-bookworm-minbase.tar flags=()
	if [ "$quick" = 1 ]; then rootfs=$work/busybox.tar flags=(-quick); fi
	log "generating workloads"
	"$bin/benchtool" workloads "${flags[@]}" -registry "$registry" -rootfs "$rootfs" "$work/w"
}

# has_subids FILE: whether the bench user has a range in /etc/subuid or /etc/subgid.
has_subids() { grep -Eq "^($bench_user|$bench_uid):" "$1" 2>/dev/null; }

# setup_rootless: the unprivileged user strata-rootless builds as (created if missing, with
# subordinate IDs if it has none), and what it needs to reach: the work directory (mktemp's
# is 0700 root) and the binaries traversable, the generated contexts readable, and
# /dev/net/tun openable for RUN's default network. Its state and output directories are its
# own (rootless_dirs).
setup_rootless() {
	if ! id "$bench_user" >/dev/null 2>&1; then
		log "creating the user $bench_user for strata-rootless"
		useradd -m -s /bin/sh "$bench_user"
	fi
	bench_uid=$(id -u "$bench_user") bench_gid=$(id -g "$bench_user")
	bench_home=$(getent passwd "$bench_user" | cut -d: -f6)
	# setpriv execs env, which execs the command: no process of theirs stays in between.
	as_user=(setpriv --reuid="$bench_uid" --regid="$bench_gid" --init-groups
		env -i HOME="$bench_home" USER="$bench_user" LOGNAME="$bench_user"
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
	if ! has_subids /etc/subuid || ! has_subids /etc/subgid; then
		log "giving $bench_user the subordinate IDs 400000-465535"
		usermod --add-subuids 400000-465535 --add-subgids 400000-465535 "$bench_user"
	fi
	chmod 0755 "$work" "$bin"
	[ ! -e "$bin/strata" ] || chmod a+rx "$bin/strata"
	chmod -R a+rX "$work/w"
	mkdir -p "$work/state" "$work/out"
	chmod 0755 "$work/state" "$work/out"
	if [ ! -c /dev/net/tun ]; then
		log "no /dev/net/tun: strata-rootless's RUN steps on the default network will fail (modprobe tun)"
	elif ! "${as_user[@]}" test -r /dev/net/tun -a -w /dev/net/tun; then
		log "chmod 0666 /dev/net/tun (Debian's default) so that $bench_user's RUN steps get a network"
		chmod 0666 /dev/net/tun
	fi
}

# rootless_dirs W: the bench user's own, empty state directory for W and its output directory.
rootless_dirs() {
	local state=$work/state/strata-rootless-$1 out=$work/out/strata-rootless
	mkdir -p "$state" "$out"
	chown "$bench_uid:$bench_gid" "$state" "$out"
}

start_dockerd() {
	local d=$work/docker
	mkdir -p "$d"
	dockerd -H "unix://$d/docker.sock" --data-root "$d/data" --exec-root "$d/exec" \
		--pidfile "$d/docker.pid" --storage-driver overlay2 --bridge none --iptables=false \
		--ip6tables=false --insecure-registry "$registry" >>"$logs/dockerd.log" 2>&1 &
	dockerd_pid=$!
	for _ in $(seq 100); do
		docker_cli info >/dev/null 2>&1 && return
		sleep 0.2
	done
	echo "bench/run.sh: dockerd did not start, see $logs/dockerd.log" >&2
	exit 1
}

stop_dockerd() {
	[ -n "$dockerd_pid" ] || return 0
	kill "$dockerd_pid" 2>/dev/null || true
	while kill -0 "$dockerd_pid" 2>/dev/null; do sleep 0.2; done
	dockerd_pid=""
	umount_under "$work/docker"
	rm -rf "$work/docker"
}

# docker_cli: Debian's docker client (a newer one elsewhere on PATH may want buildx).
docker_cli() { DOCKER_HOST="unix://$work/docker/docker.sock" DOCKER_BUILDKIT=1 /usr/bin/docker "$@"; }

# build_argv BUILDER W OUT PHASE: sets argv to the command that builds W's context into the
# tarball OUT (for buildah and docker, build and export in one shell, timed together).
build_argv() {
	local b=$1 w=$2 out=$3 phase=$4 ctx=$work/w/$2/ctx state=$work/state/$1-$2
	local strata=("$bin/strata" build --root "$state" -t "bench/$w" -o "type=oci,dest=$out"
		--source-date-epoch "$epoch" --insecure-registry "$registry" --progress plain)
	[ "$phase" != cold-zstd ] || strata+=(--compression zstd)
	case $b in
	strata)
		argv=("${strata[@]}" "$ctx") ;;
	strata-before)
		argv=("$baseline" "${strata[@]:1}" "$ctx") ;;
	strata-chroot)
		argv=("${strata[@]}" --isolation=chroot "$ctx") ;;
	strata-rootless)
		# The measured tree is strata's (as_user execs it), with the child it re-executes
		# itself as in the user namespace.
		argv=("${as_user[@]}" "${strata[@]}" "$ctx") ;;
	buildah)
		local g="buildah --root $state/root --runroot $state/run --storage-driver overlay"
		argv=(sh -c "$g build --isolation chroot --layers --tls-verify=false --timestamp $epoch -t bench/$w $ctx && $g push bench/$w oci-archive:$out") ;;
	buildkit)
		argv=("$cache/bin/buildctl" --addr "unix://$work/bk/sock" build --progress plain
			--frontend dockerfile.v0 --local "context=$ctx" --local "dockerfile=$ctx"
			--opt "build-arg:SOURCE_DATE_EPOCH=$epoch" --output "type=oci,dest=$out") ;;
	docker)
		argv=(env "DOCKER_HOST=unix://$work/docker/docker.sock" DOCKER_BUILDKIT=1 sh -c
			"/usr/bin/docker build --network host --build-arg SOURCE_DATE_EPOCH=$epoch -t bench/$w $ctx && /usr/bin/docker save -o $out bench/$w") ;;
	esac
}

# measure BUILDER W PHASE RUN: one timed, sampled build, recorded in results.jsonl.
measure() {
	local b=$1 w=$2 phase=$3 run=$4 out=$work/out/$1-$2.tar kind=oci extra=() argv=()
	[ "$b" != strata-rootless ] || out=$work/out/strata-rootless/$1-$2.tar
	local logf=$logs/$w-$b-$phase-$run.log
	mkdir -p "$work/out"
	rm -f "$out"
	if [ "$b" = docker ]; then kind=docker extra=(-also-pid "$dockerd_pid"); fi
	[ "$b" != buildkit ] || extra=(-also-pid "$bk_pid")
	build_argv "$b" "$w" "$out" "$phase"
	# Untimed: the previous build's dirty pages reach the disk first, so this build does not
	# pay for another builder's writeback (with ext4's ordered journal a file create can wait
	# behind it: W1's base extraction took 2.5 s right after a sync and 5-7 s after BuildKit's
	# W3 in the same run).
	sync
	if "$bin/benchtool" measure -record "$results" -workload "$w" -builder "$b" -phase "$phase" \
		-run "$run" -image "$kind:$out" "${extra[@]}" -- "${argv[@]}" >"$logf" 2>&1; then
		log "$w $b $phase run $run: $(tail -1 "$results" | grep -o '"seconds":[0-9.]*' | cut -d: -f2) s"
	else
		log "$w $b $phase run $run: FAILED, see $logf"
	fi
}

# clear_state BUILDER W: drops the builder's caches (for docker and buildkit: the daemon and
# its root; strata-rootless's, owned by the bench user's subordinate IDs, root removes all the
# same).
clear_state() {
	umount_under "$work/state/$1-$2"
	rm -rf "$work/state/$1-$2"
	[ "$1" != docker ] || stop_dockerd
	[ "$1" != buildkit ] || stop_buildkitd
}

# apply W DIR: copy the workload's orig/ or change/ files over its context.
apply() { [ ! -d "$work/w/$1/$2" ] || cp -a "$work/w/$1/$2/." "$work/w/$1/ctx/"; }

# bench_one BUILDER W RUN: cold, warm, and (where W has a COPY'd file to change) change;
# for W3 and Strata, then cold-zstd (an empty store again). The fixed-cost workloads W0, W5
# and W6 are Strata's only, cold only.
bench_one() {
	local b=$1 w=$2 run=$3
	if strata_only "$w"; then
		is_strata "$b" || return 0
		clear_state "$b" "$w"
		measure "$b" "$w" cold "$run"
		clear_state "$b" "$w"
		return
	fi
	apply "$w" orig
	clear_state "$b" "$w"
	[ "$b" != docker ] || start_dockerd
	[ "$b" != buildkit ] || start_buildkitd
	[ "$b" != strata-rootless ] || rootless_dirs "$w"
	measure "$b" "$w" cold "$run"
	measure "$b" "$w" warm "$run"
	if [ -d "$work/w/$w/change" ]; then
		apply "$w" change
		measure "$b" "$w" change "$run"
		apply "$w" orig
	fi
	if [ "$w" = w3 ] && is_strata "$b"; then
		clear_state "$b" "$w"
		measure "$b" "$w" cold-zstd "$run"
	fi
	clear_state "$b" "$w"
}

# limits: each $runs times, W3's data written once (fill), then tar -c of it alone, through
# gzip -1, zstd -3 and pgzip (layer/compress.go's level, block size and blocks at once); and
# W2's tarball decompressed once. Each is its own record (builder = the limit's id); the
# report sums fill and tar | compress for W3's targets.
limits() {
	local d=$work/limits n run ref
	for run in $(seq "$runs"); do
		if [[ " $workloads " == *" w3 "* ]]; then
			n=$(grep -o 'bytes [0-9]*' "$work/w/w3/ctx/Dockerfile" | head -1 | cut -d' ' -f2)
			rm -rf "$d" && mkdir -p "$d/data"
			limit w3 fill "$run" "'$bin/benchtool' fill -seed 3 -kind random -bytes $n '$d/data/random.bin' && '$bin/benchtool' fill -kind zero -bytes $n '$d/data/zeros.bin'"
			for ref in "tar:cat" "tar-gzip1:gzip -1" "tar-zstd3:zstd -3 -q" "tar-pgzip:'$bin/pgzip' -settings '$repo/layer/compress.go'"; do
				limit w3 "${ref%%:*}" "$run" "tar -C '$d' -cf - data | ${ref#*:} >/dev/null"
			done
			rm -rf "$d"
		fi
		if [[ " $workloads " == *" w2 "* ]]; then
			apply w2 orig
			limit w2 gunzip "$run" "gzip -dc '$work/w/w2/ctx/rootfs.tar.gz' >/dev/null"
		fi
	done
}

# limit W ID RUN SCRIPT: one timed run of the shell SCRIPT, recorded as W's limit ID; a
# failure is recorded (and reported), not fatal.
limit() {
	local logf=$logs/$1-limit-$2-$3.log
	if "$bin/benchtool" measure -record "$results" -workload "$1" -builder "$2" -phase limit -run "$3" -- \
		bash -o pipefail -c "$4" >"$logf" 2>&1; then
		log "$1 limit $2 run $3: $(tail -1 "$results" | grep -o '"seconds":[0-9.]*' | cut -d: -f2) s"
	else
		log "$1 limit $2 run $3: FAILED, see $logf"
	fi
}

machine() {
	echo "- $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -h | awk '/^Mem:/ { print $2 }') RAM, no swap: $(free -h | awk '/^Swap:/ { print $2 }')"
	echo "- kernel $(uname -r); $(. /etc/os-release && echo "$PRETTY_NAME")"
	echo "- disk: $(df -hT "$work" | awk 'NR == 2 { print $1 ", " $2 ", " $3 " (" $5 " used)" }')"
	local tools=()
	! uses buildah || tools+=("$(buildah --version)")
	# buildctl --version says v0.0.0+unknown when built with go build: the module's version is right.
	! uses buildkit || tools+=("buildkitd + buildctl $(go version -m "$cache/bin/buildctl" | awk '$1 == "mod" { print $3 }') (OCI worker, $(runc --version | head -1))")
	! uses docker || tools+=("$(dockerd --version)")
	tools+=("$(go version)")
	local line
	line=$(printf '%s; ' "${tools[@]}")
	echo "- ${line%; }"
	echo "- W3's pgzip limit at layer/compress.go's settings: $("$bin/pgzip" -settings layer/compress.go -print)"
	[ -z "$baseline" ] || echo "- strata-before: $baseline"
	echo "- strata built from the work tree at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' plus uncommitted changes')"
	if uses strata-rootless; then
		echo "- strata-rootless as $bench_user (uid $bench_uid), subordinate IDs $(grep -E "^($bench_user|$bench_uid):" /etc/subuid | head -1 | cut -d: -f2-) (uid) mapped by $(dpkg-query -W -f='uidmap ${Version}' uidmap 2>/dev/null || echo newuidmap)"
	fi
}

main() {
	install_deps
	build_tools
	start_registry
	seed_bases
	gen_workloads
	! uses strata-rootless || setup_rootless
	local run w b order
	read -r -a order <<<"$builders"
	for run in $(seq "$runs"); do
		for w in $workloads; do
			for b in "${order[@]}"; do bench_one "$b" "$w" "$run"; done
		done
		order=("${order[@]:1}" "${order[0]}")
	done
	limits
	local stamp out
	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	out=$cache/results/$stamp
	mkdir -p "$out"
	cp "$results" "$out/results.jsonl"
	cp -r "$logs" "$out/logs"
	{
		echo "Run $stamp: $([ "$quick" = 1 ] && echo quick || echo full) mode, $runs run(s), medians."
		echo "Command: $cmdline"
		echo
		machine
		echo
		"$bin/benchtool" report "$results"
	} | tee "$out/table.md"
	log "results in $out"
}

main
