"""Group fairness on the holdout (fairlearn) and reweighing (Kamiran & Calders)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference


@dataclass
class FairnessReport:
    demographic_parity_difference: float
    equalized_odds_difference: float
    groups: dict[str, int]

    def wire(self) -> dict[str, Any]:
        return {
            "demographicParityDifference": self.demographic_parity_difference,
            "equalizedOddsDifference": self.equalized_odds_difference,
            "groups": self.groups,
        }


def measure(y_true: pd.Series, y_pred: Any, sensitive: pd.Series, positive: object) -> FairnessReport:
    """Both differences for a binary task, with ``positive`` as the selected class."""
    t = (y_true.to_numpy() == positive).astype(int)
    p = (np.asarray(y_pred).astype(y_true.to_numpy().dtype) == positive).astype(int)
    s = sensitive.to_numpy()
    return FairnessReport(
        demographic_parity_difference=float(demographic_parity_difference(t, p, sensitive_features=s)),
        equalized_odds_difference=float(equalized_odds_difference(t, p, sensitive_features=s)),
        groups={str(k): int(v) for k, v in sensitive.value_counts().sort_index().items()},
    )


def reweighing(y: pd.Series, sensitive: pd.Series) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Weights P(group) * P(label) / P(group, label): label and group look independent."""
    frame = pd.DataFrame({"y": y.to_numpy(), "s": sensitive.to_numpy()})
    n = len(frame)
    p_s = frame["s"].map(frame["s"].value_counts() / n)
    p_y = frame["y"].map(frame["y"].value_counts() / n)
    joint = frame.groupby(["s", "y"]).size() / n
    p_sy = np.array([joint[(s, yy)] for s, yy in zip(frame["s"], frame["y"], strict=True)])
    return np.asarray(p_s.to_numpy(dtype=np.float64) * p_y.to_numpy(dtype=np.float64) / p_sy, dtype=np.float64)
