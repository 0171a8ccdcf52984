"""The generated drift alert, judged by Prometheus' own rule tester (promtool test rules)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from modelship.builders.monitoring import ALERT, build_prometheus_rule


def test_drift_alert_fires_for_its_monitor_only_and_resolves_when_the_scores_go(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make apt-tools` installs Debian's prometheus package"
    rule = build_prometheus_rule("loans-monitor", "shop", "loans", threshold=0.2, for_="1m", owner=None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    annotations = dict(rule["spec"]["groups"][0]["rules"][0]["annotations"])
    annotations["description"] = annotations["description"].replace('{{ $value | printf "%.3f" }}', "0.300")
    series = 'modelship_drift_score{{namespace="{ns}",model="{m}",monitor="{mon}",feature="{f}",method="psi"}}'
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "30s",
        "tests": [{
            "interval": "30s",
            "input_series": [
                # Above the threshold from 1m to 4m; at 4m30s a new model is promoted and the operator
                # drops the monitor's scores until its first verdict on the new reference.
                {"series": series.format(ns="shop", m="loans", mon="loans-monitor", f="income"),
                 "values": "0.05 0.05 0.3x6 stale"},
                {"series": series.format(ns="shop", m="loans", mon="loans-monitor", f="age"),
                 "values": "0.01x8 stale"},
                # Another monitor of the same model (its own rule, its own threshold), other models:
                {"series": series.format(ns="shop", m="loans", mon="strict", f="income"), "values": "0.9x12"},
                {"series": series.format(ns="other", m="loans", mon="loans-monitor", f="income"), "values": "0.9x12"},
                {"series": series.format(ns="shop", m="prices", mon="loans-monitor", f="income"), "values": "0.15x12"},
            ],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": ALERT, "exp_alerts": []},  # above, but not yet for 1m
                {"eval_time": "3m", "alertname": ALERT, "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "namespace": "shop", "model": "loans",
                                   "monitor": "loans-monitor"},
                    "exp_annotations": annotations,
                }]},
                {"eval_time": "5m", "alertname": ALERT, "exp_alerts": []},  # no scores: resolved
            ],
        }],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    res = subprocess.run([promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    check = subprocess.run([promtool, "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
