"""The OpenAPI 3.0 document of every endpoint, served at /openapi.json."""

from __future__ import annotations

from typing import Any

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
              "FP16", "FP32", "FP64", "BYTES"]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Bad input", 401: "Missing or wrong bearer token", 404: "Unknown model or version", 413: "Body too large",
            422: "Input the model refused", 503: "Model not ready"}
    return {str(c): _json({"$ref": "#/components/schemas/Error"}, text[c]) for c in codes}


def build(model_name: str, model_version: str) -> dict[str, Any]:
    name = {"name": "model_name", "in": "path", "required": True,
            "schema": {"type": "string", "enum": [model_name]}, "description": "The served model."}
    version = {"name": "model_version", "in": "path", "required": True,
               "schema": {"type": "string", "enum": [model_version]}}
    ref = "#/components/schemas/"
    infer_op = {
        "summary": "Run inference (Open Inference Protocol v2)",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": ref + "InferenceRequest"}}}},
        "responses": {"200": _json({"$ref": ref + "InferenceResponse"}, "Outputs"), **_errors(400, 404, 413, 422, 503)},
    }
    meta_op = {"summary": "Model metadata", "responses": {
        "200": _json({"$ref": ref + "ModelMetadata"}, "Metadata"), **_errors(404, 503)}}
    ready_op = {"summary": "Model readiness", "responses": {
        "200": _json({"$ref": ref + "ModelReady"}, "Ready"),
        "503": _json({"$ref": ref + "ModelReady"}, "Not ready"), **_errors(404)}}
    paths: dict[str, Any] = {
        "/v2": {"get": {"summary": "Server metadata", "responses": {"200": _json({"$ref": ref + "ServerMetadata"}, "Server")}}},
        "/v2/health/live": {"get": {"summary": "Liveness", "responses": {"200": _json(
            {"type": "object", "properties": {"live": {"type": "boolean"}}}, "Live")}}},
        "/v2/health/ready": {"get": {"summary": "Readiness (reason when not ready)", "responses": {
            "200": _json({"$ref": ref + "Readiness"}, "Ready"), "503": _json({"$ref": ref + "Readiness"}, "Not ready")}}},
        "/v2/models/{model_name}": {"parameters": [name], "get": meta_op},
        "/v2/models/{model_name}/versions/{model_version}": {"parameters": [name, version], "get": meta_op},
        "/v2/models/{model_name}/ready": {"parameters": [name], "get": ready_op},
        "/v2/models/{model_name}/versions/{model_version}/ready": {"parameters": [name, version], "get": ready_op},
        "/v2/models/{model_name}/artifact": {"parameters": [name], "get": {
            "summary": "The artifact's metadata.json (schema, drift reference, metrics); Modelship extension",
            "responses": {"200": _json({"type": "object"}, "metadata.json"), **_errors(404, 503)}}},
        "/v2/models/{model_name}/infer": {"parameters": [name], "post": infer_op},
        "/v2/models/{model_name}/versions/{model_version}/infer": {"parameters": [name, version], "post": infer_op},
        "/v2/models/{model_name}/feedback": {"parameters": [name], "post": {
            "summary": "Labels for logged predictions (ground truth; 404 while the prediction log is off)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": ref + "Feedback"}}}},
            "responses": {"200": _json({"type": "object", "properties": {"accepted": {"type": "integer"}}},
                                       "Accepted"), **_errors(400, 401, 404, 413, 503)}}},
        "/v1/models": {"get": {"summary": "Served models (KServe v1)", "responses": {"200": _json(
            {"type": "object", "properties": {"models": {"type": "array", "items": {"type": "string"}}}}, "Models")}}},
        "/v1/models/{model_name}": {"parameters": [name], "get": {"summary": "Model status (KServe v1)", "responses": {
            "200": _json({"$ref": ref + "ModelReady"}, "Status"), **_errors(404)}}},
        "/v1/models/{model_name}:predict": {"parameters": [name], "post": {
            "summary": "Predict (KServe v1)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": ref + "V1Request"}}}},
            "responses": {"200": _json({"$ref": ref + "V1Response"}, "Predictions"), **_errors(400, 404, 413, 422, 503)},
        }},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
            "description": "Text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    }
    label = {"type": "object", "required": ["id", "label"], "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 256, "description": "The request id."},
        "row": {"type": "integer", "minimum": 0, "description": "Row within the request (default 0)."},
        "label": {"oneOf": [{"type": "string", "minLength": 1}, {"type": "number"}, {"type": "boolean"}]}}}
    tensor_in = {"type": "object", "required": ["name", "shape", "datatype", "data"], "properties": {
        "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": _DATATYPES}, "parameters": {"type": "object"},
        "data": {"type": "array", "items": {}}}}
    tensor_out = {"type": "object", "required": ["name", "shape", "datatype", "data"], "properties": {
        "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string"}, "data": {"type": "array"}}}
    tensor_meta = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
        "name": {"type": "string"}, "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}}}}
    schemas = {
        "Error": _ERROR,
        "ServerMetadata": {"type": "object", "required": ["name", "version", "extensions"], "properties": {
            "name": {"type": "string"}, "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}}}},
        "Readiness": {"type": "object", "required": ["ready"], "properties": {
            "ready": {"type": "boolean"}, "reason": {"type": "string"}}},
        "ModelReady": {"type": "object", "required": ["name", "ready"], "properties": {
            "name": {"type": "string"}, "ready": {"type": "boolean"}, "reason": {"type": "string"}}},
        "ModelMetadata": {"type": "object", "required": ["name", "platform", "inputs", "outputs"], "properties": {
            "name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"}, "inputs": {"type": "array", "items": tensor_meta},
            "outputs": {"type": "array", "items": tensor_meta}, "parameters": {"type": "object"}}},
        "InferenceRequest": {"type": "object", "required": ["inputs"], "properties": {
            "id": {"type": "string"}, "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": tensor_in},
            "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "parameters": {"type": "object"}}}}}},
        "InferenceResponse": {"type": "object", "required": ["model_name", "outputs"], "properties": {
            "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
            "parameters": {"type": "object"}, "outputs": {"type": "array", "items": tensor_out}}},
        "V1Request": {"type": "object", "required": ["instances"], "properties": {
            "instances": {"type": "array", "items": {"oneOf": [{"type": "array"}, {"type": "object"}]}},
            "parameters": {"type": "object", "properties": {"probabilities": {"type": "boolean"}}}}},
        "V1Response": {"type": "object", "required": ["predictions"], "properties": {
            "predictions": {"type": "array"}, "probabilities": {"type": "array"}, "id": {"type": "string"}}},
        "Feedback": {"oneOf": [label, {"type": "object", "required": ["labels"], "properties": {
            "labels": {"type": "array", "minItems": 1, "maxItems": 10000, "items": label}}}]},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "modelship-serve", "version": "0.1.0",
                 "description": "Open Inference Protocol v2 and KServe v1 REST for one ONNX model."},
        "paths": paths,
        "components": {"schemas": schemas},
    }
