"""``modelship-quality``: live quality per revision, as a short Job of the trainer image.

The operator never reads the artifact store, so the join of the prediction
log with the labels runs here, where the store is reachable: the operator
creates a Job with the request as ``MODELSHIP_QUALITY_REQUEST`` (JSON, or
``--request FILE``), and reads the answer from the container's termination
message (one JSON line under 4 KiB, also printed on stdout)::

    {"ok": true, "start": ..., "end": ..., "predictions": 41210, "labels": 9120, "labelled": 8002,
     "revisions": [{"revision": "loans-5f2c", "rows": 30110, "labelled": 6001,
                    "metrics": {"accuracy": 0.71, ...}, "estimates": {"accuracy": 0.86, "roc_auc": 0.93}}],
     "seconds": 1.9, "rowsPerSecond": 21700, "peakRssMiB": 212, "files": 14, "bytes": 3120448}

Exit codes: 0 measured (possibly with no rows); 2 the request is invalid;
3 the log or labels cannot be read as they are; 5 the store failed; 1 a bug.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from modelship.api.groundtruth import LabelSource

TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LIMIT = 4096
ENV = "MODELSHIP_QUALITY_REQUEST"


class QualityRequest(BaseModel):
    """What the operator asks: a window of the log, the label sources, the revisions of interest."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    groundtruth_uri: str = Field(pattern=r"^(file|s3)://.+")
    labels: list[LabelSource] = Field(default_factory=list)
    start: datetime
    end: datetime
    revisions: dict[str, str] = Field(default_factory=dict, description="revision → artifact URI, newest first.")
    estimate: bool = True


def measure(request: QualityRequest) -> dict[str, Any]:
    """The whole measurement: read, join, evaluate; returns the summary."""
    import pyarrow as pa

    from modelship_runtime.artifacts import store
    from modelship_runtime.artifacts.metadata import Metadata
    from modelship_runtime.groundtruth import join, layout, quality

    started = time.monotonic()
    metadata: dict[str, Metadata | None] = {}
    notes = []
    for revision, uri in request.revisions.items():
        try:
            metadata[revision] = store.read_metadata(uri)
        except store.ArtifactNotFound:
            metadata[revision] = None
            notes.append(f"{revision}: no metadata.json at {uri}")
    features = sorted({f.name for md in metadata.values() if md is not None for f in md.features})
    labels = join.read_labels([join.feedback_source(request.groundtruth_uri), *request.labels])
    # Segment by segment, keeping only what the join and the metrics need (no features, no times):
    # memory grows by about 60 bytes per logged row; one join at the end (a hash of the labels, once).
    kept = []
    rows = files = size = 0
    for table, n in join.iter_predictions(request.groundtruth_uri, request.start, request.end, exclude=features):
        files, size, rows = files + 1, size + n, rows + table.num_rows
        if table.num_rows:
            drop = [c for c in (layout.TIME, layout.MODEL_VERSION) if c in table.column_names]
            kept.append(table.drop_columns(drop))
    predictions = pa.concat_tables(kept, promote_options="permissive") if kept else join.EMPTY_PREDICTIONS
    joined = join.join(predictions, labels.table)
    results = quality.evaluate(predictions, joined, metadata, request.estimate)
    seconds = time.monotonic() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out: dict[str, Any] = {
        "ok": True,
        "start": request.start.isoformat().replace("+00:00", "Z"),
        "end": request.end.isoformat().replace("+00:00", "Z"),
        "predictions": rows,
        "labels": len(labels),
        "labelled": joined.num_rows,
        "revisions": [r.wire() for r in results],
        "seconds": round(seconds, 3),
        "rowsPerSecond": round(rows / seconds) if seconds > 0 else None,
        "peakRssMiB": round(rss),
        "files": files + labels.files,
        "bytes": size,
    }
    if notes:
        out["notes"] = notes
    return out


def fit(summary: dict[str, Any], limit: int = TERMINATION_LIMIT) -> str:
    """One JSON line under ``limit`` bytes: detail goes first, then the oldest revisions."""
    data = json.loads(json.dumps(summary, default=str))
    text = json.dumps(data, separators=(",", ":"))
    for key in ("notes", "unknownLabels", "note"):
        if len(text.encode()) < limit:
            break
        data.pop(key, None)
        for r in data.get("revisions", []):
            r.pop(key, None)
        text = json.dumps(data, separators=(",", ":"))
    keep = ("accuracy", "roc_auc", "r2", "f1", "balanced_accuracy", "precision", "recall")
    if len(text.encode()) >= limit:
        for r in data.get("revisions", []):
            r["metrics"] = {k: v for k, v in r.get("metrics", {}).items() if k in keep[:2] or k == "r2"}
        text = json.dumps(data, separators=(",", ":"))
    while len(text.encode()) >= limit and len(data.get("revisions", [])) > 1:
        data["revisions"].pop()
        data["truncated"] = True
        text = json.dumps(data, separators=(",", ":"))
    return text


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as handle:
            handle.write(text)
    except OSError:
        pass  # outside Kubernetes the path is usually absent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelship-quality", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--request", help=f"request file (JSON); default: the {ENV} variable")
    parser.add_argument("--termination-log", default=TERMINATION_LOG, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from modelship_runtime.artifacts.store import ArtifactError
    from modelship_runtime.groundtruth.join import GroundTruthError

    code = 0
    summary: dict[str, Any]
    try:
        raw = Path(args.request).read_text() if args.request else os.environ.get(ENV, "")
        if not raw:
            raise ValueError(f"no request: pass --request FILE or set {ENV}")
        request = QualityRequest.model_validate_json(raw)
    except (ValidationError, ValueError, OSError) as exc:
        request = None
        code, summary = 2, {"ok": False, "reason": "InvalidRequest", "message": str(exc)[:1500]}
    try:
        if request is not None:
            # Imported first, so the time measured is the work (scikit-learn alone takes seconds to import).
            from modelship_runtime.groundtruth import join, quality  # noqa: F401

            summary = measure(request)
    except GroundTruthError as exc:
        code, summary = 3, {"ok": False, "reason": "InvalidData", "message": str(exc)[:1500]}
    except ArtifactError as exc:
        code, summary = 5, {"ok": False, "reason": "StoreError", "message": str(exc)[:1500]}
    except Exception as exc:
        print(traceback.format_exc(), file=sys.stderr, flush=True)
        code, summary = 1, {"ok": False, "reason": "InternalError", "message": f"{type(exc).__name__}: {exc}"[:1500]}
    summary["exitCode"] = code
    print(json.dumps(summary, separators=(",", ":"), default=str), flush=True)
    _write(args.termination_log, fit(summary))
    if code:
        print(f"Error ({summary['reason']}): {summary['message']}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
