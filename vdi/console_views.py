"""The console page, its ticket endpoint and its diagnosis. No hypervisor calls here."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlparse, urlsplit

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.request import validate_host
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from portal import limits
from vdi import keyfile
from vdi.choices import DesktopStatus, DisplayProtocol
from vdi.console import guards
from vdi.console.codes import EXPLANATIONS, CloseCode
from vdi.console.spice_gateway import parse_listen
from vdi.models import Desktop
from vdi.services import access, sound
from vdi.services.console import (
    FIRST_FRAME_PROTOCOL,
    SUBPROTOCOL,
    TICKET_PREFIX,
    IssuedTicket,
    clipboard_policy,
    issue_ticket,
)
from vdi.services.errors import AccessDenied, ServiceError
from vdi.services.preferences import has_session_agent, keyboard_layout
from vdi.services.spice import issue_native_ticket

WEBSOCKET: dict[str, str] = {DisplayProtocol.VNC: "console", DisplayProtocol.SPICE: "spice"}


def console_desktop(request: HttpRequest, pk: int) -> tuple[Desktop, access.ConsoleMode]:
    """The desktop, if this user may open (or watch) its console; else 404."""
    desktop = get_object_or_404(Desktop.objects.select_related("pool", "host", "owner"), pk=pk)
    mode = access.console_mode(request.user, desktop)
    if mode is None:
        raise Http404("No such desktop.")
    return desktop, mode


@require_GET
@login_required
def console_page(request: HttpRequest, pk: int) -> HttpResponse:
    desktop, mode = console_desktop(request, pk)
    if desktop.display_protocol == DisplayProtocol.SPICE:
        return _spice_console_page(request, desktop)
    pool = desktop.pool
    context = {
        **_policies(desktop),
        "explanations": {int(code): text for code, text in EXPLANATIONS.items()},
        "subprotocol": SUBPROTOCOL,
        "ticket_prefix": TICKET_PREFIX,
        "first_frame_protocol": FIRST_FRAME_PROTOCOL,
        "ticket_refused_code": int(CloseCode.TICKET_REFUSED),
        "view_only": mode is access.ConsoleMode.VIEW_ONLY,
        "someone_elses": desktop.owner_id != request.user.pk,
        **_panels(request, desktop),
        "type_it": not has_session_agent(desktop),
        "recorded": bool(pool is not None and pool.record_sessions
                         and mode is not access.ConsoleMode.VIEW_ONLY),
        "keyboard": keyboard_layout(request.user),
        "page_ticket": page_ticket(request, desktop),
    }
    response = render(request, "vdi/console.html", context)
    response["Cache-Control"] = "no-store"  # it holds a ticket
    return response


def page_ticket(request: HttpRequest, desktop: Desktop) -> dict[str, object] | None:
    """A ticket issued with the page, so that its socket opens while the console's code loads.
    None when one can't be issued now: the page then asks the ticket endpoint, which says why.
    """
    if not guards.allow_ticket(request.META.get("REMOTE_ADDR"), request.user.pk):
        return None
    try:
        issued = issue_ticket(request.user, request.session.session_key, desktop)
    except ServiceError:  # AccessDenied and NotReady among them
        return None
    return ticket_answer(desktop, issued)


def ticket_answer(desktop: Desktop, issued: IssuedTicket) -> dict[str, object]:
    return {
        "ticket": issued.ticket,
        "expires_in": issued.expires_in,
        "view_only": issued.view_only,
        "protocol": desktop.display_protocol,
        "path": f"/ws/desktops/{desktop.pk}/{WEBSOCKET[desktop.display_protocol]}/",
    }


def _policies(desktop: Desktop) -> dict[str, object]:
    """What the console page says about the session's length and what happens after it."""
    pool = desktop.pool
    session_end = None
    if pool is not None and pool.max_session_minutes and desktop.assigned_at:
        session_end = desktop.assigned_at + timedelta(minutes=pool.max_session_minutes)
    return {
        "desktop": desktop,
        "session_end": session_end,
        "idle_minutes": pool.idle_minutes if pool is not None and desktop.owner_id else 0,
        "after_idle": "stopped" if pool is None or pool.is_persistent
        else "given back to the pool",
    }


def _panels(request: HttpRequest, desktop: Desktop) -> dict[str, object]:
    """What the console's Clipboard and Files panels need (``_console_panels.html``)."""
    return {
        "clipboard": clipboard_policy(desktop),
        "clipboard_max": settings.CLIPBOARD_MAX_BYTES,
        "session_agent": has_session_agent(desktop),
        "file_max": settings.FILE_TRANSFER_MAX_BYTES,
        "upload_pass": limits.upload_pass(int(request.user.pk or 0), "desktop-files-upload"),
    }


def _spice_console_page(request: HttpRequest, desktop: Desktop) -> HttpResponse:
    """SPICE shows a desktop to one viewer at a time: its page is only ever interactive."""
    response = render(request, "vdi/spice_console.html", {
        **_policies(desktop), **_panels(request, desktop), "view_only": False,
        "vv_seconds": settings.SPICE_VV_TICKET_SECONDS})
    response["Cache-Control"] = "no-store"  # it holds an upload pass
    return response


