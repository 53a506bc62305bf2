"""The REST API: personal tokens and their scopes, the same rules as the pages, errors as
JSON with a code, filters and pages, and a schema that describes it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.support import drain, purge
from vdi.choices import DesktopStatus
from vdi.models import ApiToken, AuditEvent, Desktop, Pool
from vdi.services import tokens
from vdi.services.errors import ServiceError


def bearer(key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def token_for(user, *scopes: str, days: int = 30) -> str:
    return tokens.make(user, "tests", list(scopes or ["read"]), days).key


@pytest.fixture
def reader(owner) -> Client:
    return bearer(token_for(owner, "read"))


@pytest.fixture
def writer(owner) -> Client:
    return bearer(token_for(owner, "read", "write"))


def test_without_credentials_the_answer_is_401_in_the_error_shape(db):
    response = Client().get("/api/desktops/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_token_reads_its_owners_desktops_only(reader, running_desktop, outsider, pool):
    Desktop.objects.create(owner=outsider, pool=pool, host=running_desktop.host,
                           image_version=running_desktop.image_version, domain_name="other",
                           disk_path="/nonexistent/o.qcow2", serial_log_path="/n/o.log",
                           vcpus=1, memory_mib=256)
    body = reader.get("/api/desktops/").json()
    assert [d["id"] for d in body["results"]] == [running_desktop.pk]
    desktop = body["results"][0]
    assert desktop["status"] == "running" and desktop["owner"] == "owner"
    assert "stop" in desktop["actions"]
    assert desktop["console_url"] == f"/desktops/{running_desktop.pk}/console/"


def test_a_read_token_cannot_act(reader, running_desktop, host, empty_queue):
    response = reader.post(f"/api/desktops/{running_desktop.pk}/actions/stop/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    running_desktop.refresh_from_db()
    assert running_desktop.status == DesktopStatus.RUNNING
    assert drain(host.queue) == []


def test_a_write_token_acts_as_its_owner(writer, running_desktop, host, empty_queue,
                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = writer.post(f"/api/desktops/{running_desktop.pk}/actions/stop/")
    assert response.status_code == 202
    assert response.json()["kind"] == "stop"
    running_desktop.refresh_from_db()
    assert running_desktop.status == DesktopStatus.STOPPING
    assert [m["args"][0] for m in drain(host.queue)] == ["stop"]


def test_an_action_the_state_refuses_is_a_409_with_the_reason(writer, running_desktop):
    response = writer.post(f"/api/desktops/{running_desktop.pk}/actions/start/")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] in {"wrong_state", "refused"}
    assert "running" in error["message"].lower()


def test_an_unknown_action_is_refused_by_name(writer, running_desktop):
    response = writer.post(f"/api/desktops/{running_desktop.pk}/actions/explode/")
    assert response.status_code == 409
    assert "explode" in response.json()["error"]["message"]


def test_someone_elses_desktop_is_not_found(running_desktop, outsider):
    client = bearer(token_for(outsider, "read", "write"))
    assert client.get(f"/api/desktops/{running_desktop.pk}/").status_code == 404
    response = client.post(f"/api/desktops/{running_desktop.pk}/actions/stop/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_claim_through_the_api(owner, pool, host, image_version, empty_queue,
                               django_capture_on_commit_callbacks):
    client = bearer(token_for(owner, "read", "write"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/pools/{pool.pk}/claim/")
    assert response.status_code == 201, response.content
    desktop = Desktop.objects.get(pk=response.json()["id"])
    assert desktop.owner == owner and desktop.status == DesktopStatus.PROVISIONING
    assert AuditEvent.objects.filter(action="desktop.claim", actor=owner).exists()
    assert [m["args"][0] for m in drain(host.queue)] == ["provision"]


def test_a_pool_not_granted_is_not_found(outsider, pool):
    client = bearer(token_for(outsider, "read", "write"))
    assert client.post(f"/api/pools/{pool.pk}/claim/").status_code == 404
    assert client.get("/api/pools/").json()["results"] == []


def test_an_expired_or_revoked_token_is_refused(owner, running_desktop):
    key = token_for(owner, "read")
    assert bearer(key).get("/api/desktops/").status_code == 200
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert bearer(key).get("/api/desktops/").status_code == 401
    key = token_for(owner, "read")
    token = ApiToken.objects.get(key_hash=tokens.digest(key))
    assert bearer(key).delete(f"/api/tokens/{token.pk}/").status_code == 403  # read scope
    tokens.revoke(owner, token.pk)
    assert bearer(key).get("/api/desktops/").json()["error"]["code"] == "authentication_failed"


def test_a_token_of_a_disabled_account_is_refused(owner, running_desktop):
    key = token_for(owner, "read")
    owner.is_active = False
    owner.save()
    assert bearer(key).get("/api/desktops/").status_code == 401


def test_a_password_change_revokes_every_token_and_says_why(owner, running_desktop):
    keys = [token_for(owner, "read"), token_for(owner, "write")]
    owner.set_password("a-new-password-456")
    owner.save()
    for key in keys:
        assert bearer(key).get("/api/desktops/").status_code == 401
    revoked = AuditEvent.objects.filter(action="api_token.revoke", actor=owner)
    assert [event.details for event in revoked] == [{"reason": "password changed"}] * 2
    client = Client()
    client.force_login(owner)
    assert "Changing or resetting your password revokes all your tokens" in \
        client.get("/settings/tokens/").content.decode()


def test_a_password_reset_by_mail_revokes_a_token_made_with_the_old_password(
        owner, running_desktop, mailoutbox):
    key = token_for(owner, "write")  # as if made by someone who stole the password
    owner.email = "owner@example.org"
    owner.save()
    Client().post("/accounts/password/reset/", {"email": "owner@example.org"})
    link = re.search(r"http://\S+/accounts/password/reset/key/\S+", mailoutbox[0].body)
    assert link, mailoutbox[0].body
    browser = Client()
    form = browser.get(link.group(0), follow=True)
    answer = browser.post(form.redirect_chain[-1][0] if form.redirect_chain else link.group(0),
                          {"password1": "reset-password-789", "password2": "reset-password-789"})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    owner.refresh_from_db()
    assert owner.check_password("reset-password-789")
    assert bearer(key).get("/api/desktops/").status_code == 401


def test_a_token_revokes_itself(owner):
    key = token_for(owner, "read", "write")
    token = ApiToken.objects.get(key_hash=tokens.digest(key))
    assert bearer(key).delete(f"/api/tokens/{token.pk}/").status_code == 204
    assert bearer(key).get("/api/tokens/").status_code == 401
    assert AuditEvent.objects.filter(action="api_token.revoke").count() == 1


def test_only_the_key_digest_is_kept(owner):
    made = tokens.make(owner, "ci", ["read"], 5)
    assert made.key.startswith("vdi_") and made.token.prefix == made.key[4:12]
    stored = ApiToken.objects.get(pk=made.token.pk)
    assert made.key not in {stored.key_hash, stored.prefix, stored.name}
    assert AuditEvent.objects.get(action="api_token.create").details["scopes"] == ["read"]


@pytest.mark.parametrize(("name", "scopes", "days", "words"), [
    ("", ["read"], 5, "name"), ("x", [], 5, "scopes"), ("x", ["admin"], 5, "scopes"),
    ("x", ["read"], 0, "days"), ("x", ["read"], 100000, "days"),
    ("ci\u202etoken", ["read"], 5, "U\\+202E RIGHT-TO-LEFT OVERRIDE")])
def test_bad_tokens_are_refused_with_a_reason(owner, name, scopes, days, words):
    with pytest.raises(ServiceError, match=words):
        tokens.make(owner, name, scopes, days)


def test_the_tokens_page_shows_a_new_key_once(owner):
    client = Client()
    client.force_login(owner)
    response = client.post("/settings/tokens/", {"name": "laptop", "scopes": ["read"],
                                                 "days": 7})
    token = ApiToken.objects.get(user=owner)
    page = response.content.decode()
    assert response["Cache-Control"] == "no-store"
    key = page.split('id="new-token-key">')[1].split("<")[0]
    assert tokens.authenticate(key) == token
    assert key not in client.get("/settings/tokens/").content.decode()
    client.post(f"/settings/tokens/{token.pk}/revoke/")
    assert tokens.authenticate(key) is None


def test_a_session_calls_the_api_with_its_csrf_token(owner, running_desktop):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.get("/api/desktops/").status_code == 200
    response = client.post(f"/api/desktops/{running_desktop.pk}/actions/stop/")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]


def test_console_ticket_for_a_session_not_for_a_token(owner, running_desktop):
    client = Client()
    client.force_login(owner)
    response = client.post(f"/api/desktops/{running_desktop.pk}/console-ticket/")
    assert response.status_code == 200
    body = response.json()
    assert body["websocket"] == f"/ws/desktops/{running_desktop.pk}/console/"
    assert len(body["ticket"]) > 30 and response["Cache-Control"] == "no-store"
    refused = bearer(token_for(owner, "read", "write")).post(
        f"/api/desktops/{running_desktop.pk}/console-ticket/")
    assert refused.status_code == 403
    assert "browser session" in refused.json()["error"]["message"]


def test_filters_and_pages(owner, pool, host, image_version):
    for n in range(5):
        Desktop.objects.create(owner=owner, pool=pool, host=host, image_version=image_version,
                               domain_name=f"f{n}", disk_path=f"/n/{n}", serial_log_path="/n",
                               vcpus=1, memory_mib=256,
                               status="stopped" if n % 2 else "running")
    client = bearer(token_for(owner, "read"))
    assert client.get("/api/desktops/?status=stopped").json()["count"] == 2
    page = client.get("/api/desktops/?limit=2&offset=2").json()
    assert page["count"] == 5 and len(page["results"]) == 2 and page["next"]
    invalid = client.get("/api/desktops/?status=sleeping")
    assert invalid.status_code == 400
    assert invalid.json()["error"]["code"] == "invalid"


@pytest.mark.parametrize("path", ("/api/desktops/?pool={}", "/api/operations/?desktop={}",
                                  "/api/operations/?image={}"))
def test_a_filter_by_id_tells_nothing_of_what_exists(path, owner, outsider, running_desktop):
    """An id that exists but is someone else's, and one that does not exist: the same
    answer, an empty page (no 400 for the one, 200 for the other)."""
    theirs = Pool.objects.create(name="not granted", image=running_desktop.pool.image)
    foreign = Desktop.objects.create(
        owner=owner, pool=theirs, host=running_desktop.host,
        image_version=running_desktop.image_version, domain_name="theirs",
        disk_path="/n/theirs", serial_log_path="/n", vcpus=1, memory_mib=256)
    existing = {"pool": theirs.pk, "desktop": foreign.pk,
                "image": running_desktop.pool.image.pk}[path.split("?")[1].split("=")[0]]
    client = bearer(token_for(outsider, "read"))
    answers = [client.get(path.format(n)) for n in (existing, 987654)]
    assert [a.status_code for a in answers] == [200, 200]
    assert [a.json()["count"] for a in answers] == [0, 0]
    assert client.get(path.format("abc")).status_code == 400, "not a number: said so"


def test_my_quota(owner, running_desktop):
    body = bearer(token_for(owner, "read")).get("/api/quotas/me/").json()
    assert body["desktops"] == 1 and body["memory_mib"] == 256
    assert body["max_desktops"] >= 1


def test_schema_and_offline_docs(db):
    schema = Client().get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/api/desktops/{id}/actions/{name}/" in text and "bearer" in text
    docs = Client().get("/api/docs/")
    page = docs.content.decode()
    assert docs.status_code == 200
    assert "drf_spectacular_sidecar/swagger-ui-dist" in page  # served here, not from a CDN
    assert "<script>" not in page and "<style>" not in page  # nothing inline: the CSP holds


@pytest.fixture(autouse=True)
def _clean_queue(host):
    purge(host.queue)


def test_an_unknown_api_path_is_a_json_404_and_a_page_404_elsewhere(owner):
    client = Client()
    client.force_login(owner)
    response = client.post("/api/pools/0.5/claim/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert client.get("/no-such-page/")["Content-Type"].startswith("text/html")


def test_the_settings_page_leads_to_tokens_and_two_factor(owner):
    client = Client()
    client.force_login(owner)
    page = client.get("/settings/").content.decode()
    assert 'href="/settings/tokens/"' in page and 'href="/accounts/2fa/"' in page
