"""Every API error as JSON: ``{"error": {"code": ..., "message": ..., "fields": {...}}}``.

Service refusals keep their words (they are written for users); a refused transition or rule
is a 409, a missing permission 403, something not visible 404."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from vdi.services.errors import AccessDenied, NoCapacity, NotReady, ServiceError
from vdi.services.quotas import QuotaExceeded
from vdi.state import TransitionRefused

SERVICE_CODES: tuple[tuple[type[Exception], int, str], ...] = (
    (AccessDenied, status.HTTP_403_FORBIDDEN, "permission_denied"),
    (QuotaExceeded, status.HTTP_409_CONFLICT, "quota_exceeded"),
    (NoCapacity, status.HTTP_409_CONFLICT, "no_capacity"),
    (NotReady, status.HTTP_409_CONFLICT, "not_ready"),
    (TransitionRefused, status.HTTP_409_CONFLICT, "wrong_state"),
    (ServiceError, status.HTTP_409_CONFLICT, "refused"),
)


def body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def _message(detail: Any) -> str:
    if isinstance(detail, list):
        return " ".join(_message(item) for item in detail)
    if isinstance(detail, dict):
        return " ".join(f"{key}: {_message(value)}" for key, value in detail.items())
    return str(detail)


def handle(exc: Exception, context: dict[str, Any]) -> Response | None:
    for kind, http_status, code in SERVICE_CODES:
        if isinstance(exc, kind):
            return Response(body(code, str(exc)), status=http_status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        response.data = body("invalid", "Some values are not valid.", fields)
    else:
        response.data = body(str(exc.get_codes()), _message(exc.detail))
    return response


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 for paths no URL matches: JSON under ``/api/``, the page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(body("not_found", "No such endpoint or object."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500: JSON under ``/api/`` (the detail is in the log), the page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(body("server_error", "Something went wrong on our side; it is "
                                                 "logged."), status=500)
    return defaults.server_error(request)
