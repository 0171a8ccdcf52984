"""The generated drift alert, judged by Prometheus' own rule tester (promtool test rules)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from modelship.builders.monitoring import ALERT, build_prometheus_rule


def test_drift_alert_fires_for_its_model_only(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make apt-tools` installs Debian's prometheus package"
    rule = build_prometheus_rule("loans-monitor", "shop", "loans", threshold=0.2, for_="1m", owner=None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    annotations = dict(rule["spec"]["groups"][0]["rules"][0]["annotations"])
    annotations["description"] = annotations["description"].replace('{{ $value | printf "%.3f" }}', "0.300")
    series = 'modelship_drift_score{{namespace="{ns}",model="{m}",feature="{f}",method="psi"}}'
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "30s",
        "tests": [{
            "interval": "30s",
            "input_series": [
                {"series": series.format(ns="shop", m="loans", f="income"), "values": "0.05 0.05 0.3x10"},
                {"series": series.format(ns="shop", m="loans", f="age"), "values": "0.01x12"},
                {"series": series.format(ns="other", m="loans", f="income"), "values": "0.9x12"},
                {"series": series.format(ns="shop", m="prices", f="income"), "values": "0.15x12"},
            ],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": ALERT, "exp_alerts": []},  # above, but not yet for 1m
                {"eval_time": "3m", "alertname": ALERT, "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "namespace": "shop", "model": "loans",
                                   "monitor": "loans-monitor"},
                    "exp_annotations": annotations,
                }]},
            ],
        }],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    res = subprocess.run([promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    check = subprocess.run([promtool, "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
