"""The user's own settings page: the keyboard they type on, and links to their password (a
local account's; a directory account's is changed in the directory), two-factor sign-in and
API tokens."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from vdi.accounts import DIRECTORY_ACCOUNT, has_local_password
from vdi.choices import KeyboardLayout
from vdi.services.access import Account
from vdi.services.preferences import keyboard_layout, set_keyboard_layout
from vdi.views import client_address


class PreferencesForm(forms.Form):
    keyboard_layout = forms.ChoiceField(
        choices=KeyboardLayout.choices, label="Keyboard layout",
        help_text="The keyboard you type on. Your desktops' sessions switch to it, so keys "
                  "and dead keys give the characters printed on them. Desktops without a "
                  "guest agent keep their own; use the console's \"Type it\" there.")


@login_required
def preferences_page(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, Account)
    form = PreferencesForm(request.POST or None,
                           initial={"keyboard_layout": keyboard_layout(user)})
    if request.method == "POST" and form.is_valid():
        layout = KeyboardLayout(form.cleaned_data["keyboard_layout"])
        set_keyboard_layout(user, layout, client_address(request))
        messages.success(request, f"Keyboard layout: {layout.label}. Your running desktops "
                                  "switch to it now.")
        return redirect("preferences")
    return render(request, "vdi/preferences.html", {
        "form": form, "local_password": has_local_password(user),
        "directory_password": DIRECTORY_ACCOUNT})
