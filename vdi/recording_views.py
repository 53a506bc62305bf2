"""Replaying a console recording in the browser (for those who may view recordings)."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from vdi.models import Recording
from vdi.services import audit, recordings
from vdi.services.errors import AccessDenied
from vdi.views import client_address


def _recording(request: HttpRequest, pk: int) -> Recording:
    try:
        return recordings.for_replay(request.user, pk)
    except AccessDenied as exc:
        raise Http404(str(exc)) from None


@staff_member_required
def recording_replay(request: HttpRequest, pk: int) -> HttpResponse:
    recording = _recording(request, pk)
    audit.record(request.user, "recording.replay", recording, client_address(request))
    return render(request, "vdi/replay.html", {"recording": recording})


@staff_member_required
def recording_file(request: HttpRequest, pk: int) -> FileResponse:
    recording = _recording(request, pk)
    response = FileResponse(open(recording.path, "rb"),  # noqa: SIM115 (FileResponse closes it)
                            content_type="application/octet-stream")
    response["Cache-Control"] = "private, no-store"
    return response
