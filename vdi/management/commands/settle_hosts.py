"""Settle each enabled host's domain type (``kvm`` or ``qemu``) before the portal takes
claims: ``scripts/run`` runs this before it starts the services, and says what it decided."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from vdi.worker.hosts import settle_hosts


class Command(BaseCommand):
    help = "Decide kvm or qemu for hosts whose domain type is 'auto' (a probe guest), once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", help="host names (default: every enabled host)")

    def handle(self, *args: Any, **options: Any) -> None:
        for line in settle_hosts(options["names"] or None):
            self.stdout.write(line)
