"""``POST /v2/models/{m}/feedback``: labels for earlier predictions, appended to the store.

A body is one label or many::

    {"id": "<request id>", "label": 1}
    {"id": "<request id>", "row": 3, "label": "approved"}
    {"labels": [{"id": "...", "label": 0}, {"id": "...", "row": 1, "label": 1}]}

``row`` (default 0) is the row within the request; the label is a string,
number or boolean, stored as text (``1.0`` as ``1``) and typed again when it
is joined. Labels go into the same writer as the prediction log, as Parquet
segments under ``labels/feedback/`` of the Model's ground-truth prefix.

When ``MODELSHIP_FEEDBACK_TOKEN`` is set the request needs
``Authorization: Bearer <token>`` (401 otherwise); without it anyone who
reaches the Service can post labels, so keep it inside a NetworkPolicy.
"""

from __future__ import annotations

import hmac
from typing import Any

from .errors import BadRequest, NotFound, Unauthorized
from .predlog import PredictionLog
from .requestid import MAX_ID_LENGTH
from .v2 import parse_json

MAX_LABELS = 10_000


def check_token(expected: str | None, authorization: bytes | None) -> None:
    if not expected:
        return
    given = authorization or b""
    if not hmac.compare_digest(given, b"Bearer " + expected.encode()):
        raise Unauthorized("feedback needs 'Authorization: Bearer <token>' (MODELSHIP_FEEDBACK_TOKEN)")


def parse(body: bytes) -> list[tuple[str, int, str]]:
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise BadRequest("the body must be a JSON object: {\"id\": ..., \"label\": ...} or {\"labels\": [...]}")
    items: Any = doc.get("labels", [doc])
    if not isinstance(items, list) or not items:
        raise BadRequest("'labels' must be a non-empty list of {\"id\": ..., \"label\": ...}")
    if len(items) > MAX_LABELS:
        raise BadRequest(f"{len(items)} labels in one request; the limit is {MAX_LABELS}")
    out = []
    for i, item in enumerate(items):
        where = f"labels[{i}]" if "labels" in doc else "the body"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object with 'id' and 'label'")
        request_id = item.get("id", item.get("request_id"))
        if not isinstance(request_id, str) or not request_id or len(request_id) > MAX_ID_LENGTH:
            raise BadRequest(f"{where}: 'id' must be the request id, a string of 1 to {MAX_ID_LENGTH} characters")
        if "label" not in item:
            raise BadRequest(f"{where}: 'label' is missing")
        label = item["label"]
        if isinstance(label, bool):
            text = "1" if label else "0"
        elif isinstance(label, int):
            text = str(label)
        elif isinstance(label, float):
            if label != label or label in (float("inf"), float("-inf")):
                raise BadRequest(f"{where}: 'label' must be finite")
            text = str(int(label)) if label.is_integer() else repr(label)
        elif isinstance(label, str) and label:
            text = label
        else:
            raise BadRequest(f"{where}: 'label' must be a non-empty string, a number or a boolean")
        row = item.get("row", 0)
        if type(row) is not int or row < 0:
            raise BadRequest(f"{where}: 'row' must be a non-negative integer (the row within the request)")
        out.append((request_id, row, text))
    return out


def handle(predlog: PredictionLog | None, token: str | None, authorization: bytes | None,
           body: bytes) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of a feedback request."""
    if predlog is None:
        raise NotFound("feedback is off: this server has no ground-truth store (MODELSHIP_PREDICTION_LOG_URI)")
    check_token(token, authorization)
    labels = parse(body)
    taken = predlog.add_labels(labels)
    if taken == 0:
        return 503, {"error": "the label queue is full; retry later"}
    return 200, {"accepted": taken}
