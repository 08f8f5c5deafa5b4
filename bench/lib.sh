# shellcheck shell=bash disable=SC2154
# Shared by bench/run.sh and bench/regcache.sh (sourced; they set $work, $logs, $registry,
# $cache, and bk_pid="" for the buildkitd functions).

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# umount_under DIR: lazily unmounts whatever a builder left mounted below DIR.
umount_under() {
	local m
	for m in $(findmnt -rn -o TARGET | grep "^$1/" | sort -r || true); do umount -l "$m" 2>/dev/null || true; done
}

start_registry() {
	if curl -fs "http://$registry/v2/" >/dev/null; then
		echo "$(basename "$0"): $registry is taken (another bench run?); pass --port N" >&2
		exit 1
	fi
	mkdir -p "$work/registry"
	cat >"$work/registry.yml" <<-EOF
		version: 0.1
		storage:
		  filesystem:
		    rootdirectory: $work/registry
		http:
		  addr: $registry
	EOF
	docker-registry serve "$work/registry.yml" >"$logs/registry.log" 2>&1 &
	registry_pid=$!
	for _ in $(seq 50); do
		curl -fs "http://$registry/v2/" >/dev/null && return
		sleep 0.1
	done
	echo "$(basename "$0"): registry did not start, see $logs/registry.log" >&2
	exit 1
}


# build_buildkit: buildkitd and buildctl v0.34.2 from the module proxy, static, kept in the cache.
build_buildkit() {
	[ -x "$cache/bin/buildkitd" ] && [ -x "$cache/bin/buildctl" ] && return
	log "building buildkitd and buildctl v0.34.2 (once, into $cache/bin)"
	local src=$cache/buildkit-src
	mkdir -p "$src" "$cache/bin"
	(
		cd "$src" || exit 1
		[ -f go.mod ] || go mod init buildkit-bench >/dev/null 2>&1
		go get github.com/moby/buildkit@v0.34.2 >/dev/null 2>&1
		go build -o "$cache/bin/buildkitd" github.com/moby/buildkit/cmd/buildkitd
		go build -o "$cache/bin/buildctl" github.com/moby/buildkit/cmd/buildctl
	)
}

# start_buildkitd: a buildkitd (OCI worker, runc) on an empty root in $work/bk, its socket
# $work/bk/sock, that reaches $registry over plain HTTP; its pid in bk_pid.
start_buildkitd() {
	local d=$work/bk
	rm -rf "$d" && mkdir -p "$d"
	cat >"$d/buildkitd.toml" <<-EOF
		[registry."$registry"]
		  http = true
		  insecure = true
		[worker.oci]
		  enabled = true
		[worker.containerd]
		  enabled = false
	EOF
	"$cache/bin/buildkitd" --root "$d/root" --addr "unix://$d/sock" --config "$d/buildkitd.toml" >>"$logs/buildkitd.log" 2>&1 &
	bk_pid=$!
	for _ in $(seq 100); do
		"$cache/bin/buildctl" --addr "unix://$d/sock" debug workers >/dev/null 2>&1 && return
		sleep 0.1
	done
	echo "$(basename "$0"): buildkitd did not start, see $logs/buildkitd.log" >&2
	exit 1
}

# stop_buildkitd: stops the daemon, if started, and removes its root.
stop_buildkitd() {
	[ -n "$bk_pid" ] || return 0
	kill "$bk_pid" 2>/dev/null || true
	while kill -0 "$bk_pid" 2>/dev/null; do sleep 0.1; done
	bk_pid=""
	umount_under "$work/bk"
	rm -rf "$work/bk"
}

# install_missing CMD:PACKAGE...: installs the Debian packages whose command is missing, and
# busybox-static when /bin/busybox is not the static one (the bases are made from it).
install_missing() {
	local need=() pair
	for pair in "$@"; do
		command -v "${pair%%:*}" >/dev/null || [[ " ${need[*]} " == *" ${pair#*:} "* ]] || need+=("${pair#*:}")
	done
	file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' || need+=(busybox-static)
	[ ${#need[@]} -eq 0 ] && return
	log "installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}
