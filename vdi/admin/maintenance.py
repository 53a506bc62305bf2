"""Maintenance desktops in the admin: open one from an image's current version (from the
image's page), publish it as the image's next version (from the desktop). Every change goes
through ``vdi.services.maintenance``."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from vdi.admin.base import address
from vdi.models import Desktop, GoldenImage
from vdi.services import access
from vdi.services.errors import AccessDenied, NoCapacity, ServiceError
from vdi.services.installs import INSTALL
from vdi.services.maintenance import (
    NOTES_MAX,
    MaintenanceRequest,
    NextVersionRequest,
    current_version,
    maintenance_desktops,
    open_maintenance_desktop,
    publish_next_version,
)
from vdi.state import TransitionRefused


class MaintenanceForm(forms.Form):
    memory_mib = forms.IntegerField(label="Memory (MiB)", min_value=256, max_value=65536,
                                    initial=2048)
    vcpus = forms.IntegerField(label="vCPUs", min_value=1, max_value=16, initial=2)


class NextVersionForm(forms.Form):
    notes = forms.CharField(required=False, max_length=NOTES_MAX,
                            widget=forms.Textarea(attrs={"rows": 3}),
                            help_text="What changed in this version (kept with it).")
    sysprep = forms.BooleanField(required=False, initial=True, label="Clean for cloning "
                                 "(virt-sysprep: machine-id, host keys, logs; Linux)")


def image_links(image: GoldenImage) -> str:
    """The image page's line: its maintenance desktops, and the way to open one."""
    if image.pk is None:
        return "—"
    found = format_html_join(", ", '<a href="{}">{}</a> (of {}, from {}, {})', (
        (reverse("admin:vdi_desktop_change", args=[d.pk]), d,
         d.owner.get_username() if d.owner else "nobody", d.image_version,
         d.get_status_display()) for d in maintenance_desktops(image)))
    opener = format_html('<a class="button" href="{}">Open a maintenance desktop…</a>',
                         reverse("admin:vdi_goldenimage_maintain", args=[image.pk]))
    return format_html("{} {}", found, opener) if found else opener


def open_view(model_admin: Any, request: HttpRequest, pk: int) -> HttpResponse:
    """Open a maintenance desktop from the image's current version."""
    if not access.holds(request.user, INSTALL):  # no form for those who can't use it
        raise PermissionDenied
    image = get_object_or_404(GoldenImage, pk=pk)
    try:
        base = current_version(image)
    except ServiceError as exc:
        model_admin.message_user(request, str(exc), messages.WARNING)
        return HttpResponseRedirect(reverse("admin:vdi_goldenimage_change", args=[pk]))
    form = MaintenanceForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            desktop = open_maintenance_desktop(request.user, MaintenanceRequest(
                image, **form.cleaned_data), address(request))
        except (ServiceError, AccessDenied, NoCapacity) as exc:
            form.add_error(None, str(exc))
        else:
            model_admin.message_user(
                request, f"{desktop} is being made from {desktop.image_version}: change it "
                "through its console, then publish it as the next version.")
            return HttpResponseRedirect(reverse("desktop-list"))
    return TemplateResponse(request, "admin/vdi/form_page.html", {
        **model_admin.admin_site.each_context(request), "opts": model_admin.opts, "form": form,
        "title": f"Open a maintenance desktop of {image}", "submit": "Open it",
        "intro": f"A desktop of yours made from its current version, {base} (a linked "
                 "clone), with no pool. It appears in your desktops and keeps its changes; "
                 "install or update software "
                 "through its console, then publish it as the image's next version. The "
                 "pools that follow the image's latest version roll it out, canary first."})


def publish_next_view(model_admin: Any, request: HttpRequest, desktop: Desktop) -> HttpResponse:
    """Publish a maintenance desktop as its image's next version (the caller checked that
    the user may publish it)."""
    form = NextVersionForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            operation = publish_next_version(request.user, desktop, NextVersionRequest(
                **form.cleaned_data), address(request))
        except (ServiceError, AccessDenied, TransitionRefused) as exc:
            form.add_error(None, str(exc))
        else:
            model_admin.message_user(request, f"Publishing {desktop} as the next version of "
                                     f"{operation.params['image_name']} ({operation}).")
            return HttpResponseRedirect(reverse("admin:vdi_desktop_change", args=[desktop.pk]))
    return TemplateResponse(request, "admin/vdi/form_page.html", {
        **model_admin.admin_site.each_context(request), "opts": model_admin.opts, "form": form,
        "title": f"Publish {desktop} as the next version of {desktop.image_version.image}"
        if desktop.image_version else f"Publish {desktop}",
        "submit": "Publish as the next version",
        "intro": "The guest is shut down; a copy of its disk, standalone, is cleaned for "
                 "cloning, checked and recorded read-only as the image's next version. The "
                 "maintenance desktop stays (stopped) until you delete it."})
