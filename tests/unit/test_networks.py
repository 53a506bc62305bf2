"""A host and a pool choose a desktop's network: the pool names one, or takes its host's
default; a desktop goes only to a host that offers its pool's network (a clear refusal when
none does); the XML of every combination is valid for libvirt; MACs never collide."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.urls import reverse
from lxml import etree

from tests.support import drain, signed_in
from vdi.hypervisor.domain_xml import build_domain_xml
from vdi.hypervisor.network_xml import build_network_xml, pool_network
from vdi.models import AuditEvent, Desktop, Host, Operation, Pool
from vdi.services import desktops as desktop_service
from vdi.services.desktops import create_desktop
from vdi.services.errors import NoCapacity, NoHostForNetwork, ServiceError
from vdi.worker.specs import domain_spec, network_of, nics_of

pytestmark = pytest.mark.usefixtures("empty_queue")
DOMAIN_SCHEMA = Path("/usr/share/libvirt/schemas/domain.rng")
NETWORK_SCHEMA = Path("/usr/share/libvirt/schemas/network.rng")


@pytest.fixture(scope="module")
def domain_rng() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(DOMAIN_SCHEMA)))


@pytest.fixture(scope="module")
def network_rng() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(NETWORK_SCHEMA)))


def offer(host: Host, **networks: Any) -> Host:
    for field, value in networks.items():
        setattr(host, field, value)
    host.full_clean()
    host.save()
    return host


def with_network(pool: Pool, mode: str, name: str = "") -> Pool:
    pool.network_mode, pool.network_name = mode, name
    pool.save()
    return pool


def interface(xml: str) -> tuple[str | None, str | None] | None:
    """The NIC's (type, source) of a domain's XML, or None without one."""
    found = etree.fromstring(xml.encode()).findall("devices/interface")
    if not found:
        return None
    assert len(found) == 1
    source = found[0].find("source")
    return found[0].get("type"), source.get("network") or source.get("bridge")


ISOLATED = "<the pool's own>"
COMBINATIONS = [  # pool (mode, name), what the host offers -> the NIC's (type, source)
    (("none", ""), {"bridges": "br0", "isolated_networks": True}, None),
    (("isolated", ""), {"isolated_networks": True}, ("network", ISOLATED)),
    (("nat", ""), {"nat_networks": "default"}, ("network", "default")),
    (("nat", "labnat"), {"nat_networks": "default labnat"}, ("network", "labnat")),
    (("bridge", "br-lan"), {"bridges": "br0, br-lan"}, ("bridge", "br-lan")),
    (("host", ""), {"network_mode": "bridge", "network_name": "br0"}, ("bridge", "br0")),
    (("host", ""), {"network_mode": "nat"}, ("network", "default")),
    (("host", ""), {"network_mode": "isolated", "isolated_networks": True},
     ("network", ISOLATED)),
    (("host", ""), {"network_mode": "none", "bridges": "br0"}, None),
]


@pytest.mark.parametrize("profile", ["linux-desktop", "windows"])
@pytest.mark.parametrize(("chosen", "offered", "nic"), COMBINATIONS, ids=[
    "none", "isolated", "nat-default", "nat-named", "bridge", "host-bridge", "host-nat",
    "host-isolated", "host-none"])
def test_each_choice_gives_the_desktop_its_network_in_valid_xml(
        domain_rng, network_rng, owner, pool, host, image_version, profile, chosen, offered,
        nic):
    image_version.profile = profile
    image_version.save()
    offer(host, **offered)
    with_network(pool, *chosen)
    desktop = create_desktop(owner, pool)
    assert bool(desktop.mac_address) == (chosen[0] != "none"), "a MAC when it may have a NIC"

    xml = build_domain_xml(domain_spec(desktop))
    assert domain_rng.validate(etree.fromstring(xml.encode())), domain_rng.error_log
    expected = (nic[0], pool_network(pool.pk).name if nic[1] == ISOLATED else nic[1]) if nic \
        else None
    assert interface(xml) == expected
    if nic is not None:
        assert desktop.mac_address in xml
        model = etree.fromstring(xml.encode()).find("devices/interface/model").get("type")
        assert model == ("e1000e" if profile == "windows" else "virtio")
    made = network_of(desktop)
    assert (made is not None) == (nic is not None and nic[1] == ISOLATED), \
        "the worker makes only isolated networks"
    if made is not None:
        root = etree.fromstring(build_network_xml(made).encode())
        assert network_rng.validate(root), network_rng.error_log
        assert root.find("forward") is None, "isolated: no forwarding"


def test_a_host_default_that_changes_applies_at_the_next_boot(owner, pool, host):
    """A pool that leaves the choice to its host reserves a MAC even while the host's default
    is no network; the host's new default is what the next domain definition gets."""
    with_network(pool, "host")
    desktop = create_desktop(owner, pool)
    assert desktop.mac_address and nics_of(desktop) == ()
    offer(host, network_mode="bridge", network_name="br7")
    desktop = Desktop.objects.select_related("pool", "host").get(pk=desktop.pk)
    assert interface(build_domain_xml(domain_spec(desktop))) == ("bridge", "br7")


