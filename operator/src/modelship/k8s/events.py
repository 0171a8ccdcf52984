"""Kubernetes Events about our objects ("Created Job m-1", "Rolled back m-7f3c: ...").

Failures to post an Event are logged, never raised: an Event is a courtesy.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from modelship.k8s.client import Api
from modelship.metrics import API_WRITES

log = logging.getLogger("modelship.events")
COMPONENT = "modelship-operator"
_INSTANCE = os.environ.get("POD_NAME") or socket.gethostname()


def build_event(body: dict[str, Any], type_: str, reason: str, message: str, now: datetime) -> dict[str, Any]:
    meta = body["metadata"]
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    micro = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": body["apiVersion"], "kind": body["kind"], "name": meta["name"],
            "namespace": meta["namespace"], "uid": meta.get("uid"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": type_,
        "source": {"component": COMPONENT},
        "reportingComponent": f"modelship.io/{COMPONENT}",
        "reportingInstance": _INSTANCE[:128],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": micro,
        "action": reason,
        "count": 1,
    }


def post(kube: Api, body: dict[str, Any], reason: str, message: str, warning: bool = False) -> None:
    type_ = "Warning" if warning else "Normal"
    (log.warning if warning else log.info)("%s %s/%s: %s", body["kind"], body["metadata"].get("namespace"),
                                           body["metadata"].get("name"), message)
    try:
        kube.create(build_event(body, type_, reason, message, datetime.now(UTC)))
        API_WRITES.labels("create", "Event").inc()
    except ApiException as exc:
        log.info("Could not post an Event (%s): %s", exc.status, exc.reason)
