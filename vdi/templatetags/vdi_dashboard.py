"""``{% dashboard_url as url %}``: the dashboard's address for those who may see it, else
empty (the portal's top bar and the admin's index link to it)."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from vdi.services import dashboard

register = template.Library()


@register.simple_tag(takes_context=True)
def dashboard_url(context: dict[str, Any]) -> str:
    user = context.get("user")
    if user is None or dashboard.scope_of(user) is None:
        return ""
    return reverse("dashboard")
