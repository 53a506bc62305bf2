"""Behind a TLS proxy every connection comes from the proxy: the client's address is taken
from X-Forwarded-For as far as the trusted proxies go, for sign-in throttling per address
and for the audit log."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.core.asgi import get_asgi_application
from django.test import Client

from portal.proxy import TrustedProxyMiddleware, client_from_forwarded
from vdi.models import AuditEvent

PROXY = "10.0.0.2"


@pytest.mark.parametrize(("header", "count", "client"), [
    ([b"203.0.113.7"], 1, "203.0.113.7"),
    ([b"6.6.6.6, 203.0.113.7"], 1, "203.0.113.7"),  # the client wrote the leftmost entry
    ([b"6.6.6.6", b"203.0.113.7, 10.0.0.3"], 2, "203.0.113.7"),  # two proxies
    ([b"203.0.113.7"], 2, None),  # fewer entries than proxies: not believed
    ([], 1, None),
    ([b"203.0.113.7"], 0, None),
])
def test_the_client_is_as_far_as_the_trusted_proxies_go(header, count, client):
    assert client_from_forwarded(header, count) == client


def sign_in_through(app, forwarded: str, password: str = "wrong") -> int:
    """A failed sign-in POSTed through ``app`` from the proxy, for the client ``forwarded``."""

    async def run() -> int:
        headers = [(b"host", b"localhost"), (b"x-forwarded-for", forwarded.encode())]
        page = HttpCommunicator(app, "GET", "/accounts/login/", headers=headers)
        page.scope["client"] = (PROXY, 443)
        answer = await page.get_response()
        cookie = next(v for k, v in answer["headers"] if k == b"Set-Cookie"
                      and v.startswith(b"csrftoken="))
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', answer["body"])
        assert token is not None
        body = urlencode({"csrfmiddlewaretoken": token.group(1).decode(), "login": "owner",
                          "password": password}).encode()
        post = HttpCommunicator(app, "POST", "/accounts/login/", body=body, headers=[
            *headers, (b"cookie", cookie.split(b";")[0]),
            (b"content-type", b"application/x-www-form-urlencoded")])
        post.scope["client"] = (PROXY, 443)
        return int((await post.get_response())["status"])

    return async_to_sync(run)()


@pytest.mark.django_db(transaction=True)
def test_audit_rows_name_the_client_not_the_proxy(owner, settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    app = TrustedProxyMiddleware(get_asgi_application(), 1)
    assert sign_in_through(app, "6.6.6.6, 203.0.113.7") == 200  # the form, with its error
    failed = AuditEvent.objects.get(action="auth.login_failed")
    assert failed.source_address == "203.0.113.7"


def test_one_client_behind_the_proxy_does_not_lock_out_the_others(owner, settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "3/m/ip"}

    def attempt(client_address: str, password: str = "wrong") -> str:
        response = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=client_address).post(
            "/accounts/login/", {"login": "owner", "password": password})
        return "in" if response.status_code == 302 else (
            "throttled" if b"Too many failed" in response.content else "refused")

    assert [attempt("198.51.100.1") for _ in range(4)][-1] == "throttled"
    assert attempt("198.51.100.2", "owner-password") == "in", "another client still signs in"
