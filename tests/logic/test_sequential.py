"""The sequential rule that fails a canary (or a shadow) as soon as its errors prove the ratio
above the limit: its stated false-abort rate holds however often it is looked at, and it is fast."""

from __future__ import annotations

import numpy as np
import pytest

from modelship.logic.analysis import FALSE_ABORT_RATE, alternative, proves_above


@pytest.mark.parametrize(("failures", "trials", "p0", "expected"), [
    (0, 1000, 0.01, False),
    (1, 1, 0.01, False),  # one error proves nothing
    (2, 10, 0.01, False),
    (4, 20, 0.01, True),  # a 20 % faulty version is caught after ~20 requests
    (3, 300, 0.01, False),  # 1 % errors at a 1 % limit: never proven
    (1, 5, 0.0, True),  # a zero limit: any error
    (40, 100, 0.5, False),
    (90, 100, 0.5, True),
])
def test_proves_above(failures: int, trials: int, p0: float, expected: bool) -> None:
    assert proves_above(failures, trials, p0) is expected


@pytest.mark.parametrize("p0", [0.01, 0.05, 0.2])
def test_false_abort_rate_holds_when_looked_at_after_every_request(p0: float) -> None:
    """A version exactly at the limit, judged after each of 2,000 requests, 4,000 times over."""
    rng = np.random.default_rng(7)
    runs, length = 4000, 2000
    errors = np.cumsum(rng.random((runs, length)) < p0, axis=1)
    trials = np.arange(1, length + 1)
    p1 = alternative(p0)
    llr = errors * np.log(p1 / p0) + (trials - errors) * np.log((1 - p1) / (1 - p0))
    aborted = (llr >= np.log(1 / FALSE_ABORT_RATE)).any(axis=1).mean()
    assert aborted <= FALSE_ABORT_RATE, aborted
    # ... and it agrees with the scalar rule.
    i = int(np.argmax(llr[0] >= np.log(1 / FALSE_ABORT_RATE))) if (llr[0] >= np.log(100)).any() else length - 1
    assert bool(proves_above(int(errors[0, i]), i + 1, p0)) == bool(llr[0, i] >= np.log(1 / FALSE_ABORT_RATE))


def test_a_twenty_percent_faulty_version_is_caught_within_a_few_errors() -> None:
    rng = np.random.default_rng(3)
    needed = []
    for _ in range(500):
        errors = 0
        for n in range(1, 500):
            errors += rng.random() < 0.2
            if proves_above(errors, n, 0.01):
                needed.append(errors)
                break
    assert len(needed) == 500 and np.percentile(needed, 95) <= 6, np.percentile(needed, 95)
