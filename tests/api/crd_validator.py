"""Validate an object against a generated CRD as the API server would.

Applies schema defaults first (the API server defaults before it validates),
then checks types, enums, patterns, bounds, required and unknown fields
(kubectl's strict field validation), honours ``x-kubernetes-int-or-string``
and ``x-kubernetes-preserve-unknown-fields``, and evaluates the CEL rules in
``x-kubernetes-validations`` with cel-python. Error strings start with the
field path, like the API server's.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import celpy

_ENV = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}
_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
}


def openapi_schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                value[key] = apply_defaults(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def _type_ok(expected: str, value: Any) -> bool:
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[expected])


def _cel(rule: str, value: Any) -> bool:
    if rule not in _PROGRAMS:
        _PROGRAMS[rule] = _ENV.program(_ENV.compile(rule))
    return bool(_PROGRAMS[rule].evaluate({"self": celpy.json_to_cel(value)}))


def _check(schema: dict[str, Any], value: Any, path: str, errors: list[str]) -> None:
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or _type_ok("integer", value)):
            errors.append(f"{path}: must be an integer or a string")
        elif isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: Invalid value: {value!r}: should match '{schema['pattern']}'")
        return
    expected = schema.get("type")
    if expected is None:
        return  # preserve-unknown-fields: anything goes
    if not _type_ok(expected, value):
        errors.append(f"{path}: Invalid value: must be of type {expected}")
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(f'"{e}"' for e in schema["enum"])
        errors.append(f"{path}: Unsupported value: {value!r}: supported values: {allowed}")
    if expected == "string":
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: Invalid value: {value!r}: should match '{schema['pattern']}'")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: Too long: may not be longer than {schema['maxLength']}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(f"{path}: Invalid value: should be at least {schema['minLength']} chars long")
    if expected in {"integer", "number"}:
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if lo is not None and (value < lo or (schema.get("exclusiveMinimum") and value == lo)):
            op = ">" if schema.get("exclusiveMinimum") else ">="
            errors.append(f"{path}: Invalid value: {value}: should be {op} {lo}")
        if hi is not None and (value > hi or (schema.get("exclusiveMaximum") and value == hi)):
            op = "<" if schema.get("exclusiveMaximum") else "<="
            errors.append(f"{path}: Invalid value: {value}: should be {op} {hi}")
    if expected == "array":
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: Too many: {len(value)}: must have at most {schema['maxItems']} items")
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{path}: Invalid value: should have at least {schema['minItems']} items")
        for i, item in enumerate(value):
            _check(schema.get("items", {}), item, f"{path}[{i}]", errors)
    if expected == "object":
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}.{name}: Required value")
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            if key in props:
                _check(props[key], sub, f"{path}.{key}", errors)
            elif isinstance(extra, dict):
                _check(extra, sub, f"{path}.{key}", errors)
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                errors.append(f'{path}: unknown field "{key}"')
    if errors:
        return  # like the API server, CEL rules run on schema-valid values only
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"]:
            continue  # transition rules run on updates only; creates are what is checked here
        if not _cel(rule["rule"], value):
            where = path + rule.get("fieldPath", "")
            errors.append(f"{where}: Invalid value: {rule['message']}")


def validate(crd: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """Errors for ``obj`` (a whole custom resource), empty when it would be accepted."""
    schema = openapi_schema(crd)
    value = apply_defaults(schema, copy.deepcopy(obj))
    errors: list[str] = []
    for name in ("spec", "status"):
        if name in value:
            _check(schema["properties"][name], value[name], name, errors)
        elif name in schema.get("required", []):
            errors.append(f"{name}: Required value")
    return errors
