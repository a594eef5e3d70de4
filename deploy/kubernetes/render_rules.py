"""Write prometheusrule.yaml from deploy/alerts.yml, so the cluster's alerts are the ones promtool tests.

    python deploy/kubernetes/render_rules.py          # rewrite prometheusrule.yaml
    python deploy/kubernetes/render_rules.py --check  # exit 1 if it is out of date

tests/deploy/test_kubernetes.py fails when the checked-in file differs from what this renders.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ALERTS = HERE.parent / "alerts.yml"
OUT = HERE / "prometheusrule.yaml"
HEADER = (
    "# Generated from deploy/alerts.yml by deploy/kubernetes/render_rules.py: edit alerts.yml, then rerun it.\n"
    "# Your Prometheus must select this rule (kube-prometheus-stack: the label its ruleSelector wants, e.g. release).\n"
    "# Runbooks: deploy/README.md, one section per alert.\n"
)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL expressions) as literal blocks, as alerts.yml writes them."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _string)


def manifest(alerts_text: str) -> dict[str, Any]:
    """The PrometheusRule holding alerts.yml's groups, unchanged."""
    groups = yaml.safe_load(alerts_text)["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "anomstream", "labels": {"app.kubernetes.io/part-of": "anomstream"}},
        "spec": {"groups": groups},
    }


def render(alerts_text: str) -> str:
    return HEADER + yaml.dump(manifest(alerts_text), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096)


def main(argv: list[str]) -> int:
    text = render(ALERTS.read_text())
    if "--check" in argv:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run python {Path(__file__).relative_to(HERE.parents[1])}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