def other_host(name: str, memory: int, **networks: Any) -> Host:
    return Host.objects.create(name=name, libvirt_uri="test:///default", domain_type="qemu",
                               storage_dir="/nonexistent", memory_capacity_mib=memory,
                               **networks)


@pytest.mark.parametrize(("chosen", "placed_on"), [
    (("bridge", "br0"), "lan"), (("nat", "office"), "lan"), (("isolated", ""), "lan"),
    (("none", ""), "roomy"), (("host", ""), "roomy")])
def test_placement_passes_over_hosts_that_do_not_offer_the_network(
        owner, pool, host, chosen, placed_on):
    """'roomy' has the most free memory but no network; 'lan' has the bridge, the NAT
    network and allows isolated networks."""
    host.enabled = False
    host.save()
    other_host("roomy", 65536)
    other_host("lan", 2048, bridges="br0", nat_networks="office", isolated_networks=True)
    with_network(pool, *chosen)
    assert create_desktop(owner, pool).host.name == placed_on


@pytest.mark.parametrize(("chosen", "said"), [
    (("isolated", ""), "No enabled host offers an isolated network of its pool, which pool "
                       "Unit pool needs: allow isolated networks on a host"),
    (("nat", ""), "No enabled host offers the NAT network default, which pool Unit pool "
                  "needs: list default among a host's NAT networks"),
    (("bridge", "br9"), "No enabled host offers the bridge br9, which pool Unit pool needs: "
                        "list br9 among a host's bridges"),
])
def test_no_host_with_the_network_is_a_clear_refusal(owner, pool, host, chosen, said):
    """A host without it, and a disabled host with it: the claim is refused with what to do,
    and nothing is recorded or queued."""
    offer(host, bridges="br0", nat_networks="lab")
    other_host("off", 65536, bridges="br9", nat_networks="default", isolated_networks=True,
               enabled=False)
    with_network(pool, *chosen)
    with pytest.raises(NoHostForNetwork) as refused:
        create_desktop(owner, pool)
    assert str(refused.value).startswith(said)
    assert "(admin, Hosts), or choose another network for the pool." in str(refused.value)
    assert not Desktop.objects.exists() and not Operation.objects.exists()
    assert not AuditEvent.objects.filter(action="desktop.create").exists()
    assert drain(host.queue) == []


def test_hosts_with_the_network_but_no_room_are_no_capacity(owner, pool, host):
    offer(host, bridges="br0", memory_capacity_mib=128)
    other_host("roomy", 65536)
    with_network(pool, "bridge", "br0")
    with pytest.raises(NoCapacity, match="No host has room"):
        create_desktop(owner, pool)


@pytest.mark.parametrize(("changes", "field", "said"), [
    ({"network_mode": "bridge"}, "network_name", "Name the bridge"),
    ({"network_mode": "isolated"}, "network_mode", "needs 'isolated networks' allowed"),
    ({"network_mode": "host"}, "network_mode", "not a valid choice"),
    ({"bridges": "br0 a-bridge-name-too-long"}, "bridges", "a-bridge-name-too-long"),
    ({"nat_networks": "ok bad/name"}, "nat_networks", "bad/name"),
    ({"network_mode": "bridge", "network_name": "br;rm"}, "network_name", "Use letters"),
])
def test_a_host_refuses_networks_that_can_not_be(host, changes, field, said):
    for key, value in changes.items():
        setattr(host, key, value)
    with pytest.raises(ValidationError) as refused:
        host.full_clean()
    assert said in " ".join(refused.value.message_dict[field])


def test_what_a_host_offers_is_said_in_words(host):
    offer(host, network_mode="bridge", network_name="br0", bridges="br1",
          nat_networks="default", isolated_networks=True)
    assert host.offered_networks == ("default: the bridge br0; also an isolated network of its "
                                     "pool, the NAT network default, the bridge br1")


def test_a_pool_may_choose_only_a_network_some_host_offers(pool, host):
    for mode, name in (("bridge", "br0"), ("nat", ""), ("isolated", "")):
        with_network(pool, mode, name)
        with pytest.raises(ValidationError) as refused:
            pool.full_clean()
        assert "No enabled host offers" in refused.value.message_dict["network_mode"][0]
    offer(host, bridges="br0", nat_networks="default", isolated_networks=True)
    for mode, name in (("bridge", "br0"), ("nat", ""), ("isolated", ""), ("host", ""),
                       ("none", "")):
        with_network(pool, mode, name)
        pool.full_clean()
    with_network(pool, "bridge", "")
    with pytest.raises(ValidationError, match="Name the bridge"):
        pool.full_clean()


def host_form(host: Host, **changes: Any) -> dict[str, Any]:
    form = {"name": host.name, "libvirt_uri": host.libvirt_uri,
            "domain_type": host.domain_type, "storage_dir": host.storage_dir,
            "vnc_socket_dir": "", "enabled": "on", "cpu_capacity": host.cpu_capacity,
            "memory_capacity_mib": host.memory_capacity_mib, "network_mode": "none",
            "network_name": "", "bridges": "", "nat_networks": ""}
    form.update(changes)
    return form


