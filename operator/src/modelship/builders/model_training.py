"""The TrainingJob a Model creates for each version (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelship.api.common import API_VERSION
from modelship.api.model import ModelSpec
from modelship.api.trainingjob import TrainingJobSpec, Trigger
from modelship.builders.common import MODEL_LABEL, metadata
from modelship.logic.outputs import artifact_dir

Obj = dict[str, Any]
TRIGGER_LABEL = "modelship.io/trigger"


def artifact_uri(store: str, namespace: str, training_job: str, model_uid: str | None = None) -> str:
    """<store>/<namespace>/<training job>-<model uid>/: one directory per version, and a Model deleted
    and made again under the same name never meets its predecessor's (write-once) artifacts."""
    return artifact_dir(store, namespace, training_job, model_uid)


def build_training_job_resource(
    model: Mapping[str, Any],
    spec: ModelSpec,
    name: str,
    trigger: Trigger | str,
    *,
    default_store: str,
    champion_uri: str | None = None,
) -> Obj:
    """TrainingJob ``name`` for ``model`` from its training template and gates.

    The champion (the stable revision's artifact) is scored on the same
    holdout, so ``mustBeatChampion`` compares like with like.
    """
    if spec.training is None:
        raise ValueError("the Model has no training template (it serves spec.source)")
    meta = model["metadata"]
    store = spec.artifact_store or default_store
    tj = TrainingJobSpec.model_validate({
        **spec.training.model_dump(by_alias=True, exclude_none=True),
        "modelRef": {"name": meta["name"]},
        "gates": spec.gates.model_dump(by_alias=True, exclude_none=True),
        "trigger": str(trigger),
        "outputUri": artifact_uri(store, meta["namespace"], name, meta.get("uid")),
        **({"championUri": champion_uri} if champion_uri and spec.gates.must_beat_champion else {}),
    })
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingJob",
        "metadata": metadata(name, meta["namespace"], {MODEL_LABEL: meta["name"], TRIGGER_LABEL: str(trigger)},
                             model),
        "spec": tj.wire(),
    }
