"""Registers one level-based reconcile per kind with kopf (see ``runtime``)."""

from __future__ import annotations

from modelship.controllers import model, trainingjob
from modelship.controllers.runtime import register
from modelship.settings import OperatorSettings


def register_all(settings: OperatorSettings) -> None:
    register("Model", "models", model.reconcile, settings.reconcile_seconds)
    register("TrainingJob", "trainingjobs", trainingjob.reconcile, settings.reconcile_seconds)
