#!/usr/bin/env python3
"""Offline checks of the monitoring kit that no packaged validator makes (validate-deploy.sh).

    check-monitoring.py crds --schemas DIR --rest OUT FILE...
        Validates every monitoring.coreos.com object of the FILEs (multi-document YAML) against
        the vendored JSON schemas in DIR (scripts/gen-crd-schemas.py), unknown fields refused;
        writes every other document to OUT for kubernetes-validate, which knows only
        Kubernetes' own kinds.
    check-monitoring.py dashboards --rules OUT FILE...
        Checks that each Grafana dashboard FILE is JSON (a syntax error names file, line and
        column), has a uid, a title and panels, each panel a title, a datasource (uid
        prometheus or loki) and at least one query; writes every PromQL query as a recording
        rule into OUT, so that `promtool check rules OUT` parses them (its errors name the
        dashboard and the panel).
Exits 1 with one line per finding.
"""

import json
import sys
from pathlib import Path

import jsonschema
import yaml


def crds(args):
    schemas_dir = Path(args[args.index("--schemas") + 1])
    rest_path = Path(args[args.index("--rest") + 1])
    files = [a for i, a in enumerate(args) if i not in _option_slots(args, "--schemas", "--rest")]
    schemas = {}
    for path in schemas_dir.glob("*-monitoring-v1.json"):
        schemas[path.name.split("-")[0]] = json.loads(path.read_text())
    findings, rest, checked = [], [], 0
    for name in files:
        try:
            docs = list(yaml.safe_load_all(Path(name).read_text()))
        except yaml.YAMLError as err:
            findings.append(f"{name}: not YAML: {err}")
            continue
        for doc in docs:
            if not doc:
                continue
            if str(doc.get("apiVersion", "")).startswith("monitoring.coreos.com/"):
                kind = str(doc.get("kind", ""))
                schema = schemas.get(kind.lower())
                where = f"{name}: {kind} {doc.get('metadata', {}).get('name', '?')}"
                if doc.get("apiVersion") != "monitoring.coreos.com/v1" or schema is None:
                    findings.append(f"{where}: no schema for {doc.get('apiVersion')} {kind}")
                    continue
                errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc),
                                key=lambda e: list(e.absolute_path))
                for err in errors:
                    path = "/".join(str(p) for p in err.absolute_path)
                    findings.append(f"{where}: at {path or '(root)'}: {err.message}")
                checked += 1
            else:
                rest.append(doc)
    rest_path.write_text(yaml.safe_dump_all(rest, sort_keys=False))
    return findings, f"{checked} prometheus-operator objects valid"


def dashboards(args):
    rules_path = Path(args[args.index("--rules") + 1])
    files = [a for i, a in enumerate(args) if i not in _option_slots(args, "--rules")]
    findings, rules, panels_seen = [], [], 0
    for name in files:
        try:
            board = json.loads(Path(name).read_text())
        except json.JSONDecodeError as err:
            findings.append(f"{name}:{err.lineno}:{err.colno}: not JSON: {err.msg}")
            continue
        for key in ("uid", "title", "panels"):
            if not board.get(key):
                findings.append(f"{name}: no {key}")
        for panel in board.get("panels", []):
            panels_seen += 1
            title = panel.get("title") or f"panel id {panel.get('id')}"
            ds = (panel.get("datasource") or {}).get("uid")
            if ds not in ("prometheus", "loki"):
                findings.append(f"{name}: {title}: datasource uid {ds!r}, expected prometheus or loki")
            targets = panel.get("targets") or []
            if not targets:
                findings.append(f"{name}: {title}: no query")
            for target in targets:
                expr = target.get("expr", "")
                if not expr.strip():
                    findings.append(f"{name}: {title}: empty query {target.get('refId')}")
                elif ds == "prometheus":
                    # One group per query: promtool names the group of an expression it cannot
                    # parse, so its error says which dashboard, panel and query.
                    rules.append({
                        "name": f"{name}: panel {title!r}: query {target.get('refId')}",
                        "rules": [{
                            "record": "dashboard_query",
                            "expr": expr.replace("$__rate_interval", "5m"),
                        }],
                    })
    rules_path.write_text(yaml.safe_dump({"groups": rules}, sort_keys=False, width=1000))
    return findings, f"{len(files)} dashboards, {panels_seen} panels, {len(rules)} PromQL queries"


def _option_slots(args, *options):
    slots = set()
    for option in options:
        i = args.index(option)
        slots.update((i, i + 1))
    return slots


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("crds", "dashboards"):
        print(__doc__, file=sys.stderr)
        return 2
    run = crds if sys.argv[1] == "crds" else dashboards
    findings, summary = run(sys.argv[2:])
    for finding in findings:
        print(finding)
    if findings:
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
