"""Shared by the ground-truth tests: the loan data, a trained model's predictions, and a prediction log."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd

from modelship.api.trainingjob import TrainingJobSpec
from modelship.demo import data
from modelship_runtime.artifacts.metadata import Metadata
from modelship_runtime.serving.predlog import PredictionLog, PredictionLogSettings


def frame(n: int, seed: int, shift: data.Shift = data.NO_SHIFT) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data.to_csv(n, seed=seed, shift=shift)))


def loan_spec(uri: str, **dataset: Any) -> TrainingJobSpec:
    return TrainingJobSpec.model_validate({
        "dataset": {"uri": uri, "target": data.TARGET, "categoricalFeatures": list(data.CATEGORICAL), **dataset},
        "candidates": [{"estimator": "LogisticRegression", "params": {"C": [1.0]}}],
        "search": {"strategy": "grid", "cvFolds": 2},
        "metric": "roc_auc",
        "modelRef": {"name": "loans"},
    })


@dataclass
class Loans:
    uri: str
    metadata: Metadata
    session: ort.InferenceSession

    def predict(self, rows: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(feed, outputs) as the server has them: one [N, 1] input per feature."""
        feed: dict[str, np.ndarray] = {}
        for f in self.metadata.features:
            col = rows[f.name]
            if f.dtype == "string":
                feed[f.name] = col.fillna("").astype(str).to_numpy(dtype=object).reshape(-1, 1)
            else:
                feed[f.name] = col.to_numpy(dtype=np.float64).reshape(-1, 1)
        names = [o.name for o in self.metadata.outputs]
        return feed, dict(zip(names, self.session.run(names, feed), strict=True))


def write_log(root: Path, loans: Loans, rows: pd.DataFrame, ids: list[str], revision: str,
              batch: int = 50) -> None:
    """Log ``rows`` as the server would, through the server's own writer, then flush."""
    settings = PredictionLogSettings(uri=root.as_uri() + "/", flush_seconds=3600, revision=revision,
                                     segment_rows=10_000)
    plog = PredictionLog("loans", loans.metadata.model_version, loans.metadata, settings)
    try:
        for start in range(0, len(rows), batch):
            part = rows.iloc[start:start + batch]
            feed, outputs = loans.predict(part)
            for i in range(len(part)):
                one_feed = {k: v[i:i + 1] for k, v in feed.items()}
                one_out = {k: v[i:i + 1] for k, v in outputs.items()}
                plog.tap(ids[start + i], one_feed, 1, lambda _: None)(one_out)
    finally:
        plog.close()
