"""Groups: Django's own page, with the name held to the rule of every name (``vdi.names``)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group

from vdi.names import validate_name


class GroupForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Group
        fields = ("name", "permissions")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].validators.append(validate_name)


admin.site.unregister(Group)  # registered by django.contrib.auth.admin, imported above


@admin.register(Group)
class NamedGroupAdmin(GroupAdmin):
    form = GroupForm
