"""What every endpoint reads of its call (who, from where) and how it answers work it queued."""

from __future__ import annotations

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from vdi.actions import DesktopAction
from vdi.api import serializers
from vdi.models import Desktop, Operation
from vdi.services import access
from vdi.services.errors import AccessDenied

OPERATION = {202: serializers.OperationSerializer}  # the schema's answer of queued work


def client_address(request: Request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def account(request: Request) -> access.Account:
    assert isinstance(request.user, access.Account)  # IsAuthenticated ran first
    return request.user


def queued(operation: Operation) -> Response:
    """202 with the operation to follow (``/api/operations/<id>/``): the worker does the work."""
    return Response(serializers.OperationSerializer(operation).data,
                    status=status.HTTP_202_ACCEPTED)


def check_standing(request: Request, desktop: Desktop, action: DesktopAction, what: str) -> None:
    """The caller sees ``desktop`` (it was found for them); may they reach its ``what``?"""
    if access.standing(request.user, action, desktop) is access.Standing.NONE:
        raise AccessDenied(f"You may not see or change the {what} of {desktop}.")
