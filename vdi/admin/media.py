"""Install media (register a path, or upload with progress), install desktops made from them,
and publishing an install desktop as an image version. Every change goes through
``vdi.services.installs``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from portal import limits
from vdi import actions
from vdi.admin.base import AuditedAdmin, address
from vdi.admin.maintenance import publish_next_view
from vdi.choices import Profile, Readiness
from vdi.models import Desktop, InstallMedia
from vdi.services import access
from vdi.services.errors import AccessDenied, NoCapacity, ServiceError
from vdi.services.installs import (
    INSTALL,
    INSTALL_PROFILES,
    InstallRequest,
    PublishRequest,
    check_media,
    create_install_desktop,
    publish,
    register_media,
    upload_media,
)
from vdi.services.uploads import NotStored
from vdi.state import TransitionRefused

log = logging.getLogger(__name__)
UPLOAD_CHUNK = 1024 * 1024


class RegisterMediaForm(forms.ModelForm):  # type: ignore[type-arg]
    path = forms.CharField(help_text="The ISO file's absolute path on the portal's machine "
                           "(readable by the portal's user and QEMU).")

    class Meta:
        model = InstallMedia
        fields = ("name", "path")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.instance.pk is None and data.get("name") and data.get("path"):
            try:
                check_media(data["name"], Path(data["path"]))
            except ServiceError as exc:
                raise forms.ValidationError(str(exc)) from None
        return data


class InstallForm(forms.Form):
    profile = forms.ChoiceField(choices=[(p.value, p.label) for p in INSTALL_PROFILES],
                                initial=Profile.LINUX_DESKTOP)
    disk_gib = forms.IntegerField(label="Disk (GiB)", min_value=1, initial=20)
    memory_mib = forms.IntegerField(label="Memory (MiB)", min_value=256, max_value=65536,
                                    initial=2048)
    vcpus = forms.IntegerField(label="vCPUs", min_value=1, max_value=16, initial=2)


class PublishForm(forms.Form):
    image_name = forms.CharField(max_length=63, help_text="A new image, or the next version "
                                 "of an existing one (lower-case letters, digits, dashes).")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    readiness = forms.ChoiceField(choices=Readiness.choices, initial=Readiness.AGENT,
                                  help_text="How its desktops say they are ready.")
    session_process = forms.CharField(required=False, max_length=64, help_text="With the "
                                      "agent: the process that means the session is up.")
    sysprep = forms.BooleanField(required=False, initial=True, label="Clean for cloning "
                                 "(virt-sysprep: machine-id, host keys, logs; Linux)")


@admin.register(InstallMedia)
class InstallMediaAdmin(AuditedAdmin):
    list_display = ("name", "volume_id", "size_bytes", "uploaded", "path", "created_at",
                    "install_link")
    readonly_fields = ("size_bytes", "volume_id", "uploaded", "created_by", "created_at")
    form = RegisterMediaForm
    change_list_template = "admin/vdi/installmedia/change_list.html"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None:  # a registered file stays what it was checked to be
            return (*self.readonly_fields, "name", "path")
        return self.readonly_fields

    @admin.display(description="install")
    def install_link(self, obj: InstallMedia) -> str:
        return format_html('<a href="{}">make an install desktop</a>',
                           reverse("admin:vdi_installmedia_install", args=[obj.pk]))

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            return  # nothing of a registered file is editable
        media = register_media(request.user, form.cleaned_data["name"],
                               Path(form.cleaned_data["path"]), address(request))
        obj.pk = media.pk

    def has_add_permission(self, request: HttpRequest) -> bool:
        return access.holds(request.user, INSTALL)

    def get_urls(self) -> list[URLPattern]:
        mine = [
            path("upload/", self.admin_site.admin_view(self.upload_view),
                 name="vdi_installmedia_upload"),
            path("<int:pk>/install/", self.admin_site.admin_view(self.install_view),
                 name="vdi_installmedia_install"),
        ]
        return mine + super().get_urls()

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not access.holds(request.user, INSTALL):
            raise PermissionDenied
        if request.method != "POST":
            return TemplateResponse(request, "admin/vdi/installmedia/upload.html", {
                **self.admin_site.each_context(request), "opts": self.opts,
                "title": "Upload an installer ISO",
                "max_bytes": settings.MEDIA_UPLOAD_MAX_BYTES,
                "upload_pass": limits.upload_pass(int(request.user.pk or 0),
                                                  "admin:vdi_installmedia_upload")})
        return _receive_upload(request)

    def install_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not access.holds(request.user, INSTALL):  # no form for those who can't use it
            raise PermissionDenied
        media = get_object_or_404(InstallMedia, pk=pk)
        form = InstallForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            try:
                desktop = create_install_desktop(request.user, InstallRequest(
                    media, **form.cleaned_data), address(request))
            except (ServiceError, AccessDenied, NoCapacity) as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"{desktop} is being made from {media}: install "
                                  "through its console, then publish it.")
                return HttpResponseRedirect(reverse("desktop-list"))
        return TemplateResponse(request, "admin/vdi/form_page.html", {
            **self.admin_site.each_context(request), "opts": self.opts, "form": form,
            "title": f"Install a desktop from {media}", "submit": "Make the install desktop",
            "intro": "A blank disk with the ISO on a CD-ROM, booted from the CD first. It "
                     "appears in your desktops; install through its console, then publish it "
                     "as an image."})


@require_POST
def _receive_upload(request: HttpRequest) -> HttpResponse:
    """The browser sends the file as the raw body (``?name=``), showing its own progress."""
    length_header = request.META.get("CONTENT_LENGTH")
    length = int(length_header) if length_header and length_header.isdigit() else None
    try:
        media = upload_media(request.user, request.GET.get("name", ""),
                             iter(lambda: request.read(UPLOAD_CHUNK), b""), length,
                             address(request))
    except NotStored as exc:  # the portal's side: no space, a folder it may not write...
        log.error("ISO upload not stored: %s", exc)
        return JsonResponse({"error": f"The upload failed: {exc}."}, status=exc.status)
    except (ServiceError, AccessDenied) as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"name": media.name, "size": media.size_bytes,
                         "volume_id": media.volume_id,
                         "url": reverse("admin:vdi_installmedia_change", args=[media.pk])})


def publish_view(model_admin: Any, request: HttpRequest, pk: int) -> HttpResponse:
    """Publish an install desktop as the next version of an image (a maintenance desktop:
    as the next version of its own)."""
    desktop = get_object_or_404(Desktop, pk=pk)
    if not access.holds(request.user, actions.PUBLISH.permission, desktop):
        raise PermissionDenied  # no form (nor the desktop's name) for those who can't publish
    if desktop.is_maintenance:
        return publish_next_view(model_admin, request, desktop)
    form = PublishForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            operation = publish(request.user, desktop, PublishRequest(**form.cleaned_data),
                                address(request))
        except (ServiceError, AccessDenied, TransitionRefused) as exc:
            form.add_error(None, str(exc))
        else:
            model_admin.message_user(request, f"Publishing {desktop} as "
                                     f"{form.cleaned_data['image_name']} ({operation}).")
            return HttpResponseRedirect(reverse("admin:vdi_desktop_change", args=[pk]))
    return TemplateResponse(request, "admin/vdi/form_page.html", {
        **model_admin.admin_site.each_context(request), "opts": model_admin.opts, "form": form,
        "title": f"Publish {desktop} as an image", "submit": "Publish",
        "intro": "The guest is shut down; a copy of its disk is cleaned for cloning, checked "
                 "and recorded read-only as the image's next version. The install desktop "
                 "stays (stopped) until you delete it."})
