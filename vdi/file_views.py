"""The console's Files panel: upload into the desktop, list its Shared folder, download."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from vdi.models import Desktop
from vdi.services import transfers
from vdi.services.access import Account
from vdi.services.errors import AccessDenied, ServiceError
from vdi.views import client_address

CHUNK = 1024 * 1024


def _desktop(request: HttpRequest, pk: int) -> tuple[Account, Desktop]:
    user = request.user
    assert isinstance(user, Account)
    return user, get_object_or_404(Desktop.objects.select_related("host", "image_version"),
                                   pk=pk)


def _refused(exc: Exception) -> JsonResponse:
    """Someone without access learns nothing about the desktop (404, as the console page)."""
    if isinstance(exc, AccessDenied):
        return JsonResponse({"error": "No such desktop."}, status=404)
    return JsonResponse({"error": str(exc)}, status=400)


@login_required
@require_GET
def files_status(request: HttpRequest, pk: int) -> HttpResponse:
    user, desktop = _desktop(request, pk)
    try:
        status = transfers.status(user, desktop)
    except (AccessDenied, ServiceError) as exc:
        return _refused(exc)
    for transfer in status["transfers"]:
        if transfer["direction"] == "out" and transfer["status"] == "done":
            transfer["url"] = reverse("file-download", args=[transfer["id"]])
    return JsonResponse(status)


@login_required
@require_POST
def files_upload(request: HttpRequest, pk: int) -> HttpResponse:
    """The browser sends the file as the raw body (``?name=``), showing its own progress."""
    user, desktop = _desktop(request, pk)
    length_header = request.META.get("CONTENT_LENGTH")
    length = int(length_header) if length_header and length_header.isdigit() else None
    try:
        transfer = transfers.upload(user, desktop, request.GET.get("name", ""),
                                    iter(lambda: request.read(CHUNK), b""), length,
                                    client_address(request))
    except (AccessDenied, ServiceError) as exc:
        return _refused(exc)
    return JsonResponse({"id": transfer.pk, "name": transfer.name, "size": transfer.size_bytes},
                        status=202)


@login_required
@require_POST
def files_list(request: HttpRequest, pk: int) -> HttpResponse:
    user, desktop = _desktop(request, pk)
    try:
        transfers.request_listing(user, desktop)
    except (AccessDenied, ServiceError) as exc:
        return _refused(exc)
    return JsonResponse({}, status=202)


@login_required
@require_POST
def files_fetch(request: HttpRequest, pk: int) -> HttpResponse:
    user, desktop = _desktop(request, pk)
    try:
        transfer = transfers.request_download(user, desktop, request.POST.get("name", ""),
                                              client_address(request))
    except (AccessDenied, ServiceError) as exc:
        return _refused(exc)
    return JsonResponse({"id": transfer.pk}, status=202)


@login_required
@require_GET
def file_download(request: HttpRequest, transfer_id: int) -> FileResponse:
    user = request.user
    assert isinstance(user, Account)
    try:
        transfer = transfers.downloaded_file(user, transfer_id)
    except AccessDenied as exc:
        raise Http404(str(exc)) from None
    response = FileResponse(open(transfer.spool_path, "rb"),  # noqa: SIM115 (closed by it)
                            as_attachment=True, filename=transfer.name)
    response["Cache-Control"] = "private, no-store"
    return response
