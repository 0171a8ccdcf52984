"""``modelship-train --spec FILE [--output URI]``: the trainer's command line.

A fanned-out search runs it twice over (see ``fanout``): ``--phase search
--shares N`` in each pod of an Indexed Job (the share index comes from
``--index`` or ``JOB_COMPLETION_INDEX``), then ``--phase refit --shares N``
once. ``--phase all`` (the default) is the single-process trainer.

Exit codes: 0 artifact written and every gate passed; 1 internal error;
2 bad spec (or usage); 3 bad data; 4 artifact written but a gate failed;
5 a store (dataset source, artifact output, champion) could not be used;
143 SIGTERM (the pod is being deleted; no artifact).
stdout gets one JSON line (the summary); stderr says what happened and what
to fix; the same summary, cut under 4 KiB, goes to /dev/termination-log when
that path is writable, where Kubernetes shows it to the operator.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from threadpoolctl import threadpool_limits

from modelship.api.trainingjob import TrainingJobSpec
from modelship_runtime.training import threads
from modelship_runtime.training.errors import (
    GATE_FAILED_EXIT,
    GATE_FAILED_REASON,
    SpecError,
    Terminated,
    TrainingError,
)

TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LIMIT = 4096
MAX_WARNING_LINES = 5


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def load_spec(path: str) -> TrainingJobSpec:
    """Parse a spec file (YAML or JSON); a whole TrainingJob object is accepted too."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise SpecError(f"cannot read the spec file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{path} is not YAML or JSON: {exc}") from exc
    if isinstance(raw, dict) and "spec" in raw and "kind" in raw:
        raw = raw["spec"]
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping (a TrainingJob spec)")
    try:
        return TrainingJobSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise SpecError(f"invalid spec {path}: {problems}") from None


def fit_summary(summary: dict[str, Any], limit: int = TERMINATION_LIMIT) -> str:
    """The summary as one JSON line under ``limit`` bytes, dropping detail first."""
    data = dict(summary)
    text = json.dumps(data, separators=(",", ":"), default=str)
    for key in ("partial", "leaderboard", "bestParams", "metrics", "dataset", "gates"):
        if len(text.encode()) < limit:
            break
        if key == "gates" and isinstance(data.get("gates"), list):
            data["gates"] = [{**g, "message": str(g.get("message", ""))[:80]} for g in data["gates"]]
        else:
            data.pop(key, None)
        text = json.dumps(data, separators=(",", ":"), default=str)
    if len(text.encode()) >= limit and "message" in data:
        data["message"] = str(data["message"])[:1000]
        text = json.dumps(data, separators=(",", ":"), default=str)
    return text


def _write_termination_log(path: str, text: str) -> None:
    try:
        with open(path, "w") as handle:
            handle.write(text)
    except OSError:
        pass  # outside Kubernetes the path is usually absent or read-only


def _report_warnings(caught: list[warnings.WarningMessage]) -> None:
    counts = Counter(f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}" for w in caught)
    for text, n in counts.most_common(MAX_WARNING_LINES):
        _err(f"Warning ({n}x) {text}")


def _terminate(signum: int, frame: object) -> None:
    raise Terminated("SIGTERM: the pod is being deleted or its node drained")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelship-train", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--spec", required=True, help="TrainingJob spec file (YAML or JSON)")
    parser.add_argument("--output", help="artifact URI (file:// or s3://); overrides spec.outputUri")
    parser.add_argument("--termination-log", default=TERMINATION_LOG, help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=("all", "search", "refit"), default="all",
                        help="all: the whole run; search: score one share of the cells; refit: gather and finish")
    parser.add_argument("--shares", type=int, default=1, help="how many shares the search is cut into")
    parser.add_argument("--index", type=int, default=None,
                        help="this share's index (default: $JOB_COMPLETION_INDEX, set in an Indexed Job)")
    parser.add_argument("--scores", help="where shares write their scores (default: <output>/search/)")
    args = parser.parse_args(argv)
    index = args.index
    if index is None and args.phase == "search":
        raw = os.environ.get("JOB_COMPLETION_INDEX", "")
        if not raw.isdigit():
            parser.error("--phase search needs --index or JOB_COMPLETION_INDEX")
        index = int(raw)

    # Before OpenMP loads (with scikit-learn, below): spinning OpenMP threads on
    # a busy or CPU-limited node made one HistGradientBoosting run take 236 s
    # instead of 17 s here. An explicit setting from the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    summary: dict[str, Any]
    code = 0
    # Python signal handlers live in the main thread (tests may call main() elsewhere). Set before
    # the heavy imports, which take seconds on a busy node: a pod deleted then still exits 143.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    with warnings.catch_warnings(record=True) as caught:
        # Library warnings (convergence, deprecations) are reported, never fatal.
        warnings.simplefilter("always")
        try:
            from modelship_runtime.training import (  # heavy imports after argument errors
                fanout,
                train,
            )

            spec = load_spec(args.spec)
            with threadpool_limits(limits=threads.available()):
                if args.phase == "search":
                    summary = fanout.run_share(spec, args.output, index or 0, args.shares, args.scores, log=_err)
                    passed = True
                else:
                    result = (fanout.run_refit(spec, args.output, args.shares, args.scores, log=_err)
                              if args.phase == "refit" else train.run(spec, args.output, log=_err))
                    summary, passed = result.summary, result.passed
            if not passed:
                code = GATE_FAILED_EXIT
                failed = [g for g in summary["gates"] if not g["passed"]]
                summary["reason"] = GATE_FAILED_REASON
                summary["message"] = "; ".join(f"{g['name']}: {g['message']}" for g in failed)
                _err(f"Error: gates failed: {summary['message']}")
        except (TrainingError, Terminated) as exc:
            code = exc.exit_code
            summary = {"passed": False, "reason": exc.reason, "message": str(exc)}
            _err(f"Error ({exc.reason}): {exc}")
        except Exception as exc:
            code = 1
            summary = {"passed": False, "reason": "InternalError", "message": f"{type(exc).__name__}: {exc}"}
            _err(traceback.format_exc())
            _err(f"Error (InternalError): {type(exc).__name__}: {exc}; this is a bug, please report it")
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
    _report_warnings(list(caught))
    summary["exitCode"] = code
    line = json.dumps(summary, separators=(",", ":"), default=str)
    print(line, flush=True)
    _write_termination_log(args.termination_log, fit_summary(summary))
    return code


if __name__ == "__main__":
    sys.exit(main())
