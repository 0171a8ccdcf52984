"""The scrape configuration users copy (docs/prometheus.md) gives the labels source prometheus queries by."""

from __future__ import annotations

import re

from modelship.builders.common import MODEL_LABEL, REVISION_LABEL
from modelship.builders.monitoring import (
    alertmanager_receiver,
    operator_scrape_config,
    serving_scrape_config,
)
from modelship.logic import prometheus


def meta_name(pod_label: str) -> str:
    """What kubernetes_sd calls a pod label: __meta_kubernetes_pod_label_<name, non-alphanumerics as _>."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", pod_label)


def test_the_labelmap_turns_the_pod_labels_into_the_queried_label_names() -> None:
    relabel = serving_scrape_config()["relabel_configs"]
    labelmap = next(r for r in relabel if r["action"] == "labelmap")
    mapped = {m: re.fullmatch(labelmap["regex"], meta_name(m)) for m in (MODEL_LABEL, REVISION_LABEL)}
    assert {k: m.group(1) if m else None for k, m in mapped.items()} == {
        MODEL_LABEL: prometheus.MODEL_LABEL, REVISION_LABEL: prometheus.REVISION_LABEL}
    assert {"source_labels": ["__meta_kubernetes_namespace"], "target_label": prometheus.NAMESPACE_LABEL} in relabel
    keep = relabel[0]
    assert keep["action"] == "keep" and keep["source_labels"] == [meta_name(REVISION_LABEL)]


def test_options() -> None:
    config = serving_scrape_config(kubeconfig_file="/k", namespaces=["a"], scrape_interval="5s")
    assert config["kubernetes_sd_configs"] == [{"role": "pod", "kubeconfig_file": "/k", "namespaces": {"names": ["a"]}}]
    assert config["scrape_interval"] == "5s"
    assert operator_scrape_config(["op:8080"])["honor_labels"] is True
    assert alertmanager_receiver("http://op:8082/alerts", token_file="/t") == {
        "name": "modelship", "webhook_configs": [{
            "url": "http://op:8082/alerts", "send_resolved": True,
            "http_config": {"authorization": {"credentials_file": "/t"}}}]}
