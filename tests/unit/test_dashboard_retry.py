"""The dashboard's Retry: the same request again through the desktop services (access, rules,
compare-and-set, audit, Operation, task on commit), or a refusal that says why."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tests.dashboard_fixtures import desktop, failed
from tests.support import drain, signed_in
from vdi.choices import DesktopStatus, OperationStatus
from vdi.models import AuditEvent, Operation
from vdi.services import retries
from vdi.services.errors import AccessDenied, ServiceError

pytestmark = pytest.mark.usefixtures("empty_queue")


def retry_url(operation: Operation) -> str:
    return f"/dashboard/operations/{operation.pk}/retry/"


@pytest.mark.parametrize("persona", ["operator", "administrator", "admin_user"])
def test_a_failed_start_is_asked_again(persona, request, pool, host, owner,
                                       django_capture_on_commit_callbacks):
    broken = desktop(pool, host, status=DesktopStatus.ERROR, owner=owner)
    first = failed(broken, "start", error="Start failed.")
    person = request.getfixturevalue(persona)
    client = signed_in(person)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(retry_url(first), REMOTE_ADDR="192.0.2.44")
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    broken.refresh_from_db()
    assert broken.status == DesktopStatus.STARTING
    again = Operation.objects.exclude(pk=first.pk).get(desktop=broken)
    assert (again.kind, again.status, again.requested_by) == (
        "start", OperationStatus.QUEUED, person)
    event = AuditEvent.objects.get(action="desktop.start")
    assert (event.actor, event.target_id, event.source_address, event.details["retry_of"]) == (
        person, str(broken.pk), "192.0.2.44", first.pk)
    assert drain(host.queue) == [
        {"task": "vdi.desktop_action", "args": ["start", broken.pk, again.pk]}]
    page = client.get("/dashboard/").content.decode()
    assert "Asked again: start of" in page


@pytest.mark.parametrize("persona", ["helpdesk", "owner", "outsider", "other_operator"])
def test_those_who_may_not_are_refused_and_nothing_happens(persona, request, pool, host, owner,
                                                           django_capture_on_commit_callbacks):
    broken = desktop(pool, host, status=DesktopStatus.ERROR, owner=owner)
    first = failed(broken, "start")
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(request.getfixturevalue(persona)).post(retry_url(first))
    assert response.status_code == 403
    broken.refresh_from_db()
    assert broken.status == DesktopStatus.ERROR
    assert Operation.objects.filter(desktop=broken).count() == 1
    assert not AuditEvent.objects.filter(action="desktop.start").exists()
    assert drain(host.queue) == []


def test_anonymous_goes_to_sign_in(client, pool, host):
    first = failed(desktop(pool, host, status=DesktopStatus.ERROR), "start")
    response = client.post(retry_url(first))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_failed_provisioning_provisions_the_same_desktop_again(
        operator, pool, host, owner, django_capture_on_commit_callbacks):
    broken = desktop(pool, host, status=DesktopStatus.ERROR, owner=owner)
    first = failed(broken, "provision", params={"backup": 7})
    with django_capture_on_commit_callbacks(execute=True):
        again = retries.retry(operator, first.pk, "192.0.2.1")
    broken.refresh_from_db()
    assert (broken.status, broken.owner) == (DesktopStatus.PROVISIONING, owner)
    assert (again.kind, again.params) == ("provision", {"backup": 7}), "the same request"
    assert AuditEvent.objects.get(action="desktop.provision").details == {"retry_of": first.pk}
    assert drain(host.queue) == [
        {"task": "vdi.desktop_action", "args": ["provision", broken.pk, again.pk]}]


def refused(user, operation: Operation) -> str:
    with pytest.raises(ServiceError) as caught:
        retries.retry(user, operation.pk)
    return str(caught.value)


def test_refusals_say_why(administrator, pool, host, owner, django_capture_on_commit_callbacks):
    stopped_badly = desktop(pool, host, status=DesktopStatus.ERROR, owner=owner)
    stop = failed(stopped_badly, "stop")
    assert refused(administrator, stop) == (
        "The desktop is error now, so a stop can't start. What it can do now: Start, Delete, "
        "Reset, Release.")

    superseded = desktop(pool, host, status=DesktopStatus.ERROR, owner=owner)
    old = failed(superseded, "start")
    failed(superseded, "reset")
    assert "A later operation ran on this desktop since" in refused(administrator, old)

    snapshotted = desktop(pool, host, status=DesktopStatus.RUNNING, owner=owner)
    snap = failed(snapshotted, "snapshot")
    assert "Snapshots page" in refused(administrator, snap)

    fine = desktop(pool, host, status=DesktopStatus.ERROR, owner=owner)
    done = Operation.objects.create(kind="start", desktop=fine, target="x",
                                    status=OperationStatus.SUCCEEDED)
    assert "Only a failed operation is retried" in refused(administrator, done)

    persistent = desktop(pool, host, status=DesktopStatus.ERROR, owner=owner)
    pool.persistence = "persistent"
    pool.save()
    release = failed(persistent, "release")
    assert "persistent desktop keeps its user's data" in refused(administrator, release)
    assert Operation.objects.filter(status=OperationStatus.QUEUED).count() == 0
    assert drain(host.queue) == []


def test_an_image_build_is_not_retried_here_and_the_page_says_so(admin_user, image_version):
    build = Operation.objects.create(kind="build_image", image=image_version.image,
                                     target="an image", status=OperationStatus.FAILED,
                                     error="mmdebstrap failed", finished_at=timezone.now())
    page = signed_in(admin_user).get("/dashboard/parts/failures/").content.decode()
    assert "mmdebstrap failed" in page
    assert "Image builds are started again from the images&#x27; admin." in page
    assert retry_url(build) not in page
    with pytest.raises(AccessDenied):  # not a desktop's: nobody's to retry here
        retries.retry(admin_user, build.pk)


def test_the_page_offers_retry_only_where_it_would_be_taken(operator, pool, host, owner):
    open_ = desktop(pool, host, status=DesktopStatus.ERROR, owner=owner)
    retryable = failed(open_, "start", error="Start failed.")
    closed = desktop(pool, host, status=DesktopStatus.ERROR, owner=owner)
    stuck = failed(closed, "stop", error="Stop failed.")
    page = signed_in(operator).get("/dashboard/parts/failures/").content.decode()
    assert retry_url(retryable) in page and retry_url(stuck) not in page
    assert "so a stop can&#x27;t start" in page