@require_POST
@login_required
def console_vv(request: HttpRequest, pk: int) -> HttpResponse:
    """A ``.vv`` file for remote-viewer: through the portal's SPICE gateway, with a
    single-use ticket as its password; nothing in it names the hypervisor."""
    desktop, _mode = console_desktop(request, pk)
    if not guards.allow_ticket(request.META.get("REMOTE_ADDR"), request.user.pk):
        return HttpResponse("Too many console tickets in a short time: wait a minute.",
                            status=429, content_type="text/plain")
    try:
        issued = issue_native_ticket(request.user, request.session.session_key, desktop)
    except AccessDenied as exc:
        return HttpResponse(str(exc), status=403, content_type="text/plain")
    except ServiceError as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain")
    response = HttpResponse(vv_file(desktop, issued.ticket, gateway_url(request)),
                            content_type="application/x-virt-viewer")
    response["Content-Disposition"] = f'attachment; filename="desktop-{desktop.pk}.vv"'
    response["Cache-Control"] = "no-store"
    return response


def gateway_url(request: HttpRequest) -> str:
    """Where native clients find the SPICE gateway (VDI_SPICE_PROXY_URL, else this site's
    host name and the gateway's port)."""
    if settings.SPICE_PROXY_URL:
        return str(settings.SPICE_PROXY_URL)
    _host, port = parse_listen(settings.SPICE_GATEWAY_LISTEN)
    return f"http://{request.get_host().rsplit(':', 1)[0]}:{port}"


def vv_file(desktop: Desktop, ticket: str, proxy: str) -> str:
    """The ``.vv`` text: every value escaped (``vdi.keyfile``), so that a name holding line
    breaks stays the title and adds no key of its own."""
    entries = {
        "type": "spice", "host": f"desktop-{desktop.pk}.spice", "port": "5900",
        "password": ticket, "proxy": proxy, "title": f"{desktop} - %d",
        "delete-this-file": "1", "fullscreen": "0", "toggle-fullscreen": "shift+f11",
        "release-cursor": "shift+f12", "secure-attention": "ctrl+alt+end",
    }
    return keyfile.write("virt-viewer", entries)


@require_POST
@login_required
def console_ticket(request: HttpRequest, pk: int) -> JsonResponse:
    desktop, _mode = console_desktop(request, pk)
    if not guards.allow_ticket(request.META.get("REMOTE_ADDR"), request.user.pk):
        return JsonResponse({"error": "Too many console tickets in a short time: wait a "
                             "minute."}, status=429)
    try:
        issued = issue_ticket(request.user, request.session.session_key, desktop)
    except AccessDenied as exc:
        return JsonResponse({"error": str(exc)}, status=403)
    except ServiceError as exc:
        return JsonResponse({"error": str(exc), "status": desktop.status}, status=409)
    response = JsonResponse(ticket_answer(desktop, issued))
    response["Cache-Control"] = "no-store"
    return response


def origin_problem(origin: str) -> str | None:
    """Why the websocket Origin check would refuse this page's origin, if it would."""
    if not origin:
        return None
    if not validate_host(urlsplit(origin).hostname or "", settings.ALLOWED_HOSTS):
        return (f"The page's origin {origin} is not in VDI_ALLOWED_HOSTS, so the console "
                "websocket is refused.")
    if not OriginValidator(None, settings.ALLOWED_ORIGINS).valid_origin(urlparse(origin)):
        return (f"The page's origin {origin} is not one of VDI_ALLOWED_ORIGINS (scheme, host "
                "and port must match exactly), so the console websocket is refused.")
    return None


@require_GET
@login_required
def console_diagnose(request: HttpRequest, pk: int) -> JsonResponse:
    """What stands between this user and the console, in words."""
    desktop, _mode = console_desktop(request, pk)
    problems = []
    if desktop.status != DesktopStatus.RUNNING:
        problems.append(f"The desktop is not running (it is {desktop.get_status_display()}).")
    elif not desktop.vnc_port and not desktop.vnc_socket:
        problems.append("The worker has not recorded the desktop's display (VNC) endpoint.")
    if problem := origin_problem(request.GET.get("origin", "")):
        problems.append(problem)
    return JsonResponse({
        "status": desktop.status,
        "problems": problems,
        "last_error": desktop.console_error,
        "last_error_at": desktop.console_error_at.isoformat() if desktop.console_error_at
        else None,
    })


@require_POST
@login_required
def sound_test(request: HttpRequest, pk: int) -> JsonResponse:
    """The SPICE console's "Test sound": the desktop plays a short tone."""
    desktop, _mode = console_desktop(request, pk)
    try:
        sound.request_test_tone(request.user, desktop)
    except AccessDenied as exc:
        return JsonResponse({"error": str(exc)}, status=403)
    except ServiceError as exc:
        return JsonResponse({"error": f"No test tone: {exc}."}, status=409)
    return JsonResponse({"status": "playing"}, status=202)
