"""Shared by the trainer tests: synthetic frames, the Run record, small specs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def mixed_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Numeric and categorical features with missing values; a binary target."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    size = rng.choice(["S", "M", "L"], size=n)
    group = rng.choice(["g1", "g2"], size=n)
    logit = 1.5 * a - b + (color == "red") * 1.0 - (size == "L") * 0.5
    y = (logit + rng.normal(scale=0.5, size=n) > 0).astype(int)
    frame = pd.DataFrame({"a": a, "b": b, "color": color, "size": size, "group": group, "label": y})
    frame.loc[rng.random(n) < 0.1, "a"] = np.nan
    frame.loc[rng.random(n) < 0.05, "color"] = None
    return frame


def biased_frame(n: int = 600, seed: int = 1) -> pd.DataFrame:
    """Group g1 gets positives far more often, through a proxy feature."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["g1", "g2"], size=n)
    proxy = (group == "g1") * 2.0 + rng.normal(scale=0.3, size=n)
    x = rng.normal(size=n)
    y = ((proxy + 0.3 * x + rng.normal(scale=0.3, size=n)) > 1.0).astype(int)
    return pd.DataFrame({"proxy": proxy, "x": x, "group": group, "label": y})


@dataclass
class Run:
    code: int
    summary: dict[str, Any]
    stderr: str
    termination: str | None
    output: Path

    def metadata(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.output / "metadata.json").read_text())
        return data


Trainer = Callable[..., Run]


def spec_for(path: Path, target: str, *candidates: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A small, fast spec: 3 folds, the given candidates."""
    spec: dict[str, Any] = {
        "dataset": {"uri": f"file://{path}", "target": target},
        "candidates": list(candidates) or [{"estimator": "LogisticRegression"}],
        "search": {"cvFolds": 3},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec
