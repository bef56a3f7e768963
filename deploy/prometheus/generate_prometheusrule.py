"""Write the Prometheus Operator's PrometheusRule from deploy/prometheus/rules/leadflow.rules.yml.

The rules file is the one source of truth. Its `groups:` are copied verbatim (comments included)
under the PrometheusRule's `spec:`, so spec.groups is exactly the rules file's groups:

    python3 deploy/prometheus/generate_prometheusrule.py          # rewrite the PrometheusRule
    python3 deploy/prometheus/generate_prometheusrule.py --check  # exit 1 if it is out of date

tests/deploy/test_observability.py fails when the committed PrometheusRule is stale. Standard
library only, so it runs with any Python 3.
"""
import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RULES = HERE / "rules" / "leadflow.rules.yml"
OUTPUT = REPO / "deploy" / "k8s" / "components" / "prometheus-operator" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/rules/leadflow.rules.yml by
# deploy/prometheus/generate_prometheusrule.py - do not edit: change the rules file and run
#   python3 deploy/prometheus/generate_prometheusrule.py
# The label the Prometheus resource's ruleSelector matches (release: prometheus by default) is
# set by this component's kustomization.yaml.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: leadflow
  labels:
    app.kubernetes.io/name: leadflow
    app.kubernetes.io/part-of: leadflow
    app.kubernetes.io/component: monitoring
spec:
"""


def render(rules_text: str) -> str:
    """The PrometheusRule: HEADER, then the rules file from `groups:` on, indented under spec."""
    lines = rules_text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    except StopIteration:
        raise SystemExit(f"{RULES}: no top-level `groups:` key") from None
    body = [("  " + line) if line.strip() else "" for line in lines[start:]]
    return HEADER + "\n".join(body).rstrip("\n") + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the PrometheusRule is out of date")
    args = parser.parse_args(argv)
    wanted = render(RULES.read_text(encoding="utf-8"))
    current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else None
    if args.check:
        if current != wanted:
            print(f"{OUTPUT.relative_to(REPO)} is out of date: run python3 {Path(__file__).relative_to(REPO)}",
                  file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        OUTPUT.write_text(wanted, encoding="utf-8")
        print(f"wrote {OUTPUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
