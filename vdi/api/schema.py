"""The OpenAPI schema's shared parts: every operation may answer an error, in one shape."""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "description": "Stable, for programs: "
                     "not_authenticated, permission_denied, not_found, invalid, refused, "
                     "wrong_state, quota_exceeded, not_ready, no_capacity, throttled..."},
            "message": {"type": "string", "description": "In words, for people."},
            "fields": {"type": "object", "description": "Per field, for invalid input."},
        },
    }},
}


def add_error_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: a ``4XX`` answer of the error shape on every
    operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"description": "The request was refused; see the error's code and message.",
                 "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/Error"}}}}
    for path in result.get("paths", {}).values():
        for operation in path.values():
            operation.setdefault("responses", {}).setdefault("4XX", reference)
    return result
