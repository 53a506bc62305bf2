"""Webhooks reach public addresses only: a URL whose host is, or resolves to, a loopback,
link-local, private, unspecified, multicast or reserved address is refused at delivery time
without a connection, with the same words whatever is listening there; a redirect is not
followed; VDI_WEBHOOK_ALLOWED_NETWORKS lets the operator allow a network (loopback here, the
stand-in for "a public address": nothing in these tests may leave this machine)."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_address, ip_network

import pytest

from tests.support import signed_in
from tests.webhook_helpers import Receiver, loopback_names, network
from vdi import tasks, webhook_targets
from vdi.models import Webhook, WebhookDelivery
from vdi.testing.processes import free_port
from vdi.webhook_targets import REFUSED, Target
from vdi.worker.webhook_http import send

S = WebhookDelivery.Status
LOOPBACK = (ip_network("127.0.0.0/8"),)
# Each class of address a webhook may not reach unless allowed; the port is the receiver's.
REFUSED_HOSTS = [
    "127.0.0.1", "localhost", "[::1]", "0.0.0.0", "169.254.169.254",  # noqa: S104
    "10.20.30.40", "192.168.1.10", "172.16.5.5",  # private
    "[::ffff:127.0.0.1]", "[fe80::1]", "[fd00::1]", "[::]", "100.64.0.1",  # the same, dressed
    "224.0.0.1", "240.0.0.1", "255.255.255.255",  # multicast, reserved, broadcast
]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver(200)
    yield endpoint
    endpoint.close()


def deliver(url: str) -> WebhookDelivery:
    """One delivery of one event to ``url``, attempted by the task the worker runs, while the
    network watch fails the test on any connection or lookup off this machine."""
    hook = Webhook.objects.create(name=url[:100], url=url, events="*", secret="s" * 32)
    delivery = WebhookDelivery.objects.create(webhook=hook, event="desktop.claim",
                                              payload={"event": "desktop.claim"})
    with network.watching():
        tasks.deliver_webhook.apply(args=(delivery.pk, 0)).get()
    delivery.refresh_from_db()
    return delivery


def loopback_alias() -> str:
    """A name other than localhost that this machine resolves to loopback (/etc/hosts)."""
    names = [n for n in loopback_names() if n != "localhost"]
    if not names:
        pytest.skip("/etc/hosts names no loopback address but localhost")
    return names[0]


@pytest.mark.parametrize("host", [*REFUSED_HOSTS, "alias"])
def test_a_refused_address_is_never_contacted_and_the_outcome_says_no_more(
        db, receiver, settings, host):
    settings.WEBHOOK_ALLOWED_NETWORKS = ()  # the default
    host = loopback_alias() if host == "alias" else host
    delivery = deliver(f"http://{host}:{receiver.port}/hooks/vdi")

    assert receiver.got == []
    assert all(port != receiver.port for _, port in network.connections)
    assert (delivery.status, delivery.attempts) == (S.FAILED, 1)  # trying again cannot help
    assert (delivery.response_code, delivery.error) == (None, REFUSED)


def test_an_open_port_and_a_closed_one_look_the_same_in_the_admin(
        db, admin_user, receiver, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ()
    open_port = deliver(f"http://127.0.0.1:{receiver.port}/")
    closed_port = deliver(f"http://127.0.0.1:{free_port()}/")

    def seen(d: WebhookDelivery) -> tuple[object, ...]:
        return (d.status, d.attempts, d.response_code, d.error)

    assert seen(open_port) == seen(closed_port)
    listing = signed_in(admin_user).get("/admin/vdi/webhookdelivery/").content.decode()
    assert listing.count(REFUSED) == 2
    assert "no answer" not in listing and "Connection refused" not in listing


def test_an_allowed_network_receives_the_delivery_by_name_and_by_address(
        db, receiver, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = LOOPBACK
    by_address = deliver(receiver.url)
    by_name = deliver(f"http://localhost:{receiver.port}/hooks/vdi?source=vdi")

    assert (by_address.status, by_address.response_code) == (S.DELIVERED, 200)
    assert (by_name.status, by_name.response_code) == (S.DELIVERED, 200)
    assert [headers["host"] for headers, _ in receiver.got] == [
        f"127.0.0.1:{receiver.port}", f"localhost:{receiver.port}"]


def test_the_allow_list_allows_what_it_lists_and_nothing_more(db, receiver, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = (ip_network("127.0.0.2/32"),)
    elsewhere = deliver(f"http://127.0.0.1:{receiver.port}/")
    settings.WEBHOOK_ALLOWED_NETWORKS = LOOPBACK
    other_classes = [deliver(f"http://{host}:{receiver.port}/")
                     for host in ("[::1]", "10.20.30.40", "169.254.169.254")]

    assert elsewhere.error == REFUSED
    assert [d.error for d in other_classes] == [REFUSED] * 3
    assert receiver.got == []


def test_a_redirect_is_an_answer_not_followed(db, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = LOOPBACK
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    elsewhere = Receiver(200)
    redirecting = Receiver(302, location=elsewhere.url)
    try:
        delivery = deliver(redirecting.url)
    finally:
        redirecting.close()
        elsewhere.close()

    assert len(redirecting.got) == 1 and elsewhere.got == []
    assert (delivery.status, delivery.response_code) == (S.FAILED, 302)
    assert delivery.error == "HTTP 302 Found"


def test_the_connection_goes_to_the_checked_address_not_to_a_new_lookup(receiver):
    """A rebinding DNS server answers the check with one address and the connection with
    another: the connection is made to the checked address, and the name is not looked up
    again (the watch fails the test on a lookup of this name, which no resolver here holds)."""
    target = Target("http", "hooks.rebound.invalid", receiver.port, "/hooks/vdi",
                    (ip_address("127.0.0.1"),))
    with network.watching():
        answer = send(target, b"{}", {"Content-Type": "application/json"})

    assert answer.code == 200
    assert "hooks.rebound.invalid" not in network.lookups
    assert receiver.got[0][0]["host"] == f"hooks.rebound.invalid:{receiver.port}"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/", "http://localhost/hooks",
                                 "https://[::1]/", "http://169.254.169.254/latest/meta-data/",
                                 "http://10.0.0.5/", "http://0.0.0.0:6379/"])
def test_the_admin_refuses_a_url_delivery_would_refuse(admin_user, settings, url):
    settings.WEBHOOK_ALLOWED_NETWORKS = ()
    with network.watching():
        page = signed_in(admin_user).post("/admin/vdi/webhook/add/", {
            "name": "internal", "url": url, "events": "*", "secret": "s" * 32,
            "enabled": "on"})

    assert page.status_code == 200
    assert "Webhooks may not be sent to this address" in page.content.decode()
    assert not Webhook.objects.exists()


def test_the_admin_saves_a_url_in_an_allowed_network(admin_user, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = LOOPBACK
    with network.watching():
        page = signed_in(admin_user).post("/admin/vdi/webhook/add/", {
            "name": "siem", "url": "http://localhost:9000/hooks", "events": "*",
            "secret": "s" * 32, "enabled": "on"})

    assert page.status_code == 302
    assert Webhook.objects.get().url == "http://localhost:9000/hooks"


def test_which_addresses_are_public():
    public = ["8.8.8.8", "2001:4860::8888", "::ffff:8.8.8.8"]
    refused = [host.strip("[]") for host in REFUSED_HOSTS if host != "localhost"] + [
        "192.0.2.1", "198.18.0.1", "fec0::1", "2002:7f00:1::", "64:ff9b::7f00:1", "ff02::1"]
    assert [a for a in public if not webhook_targets.allowed(ip_address(a), ())] == []
    assert [a for a in refused if webhook_targets.allowed(ip_address(a), ())] == []
    assert webhook_targets.allowed(ip_address("::ffff:127.0.0.1"), LOOPBACK)
