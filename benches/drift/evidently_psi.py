"""Runs inside Evidently's own venv: DataDriftPreset(method="psi") on the bench data.

Usage: python evidently_psi.py DATA.npz  -> prints JSON {"seconds": s, "psi": {column: value}}
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset


def main() -> None:
    data = np.load(sys.argv[1])
    columns = [f"f{i}" for i in range(data["reference"].shape[1])]
    reference = pd.DataFrame(data["reference"], columns=columns)
    current = pd.DataFrame(data["current"], columns=columns)
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset(method="psi")]).run(current_data=current, reference_data=reference)
    result = snapshot.dict()
    seconds = time.perf_counter() - started
    psi = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            psi[config["column"]] = float(metric["value"])
    json.dump({"seconds": seconds, "psi": psi}, sys.stdout)


if __name__ == "__main__":
    main()