def test_the_admin_shows_and_checks_a_hosts_networks(admin_user, host):
    client = signed_in(admin_user)
    change = reverse("admin:vdi_host_change", args=[host.pk])
    page = client.get(change).content.decode()
    for field in ("network_mode", "network_name", "bridges", "nat_networks",
                  "isolated_networks"):
        assert f'name="{field}"' in page, field

    refused = client.post(change, host_form(host, network_mode="bridge"))
    assert refused.status_code == 200
    assert "Name the bridge on this host" in refused.content.decode()
    host.refresh_from_db()
    assert host.network_mode == "none"

    saved = client.post(change, host_form(host, network_mode="bridge", network_name="br0",
                                          bridges="br-lab", isolated_networks="on"))
    assert saved.status_code == 302
    host.refresh_from_db()
    assert (host.network_mode, host.network_name, host.bridges, host.isolated_networks) == (
        "bridge", "br0", "br-lab", True)
    assert AuditEvent.objects.filter(action="host.change", actor=admin_user).exists()
    listing = client.get(reverse("admin:vdi_host_changelist")).content.decode()
    assert "default: the bridge br0; also an isolated network of its pool, the bridge " \
           "br-lab" in listing


def test_the_admin_refuses_a_pool_network_no_host_offers(admin_user, owner, pool, host):
    client = signed_in(admin_user)
    change = reverse("admin:vdi_pool_change", args=[pool.pk])
    form = {"name": pool.name, "image": pool.image_id, "vcpus": 1, "memory_mib": 256,
            "description": "", "enabled": "on", "assignment": "dedicated",
            "persistence": "non_persistent", "data_disk_gib": 1, "min_ready": 0, "max_size": 5,
            "max_per_user": 3, "idle_minutes": 0, "max_session_minutes": 0,
            "network_mode": "bridge", "network_name": "br0", "clipboard": "both",
            "display_protocol": "vnc", "max_snapshots": 100, "max_snapshot_gib": 200,
            "backup_every_hours": 0, "backup_keep_last": 3, "backup_keep_daily": 7,
            "backup_keep_weekly": 4, "version_policy": "latest", "rollout_canary_percent": 20,
            "rollout_max_failed_percent": 0, "rollout_health_seconds": 300,
            "users": [owner.pk], "desktops-TOTAL_FORMS": 0, "desktops-INITIAL_FORMS": 0}
    page = client.get(change).content.decode()
    assert "the host&#x27;s default network" in page, "the pool may leave it to the host"
    refused = client.post(change, form)
    assert refused.status_code == 200
    assert "No enabled host offers the bridge br0" in refused.content.decode()
    assert Pool.objects.get(pk=pool.pk).network_mode == "none"
    offer(host, bridges="br0")
    assert client.post(change, form).status_code == 302
    assert Pool.objects.get(pk=pool.pk).network_mode == "bridge"


def test_hosts_offer_what_pools_used_before_hosts_chose(pool, host, image_version):
    """The migration that gave hosts their networks keeps existing pools placeable."""
    migration = importlib.import_module("vdi.migrations.0017_host_networks")
    with_network(pool, "bridge", "br0")
    Pool.objects.create(name="NAT", image=image_version.image, network_mode="nat")
    Pool.objects.create(name="Isolated", image=image_version.image, network_mode="isolated")
    migration.offer_what_pools_use(apps, None)
    host.refresh_from_db()
    assert (host.bridges, host.nat_networks, host.isolated_networks) == ("br0", "default", True)


def test_a_mac_that_is_taken_is_drawn_again(owner, pool, host, monkeypatch):
    offer(host, isolated_networks=True)
    with_network(pool, "isolated")
    first = create_desktop(owner, pool)
    draws = iter([first.mac_address, first.mac_address, "52:54:00:00:00:02"])
    monkeypatch.setattr(desktop_service, "new_mac_address", lambda: next(draws))
    second = create_desktop(owner, pool)
    assert second.mac_address == "52:54:00:00:00:02"
    assert Desktop.objects.get(pk=first.pk).mac_address == first.mac_address
    assert Operation.objects.filter(desktop=second).count() == 1
    assert AuditEvent.objects.filter(action="desktop.create").count() == 2


def test_a_mac_that_stays_taken_is_a_clear_refusal(owner, pool, host, monkeypatch,
                                                   django_capture_on_commit_callbacks):
    offer(host, isolated_networks=True)
    with_network(pool, "isolated")
    first = create_desktop(owner, pool)
    monkeypatch.setattr(desktop_service, "new_mac_address", lambda: first.mac_address)
    with django_capture_on_commit_callbacks(execute=True), \
            pytest.raises(ServiceError, match="No free network address"):
        create_desktop(owner, pool)
    assert list(Desktop.objects.values_list("pk", flat=True)) == [first.pk]
    assert Operation.objects.count() == 1
    assert drain(host.queue) == []

