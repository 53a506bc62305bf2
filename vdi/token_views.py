"""The user's API tokens page: make one (its key shown once), see them, revoke one."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from vdi.models import ApiToken
from vdi.services import tokens
from vdi.services.access import Account
from vdi.services.errors import ServiceError
from vdi.views import client_address

SCOPE_CHOICES = [(ApiToken.READ, "read: see what you may see"),
                 (ApiToken.WRITE, "write: also act (get desktops, start, stop...)")]


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for.")
    scopes = forms.MultipleChoiceField(choices=SCOPE_CHOICES, initial=[ApiToken.READ],
                                       widget=forms.CheckboxSelectMultiple)
    days = forms.IntegerField(min_value=1, initial=90, label="Lifetime (days)")


@login_required
def token_page(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, Account)
    form = TokenForm(request.POST or None)
    made = None
    if request.method == "POST" and form.is_valid():
        try:
            made = tokens.make(user, form.cleaned_data["name"], form.cleaned_data["scopes"],
                               form.cleaned_data["days"], client_address(request))
        except ServiceError as exc:
            form.add_error(None, str(exc))
        else:
            form = TokenForm()
    response = render(request, "vdi/tokens.html", {
        "form": form, "made": made, "tokens": ApiToken.objects.filter(user=user)})
    response["Cache-Control"] = "no-store"  # a new key is on it
    return response


@require_POST
@login_required
def token_revoke(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    user = request.user
    assert isinstance(user, Account)
    try:
        token = tokens.revoke(user, pk, client_address(request))
    except ServiceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Token {token.name} revoked.")
    return redirect("api-tokens")
