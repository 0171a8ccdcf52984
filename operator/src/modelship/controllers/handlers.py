"""Registers one level-based reconcile per kind with kopf (see ``runtime``), and the webhook."""

from __future__ import annotations

from typing import Any

import kopf

from modelship.controllers import alerts, driftmonitor, model, trainingjob
from modelship.controllers.runtime import register
from modelship.settings import OperatorSettings


def register_all(settings: OperatorSettings) -> None:
    register("Model", "models", model.reconcile, settings.reconcile_seconds, on_delete=model.forget_model)
    register("TrainingJob", "trainingjobs", trainingjob.reconcile, settings.reconcile_seconds)
    register("DriftMonitor", "driftmonitors", driftmonitor.reconcile, settings.reconcile_seconds,
             on_delete=driftmonitor.forget)

    @kopf.on.startup(id="alert-webhook")
    async def _webhook(**_: Any) -> None:
        await alerts.start(settings.webhook_port, settings.webhook_token)
