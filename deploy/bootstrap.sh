#!/usr/bin/env bash
# Bootstraps a federation of Meridian nodes that run on this machine (or
# whose data directories are mounted here): waits until every node is
# healthy, makes every node pin every other one, imports each node's sample
# holdings and runs a sync round, so each node can answer a search across
# all of them.
#
# The docker compose federation runs it once, in a one-shot `bootstrap`
# service of the node image that mounts the three nodes' volumes; the test
# suite (tests/tests/deploy.rs) runs the same script against local nodes.
#
# Every step talks to the nodes through their admin sockets
# (DATA_DIR/admin.sock), so the script needs each node's data directory and
# nothing else: no network, no TLS. It can run again at any time: a pinned
# peer is not pinned twice and a record imported again is unchanged.
#
# Environment:
#   BOOTSTRAP_NODES     required: the nodes, "NODE_ID=DATA_DIR" separated by
#                       spaces, e.g. "polar-dc=/nodes/polar-dc genomics=/nodes/genomics"
#   BOOTSTRAP_SAMPLES   directory of sample holdings, NODE_ID.jsonl each (a
#                       node without a file imports nothing); default
#                       /usr/share/meridian/samples
#   BOOTSTRAP_GROUPS    groups every peer is vouched for in (records with
#                       "visibility": "groups"); default consortium
#   BOOTSTRAP_TIMEOUT   seconds to wait for the nodes to be healthy and for
#                       the sync round to succeed; default 300
#   BOOTSTRAP_MERIDIAN  the meridian binary; default meridian (from PATH)
#
# Exit status: 0 when every node pins every other one, imported its samples
# with no line rejected and synced with every peer; 1 otherwise, with the
# reason on stderr.
set -euo pipefail

readonly samples="${BOOTSTRAP_SAMPLES:-/usr/share/meridian/samples}"
readonly groups="${BOOTSTRAP_GROUPS:-consortium}"
readonly timeout="${BOOTSTRAP_TIMEOUT:-300}"
readonly meridian="${BOOTSTRAP_MERIDIAN:-meridian}"

log() {
	printf 'bootstrap: %s\n' "$*" >&2
}

die() {
	log "error: $*"
	exit 1
}

[[ "$timeout" =~ ^[0-9]+$ ]] || die "BOOTSTRAP_TIMEOUT=$timeout is not a number of seconds"
[[ -n "${BOOTSTRAP_NODES:-}" ]] ||
	die "BOOTSTRAP_NODES is empty; list the nodes as NODE_ID=DATA_DIR separated by spaces"
command -v "$meridian" >/dev/null || die "no meridian binary: $meridian (set BOOTSTRAP_MERIDIAN)"

# Node ids and their data directories, in the order given.
ids=()
declare -A dirs=()
for entry in $BOOTSTRAP_NODES; do
	id="${entry%%=*}"
	dir="${entry#*=}"
	if [[ "$entry" != *=* || -z "$id" || -z "$dir" ]]; then
		die "BOOTSTRAP_NODES: \`$entry\` is not NODE_ID=DATA_DIR"
	fi
	[[ -z "${dirs[$id]:-}" ]] || die "BOOTSTRAP_NODES names $id twice"
	ids+=("$id")
	dirs[$id]="$dir"
done
((${#ids[@]} >= 2)) || die "BOOTSTRAP_NODES names ${#ids[@]} node; a federation needs two or more"

# Runs meridian against node $1's data directory.
on() {
	local id="$1"
	shift
	"$meridian" "$@" --data-dir "${dirs[$id]}"
}

# Prints the value of a string field of compact JSON (`"key":"value"`).
json_string() {
	sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" | head -n 1
}

deadline=$((SECONDS + timeout))

# Waits until node $1 answers on its admin socket and its index has caught
# up with its store (`meridian health`), then checks it is the node named.
wait_healthy() {
	local id="$1" answer actual
	until answer="$(on "$id" health --json 2>&1)"; do
		if ((SECONDS >= deadline)); then
			die "$id is not healthy after ${timeout}s: $answer"
		fi
		sleep 1
	done
	actual="$(json_string node_id <<<"$answer")"
	[[ "$actual" == "$id" ]] ||
		die "${dirs[$id]} holds node \`$actual\`, not $id: fix BOOTSTRAP_NODES"
}

# 1. Every node is up.
for id in "${ids[@]}"; do
	log "waiting for $id (${dirs[$id]}) to be healthy"
	wait_healthy "$id"
done

# 2. Every node pins every other one: each side of a link must pin the
# other, since peers authenticate each other with mutual TLS.
declare -A invites=()
for id in "${ids[@]}"; do
	invites[$id]="$(on "$id" keys show --invite)"
done
for id in "${ids[@]}"; do
	pinned="$(on "$id" trust list --json)"
	for peer in "${ids[@]}"; do
		[[ "$peer" != "$id" ]] || continue
		if grep -q "\"node_id\":\"$peer\"" <<<"$pinned"; then
			log "$id already pins $peer"
			continue
		fi
		on "$id" trust add "${invites[$peer]}" --groups "$groups" >/dev/null ||
			die "$id could not pin $peer"
		log "$id pins $peer (groups: $groups)"
	done
done

# 3. Each node imports its own sample holdings. A rejected line fails the
# bootstrap: the shipped samples must import cleanly.
for id in "${ids[@]}"; do
	file="$samples/$id.jsonl"
	if [[ ! -e "$file" ]]; then
		log "no sample holdings for $id ($file)"
		continue
	fi
	report="$(on "$id" holdings import "$file")" ||
		die "$id rejected lines of $file: $report"
	log "$id imported $file: $report"
done

# 4. A sync round on every node, now: each pulls what the others hold.
# A peer may still be starting its listener; retry until the deadline.
for id in "${ids[@]}"; do
	until report="$(on "$id" sync now 2>&1)"; do
		if ((SECONDS >= deadline)); then
			die "$id could not sync with every peer within ${timeout}s: $report"
		fi
		log "$id: sync round incomplete, retrying: $report"
		sleep 2
	done
	log "$id synced: $(tr '\n' ';' <<<"$report")"
done

# 5. What each node pulled is searchable once its index has caught up.
for id in "${ids[@]}"; do
	wait_healthy "$id"
done

log "done: ${ids[*]} pin each other and hold each other's shared records"
