"""Which network a desktop joins, and which hosts can give it: the one definition.

A pool chooses its desktops' network (none, isolated, a NAT network, a bridge), or leaves the
choice to the host (``host``). A host says which networks it offers (the bridges that exist
on it, the libvirt NAT networks defined on it, whether the worker may make isolated networks
there) and which one is its default. Placement puts a desktop only on a host that offers the
network its pool needs; the worker's domain spec and the readiness check read the same answer.

Pure: plain attributes in, a small value out (no database, no libvirt), so the models, the
services and the worker share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from vdi.choices import NetworkMode

NETWORK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
BRIDGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,14}")  # a Linux interface: 15 at most
DEFAULT_NAT = "default"  # libvirt's own NAT network


class Offering(Protocol):
    """What a host says about its networks (``vdi.models.Host``)."""

    network_mode: str
    network_name: str
    bridges: str
    nat_networks: str
    isolated_networks: bool


class Choosing(Protocol):
    """What a pool says about its desktops' network (``vdi.models.Pool``)."""

    network_mode: str
    network_name: str


@dataclass(frozen=True)
class Network:
    """A network a desktop joins. ``name``: the NAT network's or the bridge's; isolated
    networks are made per pool by the worker (it names them), and none has no name."""

    mode: str = NetworkMode.NONE
    name: str = ""

    def __str__(self) -> str:
        if self.mode == NetworkMode.BRIDGE:
            return f"the bridge {self.name}"
        if self.mode == NetworkMode.NAT:
            return f"the NAT network {self.name}"
        if self.mode == NetworkMode.ISOLATED:
            return "an isolated network of its pool"
        return "no network"

    @property
    def has_nic(self) -> bool:
        return self.mode != NetworkMode.NONE


NO_NETWORK = Network()


def network(mode: str, name: str = "") -> Network:
    """The network ``mode`` and ``name`` stand for (a NAT network is 'default' unless
    named). ``host`` is not a network: resolve it with ``of_pool``."""
    if mode == NetworkMode.NAT:
        return Network(NetworkMode.NAT, name or DEFAULT_NAT)
    if mode == NetworkMode.BRIDGE:
        return Network(NetworkMode.BRIDGE, name)
    if mode == NetworkMode.ISOLATED:
        return Network(NetworkMode.ISOLATED)
    return NO_NETWORK


def names(text: str) -> list[str]:
    """A host's list of bridges or NAT networks: names separated by spaces or commas."""
    return [name for name in re.split(r"[\s,]+", text) if name]


def host_default(host: Offering) -> Network:
    """What a desktop gets on ``host`` when its pool leaves the choice to the host."""
    return network(host.network_mode, host.network_name)


def of_pool(pool: Choosing, host: Offering) -> Network:
    """The network a desktop of ``pool`` joins on ``host``."""
    if pool.network_mode == NetworkMode.HOST:
        return host_default(host)
    return network(pool.network_mode, pool.network_name)


def offered(host: Offering) -> list[Network]:
    """Every network ``host`` can give a desktop (its default network counts: naming it says
    it is there)."""
    found = [NO_NETWORK]
    if host.isolated_networks:
        found.append(Network(NetworkMode.ISOLATED))
    found += [network(NetworkMode.NAT, name) for name in names(host.nat_networks)]
    found += [network(NetworkMode.BRIDGE, name) for name in names(host.bridges)]
    default = host_default(host)
    if default.mode in (NetworkMode.NAT, NetworkMode.BRIDGE) and default not in found:
        found.append(default)
    return found


def fits(pool: Choosing, host: Offering) -> bool:
    """May a desktop of ``pool`` run on ``host`` (does the host offer its network)?"""
    return of_pool(pool, host) in offered(host)


def pool_errors(pool: Choosing) -> dict[str, str]:
    """What is wrong with a pool's choice by itself (hosts aside)."""
    if pool.network_mode == NetworkMode.BRIDGE and not pool.network_name:
        return {"network_name": "Name the bridge the desktops join on each host."}
    if pool.network_name and not NETWORK_NAME.fullmatch(pool.network_name):
        return {"network_name": "Use letters, digits, dots, dashes and underscores."}
    if pool.network_mode == NetworkMode.BRIDGE and not BRIDGE_NAME.fullmatch(pool.network_name):
        return {"network_name": "A bridge's name has at most 15 characters."}
    return {}


def host_errors(host: Offering) -> dict[str, str]:
    """What is wrong with a host's networks."""
    errors = {}
    for field, pattern in (("bridges", BRIDGE_NAME), ("nat_networks", NETWORK_NAME)):
        wrong = [name for name in names(getattr(host, field)) if not pattern.fullmatch(name)]
        if wrong:
            errors[field] = (f"Not a usable name: {', '.join(wrong)} (letters, digits, dots, "
                             "dashes and underscores; a bridge has at most 15 characters).")
    mode, name = host.network_mode, host.network_name
    if mode == NetworkMode.HOST:
        errors["network_mode"] = "A host's default is a network, not 'the host's network'."
    elif mode == NetworkMode.BRIDGE and not name:
        errors["network_name"] = "Name the bridge on this host that desktops join by default."
    elif mode == NetworkMode.ISOLATED and not host.isolated_networks:
        errors["network_mode"] = ("An isolated default needs 'isolated networks' allowed "
                                  "on this host.")
    elif name and not (BRIDGE_NAME if mode == NetworkMode.BRIDGE else NETWORK_NAME
                       ).fullmatch(name):
        errors["network_name"] = ("Use letters, digits, dots, dashes and underscores (a "
                                  "bridge has at most 15 characters).")
    return errors


def unfit(pool_name: str, pool: Choosing) -> str:
    """Why no host can take a desktop of the pool, and what to do, in words."""
    wanted = network(pool.network_mode, pool.network_name)
    remedies: dict[str, str] = {
        NetworkMode.ISOLATED: "allow isolated networks on a host",
        NetworkMode.NAT: f"list {wanted.name} among a host's NAT networks",
        NetworkMode.BRIDGE: f"list {wanted.name} among a host's bridges"}
    where = remedies.get(wanted.mode, "")
    return (f"No enabled host offers {wanted}, which pool {pool_name} needs: {where} "
            "(admin, Hosts), or choose another network for the pool.")
