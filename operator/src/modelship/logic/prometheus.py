"""DriftMonitor ``source: prometheus``: the window's live counts from Prometheus' HTTP API.

Instead of scraping the serving pods itself, the operator asks Prometheus for
the counts each reference bin gained over the window, summed over the stable
revision's pods, in one instant query::

    sum by (feature, le, category) (increase(
      {__name__=~"modelship_feature_value_bucket|modelship_feature_category_total",
       namespace="<ns>", modelship_io_revision="<revision>"}[<window>s]))

``increase()`` handles counter resets (pod restarts) and pods that come and
go, as the built-in path does with its snapshots. The label convention is the
one ``prometheus-operator`` gives a ``podTargetLabels`` list and a
``labelmap`` of ``__meta_kubernetes_pod_label_(modelship_io_.+)`` gives a
plain ``kubernetes_sd_configs`` job: the pod labels ``modelship.io/model``
and ``modelship.io/revision`` become ``modelship_io_model`` and
``modelship_io_revision``, and ``namespace`` is the pod's namespace (see
docs/prometheus.md). The answer is turned into the same per-feature counts
on the reference's bins that the pods path produces
(``logic.scrape.drift_counts``).

Pure: the HTTP call is in ``modelship.k8s.prometheus``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import numpy as np

from modelship.logic.scrape import FEATURE_BUCKET, FEATURE_CATEGORY, Sample, drift_counts
from modelship_runtime.artifacts.metadata import CategoricalReference, NumericReference

NAMESPACE_LABEL = "namespace"
MODEL_LABEL = "modelship_io_model"
REVISION_LABEL = "modelship_io_revision"
QUERY_PATH = "/api/v1/query"

Counts = dict[str, np.ndarray[Any, np.dtype[np.float64]]]


class PrometheusError(ValueError):
    """Prometheus could not answer the query usefully; the message says why (for a condition)."""


class NoSeries(PrometheusError):
    """The query matched no series: nothing scraped for the revision, or other label names."""


def no_series_message(namespace: str, revision: str) -> str:
    return (f"Prometheus has no modelship_feature_value_bucket or modelship_feature_category_total series with "
            f"{NAMESPACE_LABEL}={_quote(namespace)}, {REVISION_LABEL}={_quote(revision)} over the window: "
            f"is it scraping the serving pods, keeping their namespace and pod labels (docs/prometheus.md)?")


def _quote(value: str) -> str:
    """A PromQL string literal (double-quoted, Go escaping)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def range_seconds(window: timedelta) -> str:
    """A PromQL range in whole seconds (at least 1 s): ``timedelta(minutes=10)`` → ``600s``."""
    return f"{max(1, int(window.total_seconds()))}s"


def counts_query(namespace: str, revision: str, window: timedelta) -> str:
    """The instant query for the per-bin counts of ``revision``'s pods over ``window``."""
    selector = ", ".join([
        f'__name__=~"{FEATURE_BUCKET}|{FEATURE_CATEGORY}"',
        f"{NAMESPACE_LABEL}={_quote(namespace)}",
        f"{REVISION_LABEL}={_quote(revision)}",
    ])
    return f"sum by (feature, le, category) (increase({{{selector}}}[{range_seconds(window)}]))"


def query_url(base: str) -> str:
    """``http://prometheus:9090`` (or with a path prefix) → its instant-query endpoint."""
    return base.rstrip("/") + QUERY_PATH


def vector_samples(payload: Any) -> list[Sample]:
    """The samples of an instant-query answer (``resultType`` vector), named as the pods name them.

    A series with ``le`` is a bucket of ``modelship_feature_value``, one with
    ``category`` a category counter. Raises :class:`NoSeries` for an empty
    vector, :class:`PrometheusError` for an error answer or one that is not a
    vector.
    """
    if not isinstance(payload, Mapping):
        raise PrometheusError("the answer is not a JSON object")
    if payload.get("status") != "success":
        kind = payload.get("errorType") or "error"
        raise PrometheusError(f"Prometheus answered {kind}: {payload.get('error') or 'no message'}")
    data = payload.get("data")
    if not isinstance(data, Mapping) or data.get("resultType") != "vector":
        got = data.get("resultType") if isinstance(data, Mapping) else None
        raise PrometheusError(f"expected a vector result, got {got!r}")
    result = data.get("result")
    if not isinstance(result, list):
        raise PrometheusError("the vector result is not a list")
    if not result:
        raise NoSeries("the query matched no series")
    samples: list[Sample] = []
    for i, item in enumerate(result):
        try:
            labels = {str(k): str(v) for k, v in dict(item["metric"]).items()}
            value = float(item["value"][1])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            # Not echoed: whoever may edit a DriftMonitor names the URL, and its answer's content
            # must not reach a status they can read (the operator can reach what they cannot).
            raise PrometheusError(f"vector element {i} is malformed ({type(exc).__name__}: it needs "
                                  "\"metric\" and \"value\": [time, number])") from exc
        if np.isnan(value):
            continue
        if labels.get("le"):
            samples.append(Sample(FEATURE_BUCKET, labels, value))
        elif labels.get("category"):
            samples.append(Sample(FEATURE_CATEGORY, labels, value))
    return samples


def window_counts_from_vector(
    payload: Any, references: Mapping[str, NumericReference | CategoricalReference]
) -> Counts:
    """Per feature, the counts over the window on the reference's bins, from an answer to
    :func:`counts_query` (what ``controllers.driftmonitor.windowed`` gives the pods path).

    ``increase()`` extrapolates each series on its own, so cumulative buckets
    may lose their order by a fraction; a bin never goes below zero. Features
    Prometheus does not have (or whose ``le`` set is not the reference's) are
    left out, as for a pod.
    """
    counts = drift_counts(vector_samples(payload), references)
    return {feature: np.clip(c, 0.0, None) for feature, c in counts.items()}
