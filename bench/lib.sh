# Shared by bench/run.sh and bench/regcache.sh (sourced; they set $work, $logs, $registry).

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

