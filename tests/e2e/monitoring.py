"""A real Prometheus (v3, built from its Go module) and Alertmanager (Debian) on 127.0.0.1, for one test.

Prometheus discovers the serving pods through ``kubernetes_sd_configs`` with
the cluster's kubeconfig (pod IPs are reachable from the host) and scrapes
the operator; Alertmanager posts to the operator's webhook with its bearer
token. The scrape and receiver configuration come from
``modelship.builders.monitoring``, as docs/prometheus.md shows them. Both are
stopped when the context ends, and their data directories are temporary.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelship.builders.monitoring import (
    alertmanager_receiver,
    operator_scrape_config,
    serving_scrape_config,
)
from modelship.demo.stack import free_port, wait_until

ALERTMANAGER = "prometheus-alertmanager"  # Debian's name for the binary (make apt-tools)


def get_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def process(argv: list[str], log: Path, ready_url: str, what: str, timeout: float = 60) -> Iterator[None]:
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            return ready(ready_url)

        wait_until(up, timeout, f"{what} at {ready_url}", interval=0.3)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class Monitoring:
    prometheus: str
    alertmanager: str
    rules_file: Path

    def load_rules(self, groups: list[dict[str, Any]]) -> None:
        """Write the rule groups as Prometheus' rule file and reload it."""
        self.rules_file.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        request = urllib.request.Request(f"{self.prometheus}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass
        names = {g["name"] for g in groups}
        wait_until(lambda: names <= {g["name"] for g in self.rule_groups()}, 20, "the rules to load", interval=0.3)

    def rule_groups(self) -> list[dict[str, Any]]:
        return list(get_json(f"{self.prometheus}/api/v1/rules")["data"]["groups"])

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        return list(get_json(url)["data"]["result"])

    def targets(self) -> list[dict[str, Any]]:
        return list(get_json(f"{self.prometheus}/api/v1/targets?state=active")["data"]["activeTargets"])

    def firing_alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds, active (not silenced or inhibited)."""
        return [a for a in get_json(f"{self.alertmanager}/api/v2/alerts?active=true&silenced=false&inhibited=false")]


def prometheus_config(kubeconfig: Path, namespace: str, operator_target: str, alertmanager_target: str,
                      rules_file: Path, interval: str) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_target]}]}]},
        "rule_files": [str(rules_file)],
        "scrape_configs": [
            serving_scrape_config(kubeconfig_file=str(kubeconfig), namespaces=[namespace]),
            operator_scrape_config([operator_target]),
        ],
    }


def alertmanager_config(webhook_url: str, token: str) -> dict[str, Any]:
    return {
        "route": {"receiver": "modelship", "group_by": ["namespace", "model"],
                  "group_wait": "1s", "group_interval": "2s", "repeat_interval": "10s"},
        "receivers": [alertmanager_receiver(webhook_url, token=token)],
    }


@contextmanager
def monitoring(prometheus_bin: Path, kubeconfig: Path, namespace: str, operator_metrics_target: str,
               operator_webhook_url: str, token: str, workdir: Path, interval: str = "2s",
               prometheus_host: str = "127.0.0.1") -> Iterator[Monitoring]:
    """``prometheus_host``: where Prometheus listens; the node's address when the operator,
    a pod, queries it (``source: prometheus``)."""
    am_bin = shutil.which(ALERTMANAGER)
    if am_bin is None:
        raise RuntimeError(f"{ALERTMANAGER} is not installed: run `make apt-tools`")
    workdir.mkdir(parents=True, exist_ok=True)
    prom_port, am_port = free_port(prometheus_host), free_port()
    rules = workdir / "rules.yml"
    rules.write_text("groups: []\n")
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(
        alertmanager_config(operator_webhook_url, token)))
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config(
        kubeconfig, namespace, operator_metrics_target, f"127.0.0.1:{am_port}", rules, interval)))
    am_url, prom_url = f"http://127.0.0.1:{am_port}", f"http://{prometheus_host}:{prom_port}"
    with ExitStack() as stack:
        stack.enter_context(process([
            am_bin, f"--config.file={workdir / 'alertmanager.yml'}", f"--storage.path={workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=",
        ], workdir / "alertmanager.log", f"{am_url}/-/ready", "Alertmanager"))
        stack.enter_context(process([
            str(prometheus_bin), f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'prom-data'}", f"--web.listen-address={prometheus_host}:{prom_port}",
            "--web.enable-lifecycle",
        ], workdir / "prometheus.log", f"{prom_url}/-/ready", "Prometheus"))
        started = time.monotonic()
        yield Monitoring(prom_url, am_url, rules)
        print(f"Prometheus and Alertmanager ran {time.monotonic() - started:.0f} s; logs under {workdir}")
