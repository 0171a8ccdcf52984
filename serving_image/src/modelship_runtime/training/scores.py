"""A search share's scores in the artifact store: one small JSON file per share, written once.

``<scores>/share-00003-of-00008.json`` holds every cell share 3 scored (or
skipped for the time budget), with what the refit checks before it trusts
them: the spec hash, the dataset's sha256, the number of settings and folds.
Floats go through the standard ``json`` module, whose ``repr`` round-trips
exactly, so the refit averages the very same doubles the share computed.

Write-once: a share that finds its file already there (a retried pod whose
first attempt wrote it and then died) reuses it when it describes the same
search, and refuses to overwrite it otherwise.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from modelship_runtime.artifacts import store
from modelship_runtime.training.cells import Cell, CellResult
from modelship_runtime.training.errors import DataError, StoreError

FORMAT = "modelship.io/search-share/v1"


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ScoredCell(_Wire):
    setting: int
    fold: int
    score: float | None = None
    error: str | None = None
    seconds: float = 0.0
    after_failure: bool = False


class ShareReport(_Wire):
    format: str = FORMAT
    index: int = Field(description="This share's number, 0-based (the pod's JOB_COMPLETION_INDEX).")
    shares: int = Field(description="How many shares the search has.")
    spec_hash: str
    dataset_sha256: str
    settings: int = Field(description="Settings in the search after the maxFits budget.")
    folds: int
    cells: list[ScoredCell] = Field(default_factory=list)
    skipped: list[tuple[int, int]] = Field(default_factory=list, description="(setting, fold) left for time.")
    max_seconds: int | None = None
    started_at: str = ""  # wall clock of the process start, first cell and end (ms, UTC)
    first_cell_at: str = ""
    finished_at: str = ""
    start_to_first_cell_seconds: float | None = None
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    versions: dict[str, str] = Field(default_factory=dict)

    def results(self) -> list[CellResult]:
        return [CellResult(c.setting, c.fold, c.score, c.error, c.seconds, c.after_failure) for c in self.cells]

    def same_search(self, other: ShareReport) -> bool:
        keys = ("index", "shares", "spec_hash", "dataset_sha256", "settings", "folds")
        return all(getattr(self, k) == getattr(other, k) for k in keys)

    def to_json(self) -> bytes:
        return json.dumps(self.model_dump(by_alias=True, mode="python"), sort_keys=True,
                          separators=(",", ":")).encode()


def file_name(index: int, shares: int) -> str:
    return f"share-{index:05d}-of-{shares:05d}.json"


def share_uri(scores_uri: str, index: int, shares: int) -> str:
    return store.join(scores_uri, file_name(index, shares))


def cells_of(results: list[CellResult]) -> list[ScoredCell]:
    return [ScoredCell(setting=r.setting, fold=r.fold, score=r.score, error=r.error, seconds=round(r.seconds, 4),
                       after_failure=r.after_failure) for r in results]


def parse(uri: str, raw: bytes) -> ShareReport:
    try:
        data: Any = json.loads(raw)
        report = ShareReport.model_validate(data)
    except (ValueError, ValidationError) as exc:
        raise StoreError(f"{uri}: not a search share's scores: {exc}") from None
    if report.format != FORMAT:
        raise StoreError(f"{uri}: format {report.format!r}, expected {FORMAT!r}")
    return report


def read(scores_uri: str, index: int, shares: int) -> ShareReport | None:
    """The share's report, or None when it has not been written."""
    uri = share_uri(scores_uri, index, shares)
    try:
        raw = store.read_uri(uri)
    except store.ArtifactNotFound:
        return None
    except store.ArtifactError as exc:
        raise StoreError(f"cannot read search scores: {exc}") from exc
    return parse(uri, raw)


def check_same(found: ShareReport, expected: ShareReport, uri: str) -> None:
    """A report from another search under our name is refused: the data or spec moved under us."""
    if found.same_search(expected):
        return
    if found.dataset_sha256 != expected.dataset_sha256:
        raise DataError(
            f"{uri} was scored on data with sha256 {found.dataset_sha256[:12]} but the dataset now has "
            f"{expected.dataset_sha256[:12]}: the dataset changed during the search; keep it fixed while a "
            "TrainingJob runs (write new data under a new name) and retrain")
    raise StoreError(f"{uri} belongs to another search (spec or shares differ); refusing to overwrite it")


def write_once(scores_uri: str, report: ShareReport) -> None:
    uri = share_uri(scores_uri, report.index, report.shares)
    existing = read(scores_uri, report.index, report.shares)
    if existing is not None:
        check_same(existing, report, uri)
        return
    try:
        store.write_uri(uri, report.to_json())
    except store.ArtifactError as exc:
        raise StoreError(f"cannot write search scores: {exc}") from exc


def gather(scores_uri: str, shares: int, expected: ShareReport) -> list[ShareReport]:
    """Every share's report, checked against the search the refit prepared (``expected``).

    Each cell of the enumeration must appear once, scored or skipped.
    """
    reports: list[ShareReport] = []
    missing: list[int] = []
    for index in range(shares):
        report = read(scores_uri, index, shares)
        if report is None:
            missing.append(index)
            continue
        check_same(report, expected.model_copy(update={"index": index}), share_uri(scores_uri, index, shares))
        reports.append(report)
    if missing:
        shown = ", ".join(str(i) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise StoreError(f"search scores missing for share(s) {shown} of {shares} under {scores_uri}")
    seen: set[Cell] = set()
    for report in reports:
        for cell in [Cell(c.setting, c.fold) for c in report.cells] + [Cell(s, f) for s, f in report.skipped]:
            if not (0 <= cell.setting < expected.settings and 0 <= cell.fold < expected.folds):
                raise StoreError(f"share {report.index} reports cell {cell}, outside the search")
            if cell in seen:
                raise StoreError(f"share {report.index} reports cell {cell} twice or another share has it")
            seen.add(cell)
    want = expected.settings * expected.folds
    if len(seen) != want:
        raise StoreError(f"the shares cover {len(seen)} of {want} cells; the scores are incomplete")
    return reports
