"""Registers one level-based reconcile per kind with kopf (see ``runtime``), and the webhook."""

from __future__ import annotations

from typing import Any

import kopf

from modelship.api.trainingjob import TrainingJobStatus
from modelship.builders.common import MODEL_LABEL
from modelship.controllers import alerts, driftmonitor, model, trainingjob
from modelship.controllers.runtime import register, watch_children
from modelship.logic.trainingjob import is_finished
from modelship.plans.model import at_rest
from modelship.settings import OperatorSettings


def register_all(settings: OperatorSettings) -> None:
    register("Model", "models", model.reconcile, settings.reconcile_seconds, on_delete=model.forget_model,
             steady=at_rest, resync_seconds=settings.resync_seconds, refresh=True)
    register("TrainingJob", "trainingjobs", trainingjob.reconcile, settings.reconcile_seconds,
             steady=lambda body: is_finished(TrainingJobStatus.model_validate(body.get("status") or {})),
             resync_seconds=settings.resync_seconds)
    # A Model reacts at once to its TrainingJobs (its own and the DriftMonitor's) and its
    # Deployments (pods becoming ready), instead of polling them.
    watch_children("modelship.io", "v1alpha1", "trainingjobs", MODEL_LABEL, "Model", model.reconcile)
    watch_children("apps", "v1", "deployments", MODEL_LABEL, "Model", model.reconcile)
    register("DriftMonitor", "driftmonitors", driftmonitor.reconcile, settings.reconcile_seconds,
             on_delete=driftmonitor.forget)

    @kopf.on.startup(id="alert-webhook")
    async def _webhook(**_: Any) -> None:
        await alerts.start(settings.webhook_port, settings.webhook_token)
