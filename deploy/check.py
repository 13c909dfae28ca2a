#!/usr/bin/env python3
"""Checks that the deploy files agree with each other, where no schema can:
the compose federation, its bootstrap service, the sample holdings, the
Prometheus scrape targets, the Kubernetes kustomization and probes, the
image's health check and the systemd unit. Run by deploy/check.sh (after the
schema validators); exits 1 naming each disagreement.
"""

import json
import pathlib
import re
import sys

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent
METRICS_PORT = "9474"
problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def load(name):
    with open(DEPLOY / name, encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_all(name):
    with open(DEPLOY / name, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def check_compose():
    compose = load("docker-compose.yml")
    services = compose["services"]
    nodes = {
        name: svc
        for name, svc in services.items()
        if "MERIDIAN_NODE_ID" in (svc.get("environment") or {})
    }
    if len(nodes) < 3:
        problem("docker-compose.yml", f"{len(nodes)} nodes, expected three institutions")
    for name, svc in nodes.items():
        env = svc["environment"]
        where = f"docker-compose.yml services.{name}"
        if env["MERIDIAN_NODE_ID"] != name:
            problem(where, f"MERIDIAN_NODE_ID {env['MERIDIAN_NODE_ID']} is not the service name")
        if env.get("MERIDIAN_ENDPOINT") != f"{name}:7400":
            problem(where, "MERIDIAN_ENDPOINT must be SERVICE:7400, the name peers resolve")
        if not env.get("MERIDIAN_METRICS__LISTEN", "").endswith(f":{METRICS_PORT}"):
            problem(where, f"metrics.listen must be on port {METRICS_PORT}")
        for net in (svc.get("networks") or {}):
            spec = svc["networks"][net] if isinstance(svc["networks"], dict) else None
            if spec and ("ipv4_address" in spec or "ipv6_address" in spec):
                problem(where, "fixed container IPs: use MERIDIAN_ENDPOINT and service names")
        test = (svc.get("healthcheck") or {}).get("test", [])
        if test[1:3] != ["meridian", "health"]:
            problem(where, f"health check must run `meridian health`, not {test}")
        ports = [p.split(":")[-1] for p in svc.get("ports", [])]
        if METRICS_PORT not in ports:
            problem(where, f"metrics port {METRICS_PORT} is not published")
        for port in svc.get("ports", []):
            if not port.startswith("127.0.0.1:"):
                problem(where, f"port {port} is published beyond the host's loopback")
        if not (DEPLOY / "samples" / f"{name}.jsonl").is_file():
            problem(where, f"no sample holdings samples/{name}.jsonl")

    boot = services.get("bootstrap")
    if boot is None:
        problem("docker-compose.yml", "no bootstrap service")
        return nodes
    listed = dict(e.split("=", 1) for e in boot["environment"]["BOOTSTRAP_NODES"].split())
    if set(listed) != set(nodes):
        problem("bootstrap", f"BOOTSTRAP_NODES names {sorted(listed)}, the nodes are {sorted(nodes)}")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in boot.get("volumes", [])}
    for name, directory in listed.items():
        node_volume = next(
            (v.split(":")[0] for v in nodes.get(name, {}).get("volumes", []) if v.endswith(":/var/lib/meridian")),
            None,
        )
        if mounts.get(directory) != node_volume:
            problem("bootstrap", f"{directory} is not {name}'s data volume ({node_volume})")
    for name in nodes:
        if (boot.get("depends_on") or {}).get(name, {}).get("condition") != "service_healthy":
            problem("bootstrap", f"does not wait for {name} to be healthy")
    if boot.get("restart", "no") != "no":
        problem("bootstrap", "a one-shot service must not restart")
    return nodes


def check_prometheus(nodes):
    config = load("prometheus/prometheus.yml")
    targets = {
        t
        for job in config["scrape_configs"]
        for group in job.get("static_configs", [])
        for t in group["targets"]
    }
    expected = {f"{name}:{METRICS_PORT}" for name in nodes}
    if targets != expected:
        problem("prometheus/prometheus.yml", f"targets {sorted(targets)}, compose serves {sorted(expected)}")


def check_kubernetes():
    kust = load("kubernetes/kustomization.yaml")
    listed = set(kust["resources"])
    present = {p.name for p in (DEPLOY / "kubernetes").glob("*.yaml")} - {"kustomization.yaml"}
    if listed != present:
        problem("kubernetes/kustomization.yaml", f"resources {sorted(listed)}, files {sorted(present)}")
    for doc in load_all("kubernetes/statefulset.yaml"):
        if doc["kind"] != "StatefulSet":
            continue
        for c in doc["spec"]["template"]["spec"]["containers"]:
            where = f"kubernetes/statefulset.yaml container {c['name']}"
            names = {e["name"] for e in c.get("env", [])}
            if "MERIDIAN_ENDPOINT" not in names:
                problem(where, "no MERIDIAN_ENDPOINT: its invite would name 0.0.0.0")
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                spec = c.get(probe) or {}
                command = (spec.get("exec") or {}).get("command", [])
                if command[:1] != ["meridian"] or "tcpSocket" in spec or "grpc" in spec:
                    problem(where, f"{probe} must exec `meridian`, not {spec}")
            if (c.get("readinessProbe") or {}).get("exec", {}).get("command") != ["meridian", "health"]:
                problem(where, "readiness must be `meridian health`")
            if METRICS_PORT not in {str(p["containerPort"]) for p in c.get("ports", [])}:
                problem(where, f"metrics port {METRICS_PORT} is not declared")
    env = load("kubernetes/configmap.yaml")["data"]
    if not env.get("MERIDIAN_METRICS__LISTEN", "").endswith(f":{METRICS_PORT}"):
        problem("kubernetes/configmap.yaml", "MERIDIAN_METRICS__LISTEN is not on the metrics port")


def check_image():
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    for line in re.findall(r"^FROM\s+(\S+)", text, re.M):
        image = line.split("@")[0]
        tag = image.rsplit(":", 1)[-1] if ":" in image else ""
        if not re.search(r"\d+\.\d+", tag) and "@sha256:" not in line:
            problem("Dockerfile", f"base image {line} is not pinned to an exact version")
    for label in ("title", "description", "licenses", "version", "revision", "created", "source"):
        if f"org.opencontainers.image.{label}=" not in text:
            problem("Dockerfile", f"no OCI label org.opencontainers.image.{label}")
    health = re.search(r"^HEALTHCHECK.*?CMD\s+(\[.*?\])", text, re.M | re.S)
    if not health or json.loads(health.group(1))[-1] != "health":
        problem("Dockerfile", "HEALTHCHECK must run `meridian health`")
    if "deploy/bootstrap.sh" not in text or "deploy/samples/" not in text:
        problem("Dockerfile", "the image must ship the bootstrap script and the samples")
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    if "*.jsonl" in ignore and "!deploy/samples/*.jsonl" not in ignore:
        problem("Dockerfile.dockerignore", "the samples are kept out of the build context")


def check_systemd():
    unit = (DEPLOY / "meridian.service").read_text(encoding="utf-8")
    if not re.search(r"^Type=notify$", unit, re.M):
        problem("meridian.service", "Type=notify expected: the node reports READY=1")
    families = re.search(r"^RestrictAddressFamilies=(.*)$", unit, re.M)
    if families and "AF_UNIX" not in families.group(1):
        problem("meridian.service", "AF_UNIX is needed for the admin and notify sockets")
    sysusers = (DEPLOY / "meridian.sysusers").read_text(encoding="utf-8")
    user = re.search(r"^User=(\S+)$", unit, re.M).group(1)
    if not re.search(rf"^u\s+{re.escape(user)}\s", sysusers, re.M):
        problem("meridian.sysusers", f"does not create the unit's user {user}")


def main():
    nodes = check_compose()
    check_prometheus(nodes)
    check_kubernetes()
    check_image()
    check_systemd()
    for p in problems:
        print(f"deploy/{p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"deploy files agree: {len(nodes)} institutions, scrape targets, kustomization, probes, image, unit")


if __name__ == "__main__":
    main()
