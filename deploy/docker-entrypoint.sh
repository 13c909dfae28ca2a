#!/usr/bin/env bash
# Container entrypoint for the meridian image.
#
#   docker-entrypoint.sh [serve]     create the node on first start, then run it
#   docker-entrypoint.sh healthcheck `meridian health`: the node answers and its index has caught up
#   docker-entrypoint.sh CMD ARGS... run CMD (e.g. `meridian status`, `meridian-bootstrap`, `bash`)
#
# First start: if the data directory holds no node yet, run
#   meridian init --node-id "$MERIDIAN_NODE_ID" --listen 0.0.0.0:7400
# Later starts reuse the node in the data directory as it is.
#
# Note: `meridian serve` refuses any MERIDIAN_* variable that names no
# configuration key (service links such as MERIDIAN_PORT=tcp://... excepted),
# so this script reads only keys meridian knows (MERIDIAN_DATA_DIR,
# MERIDIAN_NODE_ID) and defines none.
set -euo pipefail

readonly INIT_LISTEN="0.0.0.0:7400"

data_dir="${MERIDIAN_DATA_DIR:-/var/lib/meridian}"
export MERIDIAN_DATA_DIR="$data_dir"
config="$data_dir/meridian.toml"
key="$data_dir/identity.key"

# Everything the node writes (keys, store, socket) is for its own user only.
umask 0077

log() {
	printf 'docker-entrypoint: %s\n' "$*" >&2
}

die() {
	log "error: $*"
	exit 1
}

# Prints the value of a top-level `KEY = "value"` line of meridian.toml.
config_value() {
	[[ -r "$config" ]] || return 0
	sed -n "s/^$1[[:space:]]*=[[:space:]]*\"\(.*\)\"[[:space:]]*\$/\1/p" "$config" | head -n 1
}

init_if_needed() {
	if [[ -e "$config" && -e "$key" ]]; then
		return 0
	fi
	if [[ -e "$config" || -e "$key" ]]; then
		die "$data_dir holds a partly created node (only one of meridian.toml and identity.key);" \
			"inspect it and remove it (or restore it from a backup) before starting again"
	fi
	if [[ -z "${MERIDIAN_NODE_ID:-}" ]]; then
		die "$data_dir holds no node yet; set MERIDIAN_NODE_ID (e.g. polar-dc) to create one"
	fi
	# The data directory (or its parent, if it does not exist yet) must be
	# writable by this user: a bind mount owned by root is a common mistake.
	local target="$data_dir" uid gid
	[[ -d "$target" ]] || target="$(dirname "$data_dir")"
	if [[ ! -w "$target" ]]; then
		uid="$(id -u)"
		gid="$(id -g)"
		die "$target is not writable by uid $uid; give the volume to this user (chown $uid:$gid)"
	fi
	log "no node in $data_dir: creating node ${MERIDIAN_NODE_ID}"
	meridian init --data-dir "$data_dir" --node-id "$MERIDIAN_NODE_ID" --listen "$INIT_LISTEN"
}

# A node's id is the origin of every record it signed: it never changes.
check_node_id() {
	local stored
	stored="$(config_value node_id)"
	if [[ -n "${MERIDIAN_NODE_ID:-}" && -n "$stored" && "$stored" != "$MERIDIAN_NODE_ID" ]]; then
		die "MERIDIAN_NODE_ID=$MERIDIAN_NODE_ID but $data_dir holds node $stored;" \
			"a node id never changes: set MERIDIAN_NODE_ID=$stored or unset it"
	fi
}

# Over the admin socket: no TLS handshake (which a TCP probe leaves
# half-done, logged as a warning each time) and no network needed.
healthcheck() {
	exec meridian health --data-dir "$data_dir"
}

case "${1:-serve}" in
serve)
	init_if_needed
	check_node_id
	exec meridian serve --data-dir "$data_dir"
	;;
healthcheck)
	healthcheck
	;;
*)
	exec "$@"
	;;
esac
