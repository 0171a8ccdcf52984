"""The training specs in examples/ are accepted by the trainer as written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelship.api.trainingjob import Task, TrainingJobSpec
from modelship_runtime.training import cli, search
from modelship_runtime.training.pipeline import build_pipeline

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _training_specs() -> list[tuple[str, dict[str, object]]]:
    found = []
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            spec = doc.get("spec") or {}
            if doc.get("kind") == "TrainingJob":
                found.append((path.name, spec))
            elif doc.get("kind") == "Model" and "training" in spec:
                found.append((path.name, {**spec["training"], "gates": spec.get("gates", {})}))
    return found


@pytest.mark.parametrize(("name", "spec"), _training_specs(), ids=[n for n, _ in _training_specs()])
def test_example_plans_without_spec_errors(name: str, spec: dict[str, object], tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    parsed: TrainingJobSpec = cli.load_spec(str(path))
    classification = parsed.task != Task.REGRESSION
    settings = search.plan(
        parsed.candidates, parsed.search, classification,
        lambda n, e: build_pipeline(parsed.pipeline, ["x"], [], e, 0), weighted=False,
    )
    assert settings
