"""Run the SPICE gateway that native clients (remote-viewer with the portal's .vv file)
connect through: ``manage.py spice_gateway [--listen host:port]``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from vdi.console.spice_gateway import parse_listen, serve


class Command(BaseCommand):
    help = "Serve native SPICE clients (HTTP CONNECT, then SPICE) in front of the desktops."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--listen", default=settings.SPICE_GATEWAY_LISTEN,
                            help="host:port (default: VDI_SPICE_GATEWAY_LISTEN)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            host, port = parse_listen(options["listen"])
        except ValueError as exc:
            raise CommandError(f"--listen / VDI_SPICE_GATEWAY_LISTEN: {exc}") from None
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        asyncio.run(serve(host, port))
