"""libvirt network XML for the portal's own networks. Pure: no libvirt, no Django.

An *isolated* network has a bridge, DHCP and no forwarding: the desktops of one pool reach
each other and the host's bridge address, nothing else. A *NAT* network forwards outbound
traffic through the host (for real deployments; never on the build machines, where guests
get no outward path). Tests validate both against libvirt's RelaxNG schema.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from lxml import etree


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    bridge: str
    subnet: str  # "10.100.7.0/24"
    nat: bool = False


def pool_network(pool_id: int) -> NetworkSpec:
    """The isolated network of a pool: its own bridge and a /24 of 10.0.0.0/8."""
    second, third = 100 + (pool_id >> 8) % 150, pool_id & 0xFF
    return NetworkSpec(name=f"vdi-pool-{pool_id}", bridge=f"vdibr{pool_id}"[:15],
                       subnet=f"10.{second}.{third}.0/24")


def build_network_xml(spec: NetworkSpec) -> str:
    net = ipaddress.ip_network(spec.subnet)
    hosts = list(net.hosts())
    network = etree.Element("network")
    etree.SubElement(network, "name").text = spec.name
    if spec.nat:
        etree.SubElement(network, "forward", mode="nat")
    etree.SubElement(network, "bridge", name=spec.bridge, stp="off", delay="0")
    etree.SubElement(network, "dns", enable="no")
    ip = etree.SubElement(network, "ip", address=str(hosts[0]), netmask=str(net.netmask))
    dhcp = etree.SubElement(ip, "dhcp")
    etree.SubElement(dhcp, "range", start=str(hosts[len(hosts) // 2]), end=str(hosts[-1]))
    return etree.tostring(network, pretty_print=True, encoding="unicode")
