#!/usr/bin/env python3
"""Parses every YAML and JSON file of deploy/ and checks what ties them together, so the
kit cannot drift apart silently. Run by scripts/deploy-check.sh (Debian's python3-yaml).

  python3 scripts/check-deploy-files.py         check
  python3 scripts/check-deploy-files.py --fix   also rewrite deploy/k8s/prometheusrule.yaml
                                                from deploy/prometheus/alerts.yml

Checks: every file parses; each alert has a runbook entry in docs/operations.md and a
firing case in alerts.test.yml; the PrometheusRule carries exactly alerts.yml's groups;
the Kubernetes objects reference each other correctly (selectors, ports, names) and the
grace period covers preStop plus the drain; the dashboard is well formed; compose runs
Redis with AOF; the systemd unit's descriptor limit fits the kernel's fs.nr_open.
"""

import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
errors = []


def check(cond, msg):
    if not cond:
        errors.append(msg)
    return cond


def load_yaml_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


class IndentedDumper(yaml.SafeDumper):
    """Indents sequences under their key, as yamllint's default style wants."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def _str(dumper, s):
    style = "|" if "\n" in s else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)


IndentedDumper.add_representer(str, _str)

PROMETHEUSRULE_HEADER = """# The alert rules of deploy/prometheus/alerts.yml for the Prometheus Operator. Generated
# from that file; scripts/deploy-check.sh fails when the two differ.
"""


def prometheusrule_for(alerts):
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "livetally", "labels": {"app.kubernetes.io/name": "livetally"}},
        "spec": {"groups": alerts["groups"]},
    }


CONFIGMAP_HEADER = """# deploy/livetally.toml as a ConfigMap, mounted by deployment.yaml at /etc/livetally.
# Generated from that file; scripts/deploy-check.sh fails when the two differ
# (`python3 scripts/check-deploy-files.py --fix` rewrites this one).
"""


def configmap_for(toml_text):
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "livetally", "labels": {"app.kubernetes.io/name": "livetally"}},
        "data": {"livetally.toml": toml_text},
    }


def check_config_file(docs, objects, container, fix):
    """The ConfigMap carries deploy/livetally.toml as it is, and the pods read it."""
    toml_text = (DEPLOY / "livetally.toml").read_text(encoding="utf-8")
    wanted = configmap_for(toml_text)
    path = DEPLOY / "k8s/configmap.yaml"
    if fix and docs.get("k8s/configmap.yaml") != [wanted]:
        path.write_text(
            CONFIGMAP_HEADER + yaml.dump(wanted, Dumper=IndentedDumper, sort_keys=False, width=100),
            encoding="utf-8",
        )
        docs["k8s/configmap.yaml"] = [wanted]
        objects["ConfigMap"] = wanted
        print("rewrote deploy/k8s/configmap.yaml")
    check(
        docs.get("k8s/configmap.yaml") == [wanted],
        "deploy/k8s/configmap.yaml differs from deploy/livetally.toml (run with --fix)",
    )
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in objects["Deployment"]["spec"]["template"]["spec"].get("volumes", [])}
    config_volume = next((n for n, v in volumes.items() if v.get("configMap", {}).get("name") == "livetally"), None)
    if check(config_volume in mounts, "the Deployment does not mount the livetally ConfigMap"):
        check(
            env.get("LIVETALLY_CONFIG") == mounts[config_volume] + "/livetally.toml",
            "LIVETALLY_CONFIG does not name livetally.toml in the ConfigMap's mount",
        )
    print("the ConfigMap carries deploy/livetally.toml and the pods read it")


def duration_s(text):
    m = re.fullmatch(r"(\d+)(ms|s|m)?", str(text).strip())
    if not m:
        return None
    n = int(m.group(1))
    return {"ms": n / 1000, "s": n, "m": n * 60, None: n}[m.group(2)]


def main():
    fix = "--fix" in sys.argv[1:]

    # 1. Every YAML and JSON file parses.
    docs = {}
    for path in sorted(DEPLOY.rglob("*")):
        if path.suffix in (".yml", ".yaml") or path.name == ".yamllint":
            try:
                docs[path.relative_to(DEPLOY).as_posix()] = load_yaml_docs(path)
            except yaml.YAMLError as e:
                errors.append(f"{path}: {e}")
        elif path.suffix == ".json":
            try:
                docs[path.relative_to(DEPLOY).as_posix()] = [json.loads(path.read_text(encoding="utf-8"))]
            except json.JSONDecodeError as e:
                errors.append(f"{path}: {e}")
    print(f"parsed {len(docs)} YAML/JSON files under deploy/")
    if errors:
        return

    # 2. Alerts: runbook entries, unit tests, the PrometheusRule copy.
    alerts = docs["prometheus/alerts.yml"][0]
    rules = [r for g in alerts["groups"] for r in g["rules"] if "alert" in r]
    rule_path = DEPLOY / "k8s/prometheusrule.yaml"
    wanted = prometheusrule_for(alerts)
    if fix:
        text = yaml.dump(wanted, Dumper=IndentedDumper, sort_keys=False, width=110, indent=2)
        rule_path.write_text(PROMETHEUSRULE_HEADER + text, encoding="utf-8")
        docs["k8s/prometheusrule.yaml"] = [wanted]
        print("rewrote deploy/k8s/prometheusrule.yaml")
    check(
        docs["k8s/prometheusrule.yaml"] == [wanted],
        "deploy/k8s/prometheusrule.yaml differs from deploy/prometheus/alerts.yml "
        "(run python3 scripts/check-deploy-files.py --fix)",
    )

    operations = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    headings = {
        re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", operations, flags=re.M)
    }
    tests = docs["prometheus/alerts.test.yml"][0]
    firing_cases = {
        t["alertname"] for case in tests["tests"] for t in case.get("alert_rule_test", []) if t.get("exp_alerts")
    }
    for r in rules:
        name = r["alert"]
        ann = r.get("annotations", {})
        check("summary" in ann, f"alert {name}: no summary annotation")
        check(r.get("labels", {}).get("severity") in ("critical", "warning"), f"alert {name}: severity label")
        runbook = ann.get("runbook_url", "")
        anchor = runbook.partition("#")[2]
        check(anchor == name.lower(), f"alert {name}: runbook_url should end in #{name.lower()}")
        check(anchor in headings, f"alert {name}: docs/operations.md has no heading for #{anchor}")
        check(name in firing_cases, f"alert {name}: alerts.test.yml has no case where it fires")
    print(f"{len(rules)} alerts: each has a runbook entry and a firing unit test")

    # 3. Kubernetes objects.
    objects = {}
    for name, ds in docs.items():
        if not name.startswith("k8s/") or name.endswith("values.yaml") or name.endswith("kustomization.yaml"):
            continue
        for d in ds:
            for key in ("apiVersion", "kind", "metadata"):
                check(key in d, f"{name}: no {key}")
            objects[d["kind"]] = d
    kust = docs["k8s/kustomization.yaml"][0]
    listed = set(kust["resources"])
    present = {n.split("/", 1)[1] for n in docs if n.startswith("k8s/")} - {
        "kustomization.yaml",
        "prometheus-adapter-values.yaml",
    }
    check(listed == present, f"kustomization resources {sorted(listed)} != manifests {sorted(present)}")

    dep = objects["Deployment"]
    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    check(
        dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(),
        "Deployment selector does not match its pod labels",
    )
    container = pod["spec"]["containers"][0]
    check(container["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness probe must be /readyz")
    check(container["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness probe must be /healthz")
    env = {e["name"]: e.get("value") for e in container["env"]}
    drain = duration_s(env.get("LIVETALLY_DRAIN_PERIOD", "0")) or 0
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    # preStop, then the drain, then up to 5 s for the last sockets and a final flush.
    check(grace >= pre_stop + drain + 10, f"terminationGracePeriodSeconds {grace} < preStop {pre_stop} + drain {drain} + 10")
    port_names = {p["name"] for p in container["ports"]}
    for kind in ("Service", "PodDisruptionBudget"):
        sel = objects[kind]["spec"]["selector"]
        sel = sel.get("matchLabels", sel)
        check(sel.items() <= pod_labels.items(), f"{kind} selector does not select the Deployment's pods")
    svc = objects["Service"]
    for p in svc["spec"]["ports"]:
        check(p["targetPort"] in port_names, f"Service targetPort {p['targetPort']} is not a container port")
    sm = objects["ServiceMonitor"]
    check(
        sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items(),
        "ServiceMonitor does not select the Service",
    )
    check(
        {e["port"] for e in sm["spec"]["endpoints"]} <= {p["name"] for p in svc["spec"]["ports"]},
        "ServiceMonitor endpoint port is not a Service port name",
    )
    check(svc["metadata"]["name"] == "livetally", "the Service must be named livetally: alerts select job=livetally")
    hpa = objects["HorizontalPodAutoscaler"]
    check(hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"], "HPA targets another Deployment")
    metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    adapter = docs["k8s/prometheus-adapter-values.yaml"][0]
    served = {r["name"]["as"] for r in adapter["rules"]["custom"]}
    check(metric in served, f"HPA metric {metric} is not served by prometheus-adapter-values.yaml")
    print("Kubernetes objects reference each other consistently")
    check_config_file(docs, objects, container, fix)

    # 4. Grafana dashboard and provisioning.
    dash = docs["grafana/dashboards/livetally.json"][0]
    ids = [p["id"] for p in dash["panels"]]
    check(len(ids) == len(set(ids)), "dashboard panel ids are not unique")
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        check(p.get("targets") and all(t.get("expr") for t in p["targets"]), f"panel {p['title']!r}: no query")
    ds_uids = {d["uid"] for d in docs["grafana/provisioning/datasources/prometheus.yml"][0]["datasources"]}
    var = next(v for v in dash["templating"]["list"] if v["type"] == "datasource")
    check(var["current"]["value"] in ds_uids, "dashboard's default datasource is not provisioned")
    print(f"dashboard: {len(ids)} panels")
    ingress = objects.get("Ingress")
    if check(ingress is not None, "deploy/k8s has no Ingress"):
        check(ingress["spec"].get("tls"), "the Ingress has no tls section")
        backends = [
            p["backend"]["service"]
            for r in ingress["spec"]["rules"]
            for p in r["http"]["paths"]
        ]
        check(
            all(b["name"] == svc["metadata"]["name"] for b in backends),
            "the Ingress routes to another Service",
        )
        check(
            all(b["port"].get("name") in {p["name"] for p in svc["spec"]["ports"]} for b in backends),
            "the Ingress backend port is not a Service port name",
        )

    # 5. Compose: Redis with AOF and noeviction; both nodes and the monitoring stack.
    compose = docs["docker-compose.yml"][0]
    services = compose["services"]
    for s in ("redis", "livetally-1", "livetally-2", "nginx", "prometheus", "grafana"):
        check(s in services, f"compose has no service {s}")
    redis_cmd = " ".join(services["redis"]["command"])
    check("--appendonly yes" in redis_cmd, "compose Redis must run with --appendonly yes")
    check("--maxmemory-policy noeviction" in redis_cmd, "compose Redis must run with noeviction")
    # Prometheus has no authentication: never published on all interfaces.
    for port in services["prometheus"].get("ports", []):
        check(
            str(port).startswith("127.0.0.1:") or str(port).startswith("[::1]:"),
            f"compose publishes Prometheus on all interfaces ({port!r}): bind it to 127.0.0.1",
        )
    nginx_conf = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    for needle, what in (
        ("listen 8443 ssl", "a TLS server"),
        ("ssl_certificate /etc/nginx/tls/", "the certificate path"),
        ("return 301 https://", "the redirect to https"),
        ("proxy_set_header Upgrade $http_upgrade", "the WebSocket upgrade headers"),
    ):
        check(needle in nginx_conf, f"deploy/nginx.conf lacks {what} ({needle!r})")
    # The access log never writes a query as it came: `token` values (the operator token
    # of a script's operator socket, join tokens) would sit in every log shipped.
    log_format = re.search(r"^\s*log_format\s+livetally\s+(.*?);", nginx_conf, flags=re.M | re.S)
    check(log_format, "deploy/nginx.conf has no `log_format livetally`")
    if log_format:
        raw = re.findall(r"\$(request|request_uri|args|query_string|arg_token)\b", log_format.group(1))
        check(not raw, f"deploy/nginx.conf's log_format writes ${raw[0] if raw else ''}, which holds token values")
        check("$request_uri_logged" in log_format.group(1), "deploy/nginx.conf's log_format lacks $request_uri_logged")
    # Public reads (a campaign, its stats, a share link) have a zone, applied.
    for needle, what in (
        ("zone=per_client_reads:", "the public reads' zone"),
        ("limit_req zone=per_client_reads ", "the public reads' limit_req"),
    ):
        check(needle in nginx_conf, f"deploy/nginx.conf lacks {what} ({needle!r})")
    nginx_ports = [str(p) for p in services["nginx"].get("ports", [])]
    check("443:8443" in nginx_ports, "compose must publish nginx's TLS port as 443")

    # 6. systemd unit and sysctl notes.
    unit = (DEPLOY / "systemd/livetally.service").read_text(encoding="utf-8")
    nofile = int(re.search(r"^LimitNOFILE=(\d+)$", unit, flags=re.M).group(1))
    check(nofile >= 200_000, "LimitNOFILE must allow 100k+ sockets")
    for key in ("NoNewPrivileges=yes", "ProtectSystem=strict", "DynamicUser=yes", "CapabilityBoundingSet="):
        check(re.search(rf"^{re.escape(key)}$", unit, flags=re.M), f"unit lacks {key}")
    sysctl = {}
    for line in (DEPLOY / "sysctl/90-livetally.conf").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, eq, value = line.partition("=")
            check(eq == "=" and re.fullmatch(r"[a-z0-9_.-]+", key.strip()), f"sysctl line {line!r}")
            sysctl[key.strip()] = value.strip()
    check(int(sysctl["fs.nr_open"]) >= nofile, "fs.nr_open must be at least the unit's LimitNOFILE")
    print("compose, systemd unit and sysctl notes are consistent")


if __name__ == "__main__":
    main()
    if errors:
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print("ok")
