"""The trainer's ground-truth hooks: production datasets and the calibration CBPE needs.

Kept apart from ``train`` so the search and the rest of the run stay as they
are: ``train.run`` calls these two functions and nothing else of ground truth.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from modelship.api.trainingjob import Dataset, Task
from modelship_runtime.artifacts.metadata import Calibration
from modelship_runtime.training import data
from modelship_runtime.training.convert import Prediction


def load_dataset(dataset: Dataset, output_uri: str, log: Callable[[str], None]) -> data.LoadedData:
    """``dataset.uri``'s rows, or the labelled production rows when ``dataset.production`` is set."""
    if dataset.production is None:
        return data.load(dataset)
    from modelship_runtime.groundtruth import production

    return production.load(dataset, output_uri, log)


def calibration(task: Task | str, y_hold: pd.Series, pred: Prediction, classes: list[object] | None) -> Calibration | None:
    """Binary classifiers: how calibrated the positive-class probability is on the holdout."""
    if str(task) != Task.BINARY or pred.probabilities is None or not classes or len(classes) != 2:
        return None
    from modelship_runtime.groundtruth import cbpe

    positive = y_hold.to_numpy() == classes[-1]
    return cbpe.check(np.asarray(pred.probabilities[:, -1], dtype=np.float64), positive)
