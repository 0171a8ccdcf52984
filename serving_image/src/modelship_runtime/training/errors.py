"""The trainer's failure kinds; each maps to one exit code and reason.

The operator reads the exit code and the termination message, so these are
part of the contract (README: TrainingJob spec reference).
"""

from __future__ import annotations


class TrainingError(Exception):
    """Base: a failure with a message that tells a person what to fix."""

    exit_code = 1
    reason = "InternalError"


class SpecError(TrainingError):
    """The spec cannot be run as written (unknown estimator, bad parameter...)."""

    exit_code = 2
    reason = "InvalidSpec"


class DataError(TrainingError):
    """The data cannot be trained on (missing column, one class, too few rows...)."""

    exit_code = 3
    reason = "InvalidData"


class StoreError(TrainingError):
    """A source or artifact store could not be read or written."""

    exit_code = 5
    reason = "StoreError"


# Exit code 4 is not an exception: the artifact is written and a gate failed.
GATE_FAILED_EXIT = 4
GATE_FAILED_REASON = "GateFailed"


class Terminated(BaseException):
    """SIGTERM arrived (the pod is being deleted or its node drained).

    A BaseException, so the search's per-cell error handling does not take
    it for a setting that cannot fit. Exiting 143 matters: the Job's
    podFailurePolicy ignores it, and reads SIGKILL (137) as the OOM killer. A
    trainer that is PID 1 is never killed by a signal it has no handler for
    (it would sit out its grace period and die of SIGKILL), so trainer pods
    share their process namespace (the trainer is not PID 1: an unhandled
    SIGTERM ends it with 143 too) and the handler is set before the imports.
    """

    exit_code = 143
    reason = "Terminated"
