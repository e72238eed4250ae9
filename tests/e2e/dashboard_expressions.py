#!/usr/bin/env python3
"""The PromQL of deploy/grafana's dashboard and deploy/prometheus' alerts.

  dashboard_expressions.py parse REPO_ROOT
      every panel expression parses: they are written, Grafana's variables
      replaced by values of their kind, as recording rules into a rules file
      that `promtool check rules` must accept (promtool has no PromQL parse
      command in every version).
  dashboard_expressions.py names REPO_ROOT SCRAPE
      every metric name the panels, the dashboard's variables and the alert
      rules use is one in SCRAPE (a /metrics body of a curvd that measured
      something), or `up`, which Prometheus' scrape itself makes.
Exits 1 naming what is wrong.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

DASHBOARD = "deploy/grafana/curvd-dashboard.json"
RULES = "deploy/prometheus/curvd_alerts.yml"
# Series Prometheus makes for every target, not curvd.
SCRAPE_MADE = {"up"}
# Grafana's variables, by a value of the kind it substitutes.
GRAFANA_VARIABLES = [
    (re.compile(r"\$__rate_interval|\$__interval|\$__range"), "5m"),
    (re.compile(r"\$\{?\w+\}?"), ".*"),
]
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "atan2", "inf", "nan",
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk",
    "bottomk", "quantile", "count_values", "group",
}


def panel_expressions(dashboard):
    """(panel title, expression) of every target of every panel."""
    out = []
    stack = list(dashboard["panels"])
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def variable_metrics(dashboard):
    """The metric of each label_values(metric, label) variable query."""
    names = []
    for variable in dashboard["templating"]["list"]:
        match = re.match(r"label_values\((\w+),", variable.get("definition", ""))
        if match:
            names.append((f"variable {variable['name']}", match.group(1)))
    return names


def rule_expressions(rules):
    return [(rule.get("alert") or rule["record"], rule["expr"])
            for group in rules["groups"] for rule in group["rules"]]


def with_values(expr):
    for pattern, value in GRAFANA_VARIABLES:
        expr = pattern.sub(value, expr)
    return expr


def metric_names(expr):
    """The metric names an expression selects: identifiers outside strings,
    label matchers, ranges and grouping lists that are neither functions nor
    keywords."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
        " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(\s*\()?", expr):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def load(root):
    with open(os.path.join(root, DASHBOARD)) as f:
        dashboard = json.load(f)
    with open(os.path.join(root, RULES)) as f:
        rules = yaml.safe_load(f)
    return dashboard, rules


def parse(root):
    dashboard, _ = load(root)
    expressions = panel_expressions(dashboard)
    if not expressions:
        return [f"{DASHBOARD} has no panel expressions"]
    group = {"name": "dashboard_panels", "rules": [
        {"record": f"dashboard:panel_{i}", "expr": with_values(expr)}
        for i, (_, expr) in enumerate(expressions)]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump({"groups": [group]}, f)
        path = f.name
    try:
        checked = subprocess.run(["promtool", "check", "rules", path],
                                 capture_output=True, text=True)
    finally:
        os.unlink(path)
    if checked.returncode != 0:
        listing = "\n".join(f"  panel_{i} ({title}): {expr}"
                            for i, (title, expr) in enumerate(expressions))
        return [f"promtool rejects a panel expression:\n{checked.stdout}"
                f"{checked.stderr}\n{listing}"]
    print(f"ok: {len(expressions)} panel expressions parse")
    return []


def names(root, scrape_path):
    dashboard, rules = load(root)
    with open(scrape_path) as f:
        exported = {re.split(r"[{\s]", line, maxsplit=1)[0]
                    for line in f if line.strip() and not line.startswith("#")}
    used = [(where, name)
            for where, expr in panel_expressions(dashboard) + rule_expressions(rules)
            for name in sorted(metric_names(expr))]
    used += variable_metrics(dashboard)
    missing = [f"{where}: {name}" for where, name in used
               if name not in exported and name not in SCRAPE_MADE]
    if missing:
        return ["names that curvd does not export:"] + missing
    print(f"ok: the {len({n for _, n in used})} metric names the dashboard and "
          f"the alerts use are exported")
    return []


def main(argv):
    if len(argv) == 3 and argv[1] == "parse":
        problems = parse(argv[2])
    elif len(argv) == 4 and argv[1] == "names":
        problems = names(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
