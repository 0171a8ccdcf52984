"""The demo's synthetic loan-approval data, with a knob that makes it drift.

Numeric and categorical columns, some missing values, and a target that
depends on them through a known rule, so a model learns something real. The
``shift`` moves incomes and debt ratios (in standard deviations) the way a
changed customer base would: what the DriftMonitor should notice.
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

NUMERIC = ("income", "debt_ratio", "age", "credit_lines", "loan_amount")
CATEGORICAL = ("region", "employment")
FEATURES = (*NUMERIC, *CATEGORICAL)
TARGET = "approved"
REGIONS = ("north", "south", "east", "west")
EMPLOYMENT = ("salaried", "self_employed", "contractor", "unemployed")


@dataclass(frozen=True)
class Shift:
    """How far live data has moved from the training data."""

    income_sd: float = 0.0
    debt_ratio_sd: float = 0.0
    region_weights: tuple[float, ...] = (0.3, 0.3, 0.2, 0.2)
    # A changed concept, not a changed input: the same applicants, but lenders now
    # weigh the loan amount far more and the west region's defaults made it a risk.
    # Inputs look as before (no drift), yet the old model is wrong more often.
    concept: float = 0.0


NO_SHIFT = Shift()
DEMO_SHIFT = Shift(income_sd=-1.0, debt_ratio_sd=1.0, region_weights=(0.1, 0.1, 0.2, 0.6))
CONCEPT_SHIFT = Shift(concept=1.0)


def rows(n: int, seed: int = 7, shift: Shift = NO_SHIFT, missing: float = 0.02) -> Iterator[dict[str, object]]:
    """``n`` rows of features and target; the same seed gives the same rows."""
    rng = random.Random(seed)
    for _ in range(n):
        income = rng.gauss(60_000 + shift.income_sd * 20_000, 20_000)
        debt_ratio = min(max(rng.gauss(0.35 + shift.debt_ratio_sd * 0.15, 0.15), 0.0), 1.5)
        age = min(max(rng.gauss(41, 12), 18), 90)
        credit_lines = max(0, int(rng.gauss(5, 3)))
        loan_amount = max(1_000.0, rng.gauss(20_000, 9_000))
        region = rng.choices(REGIONS, weights=shift.region_weights)[0]
        employment = rng.choices(EMPLOYMENT, weights=(0.6, 0.2, 0.15, 0.05))[0]
        score = (
            1.6 * (income - 60_000) / 20_000
            - 2.2 * (debt_ratio - 0.35) / 0.15
            + 0.4 * (age - 41) / 12
            - 0.9 * (loan_amount - 20_000) / 9_000
            + {"salaried": 0.6, "self_employed": 0.0, "contractor": -0.3, "unemployed": -2.0}[employment]
            + rng.gauss(0, 0.8)
        )
        if shift.concept:
            score += shift.concept * (-3.0 * (loan_amount - 20_000) / 9_000 - 3.5 * (region == "west") + 1.0)
        approved = int(1 / (1 + math.exp(-score)) > 0.5)
        row: dict[str, object] = {
            "income": round(income, 2),
            "debt_ratio": round(debt_ratio, 4),
            "age": round(age, 1),
            "credit_lines": credit_lines,
            "loan_amount": round(loan_amount, 2),
            "region": region,
            "employment": employment,
            TARGET: approved,
        }
        for column in ("income", "debt_ratio", "employment"):
            if rng.random() < missing:
                row[column] = None
        yield row


def to_csv(n: int, seed: int = 7, shift: Shift = NO_SHIFT) -> bytes:
    """The rows as CSV bytes (empty cells for missing values)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*FEATURES, TARGET], lineterminator="\n")
    writer.writeheader()
    for row in rows(n, seed=seed, shift=shift):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue().encode()


def instances(n: int, seed: int, shift: Shift = NO_SHIFT) -> list[dict[str, object]]:
    """Feature rows without the target, as KServe v1 ``instances`` objects."""
    return [{k: v for k, v in r.items() if k != TARGET} for r in rows(n, seed=seed, shift=shift, missing=0.0)]
