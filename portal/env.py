"""Typed readers for environment variables that fail fast and name the variable.

Every setting of the portal is read through these helpers so that a wrong value stops start-up
with a message such as ``VDI_DEBUG: expected true or false, got 'maybe'``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Env:
    """Reads variables from a mapping (``os.environ`` by default)."""

    def __init__(self, source: Mapping[str, str] | None = None) -> None:
        self.source = os.environ if source is None else source

    def _raw(self, name: str) -> str | None:
        value = self.source.get(name)
        return None if value is None else value.strip()

    def text(self, name: str, default: str) -> str:
        value = self._raw(name)
        return default if value is None or value == "" else value

    def secret(self, name: str) -> str:
        """A secret from ``name``, or read from the file ``name_FILE`` names (one or the other,
        not both); empty when neither is set. Line ends around a file's secret are dropped."""
        value, path = self.text(name, ""), self.text(f"{name}_FILE", "")
        if value and path:
            raise ImproperlyConfigured(f"{name}_FILE: set it or {name}, not both")
        if not path:
            return value
        try:
            return Path(path).read_text().strip("\r\n")
        except OSError as exc:
            raise ImproperlyConfigured(
                f"{name}_FILE: cannot read {path!r} ({exc.strerror})") from None

    def required_str(self, name: str, why: str) -> str:
        value = self._raw(name)
        if not value:
            raise ImproperlyConfigured(f"{name}: must be set ({why})")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ImproperlyConfigured(f"{name}: expected true or false, got {value!r}")

    def number(self, name: str, default: int, minimum: int | None = None,
               maximum: int | None = None) -> int:
        value = self._raw(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: expected an integer, got {value!r}") from None
        if minimum is not None and number < minimum:
            raise ImproperlyConfigured(f"{name}: must be at least {minimum}, got {number}")
        if maximum is not None and number > maximum:
            raise ImproperlyConfigured(f"{name}: must be at most {maximum}, got {number}")
        return number

    def choice(self, name: str, default: str, choices: Sequence[str]) -> str:
        value = self.text(name, default)
        if value not in choices:
            allowed = ", ".join(choices)
            raise ImproperlyConfigured(f"{name}: expected one of {allowed}, got {value!r}")
        return value

    def items(self, name: str, default: Sequence[str]) -> list[str]:
        value = self._raw(name)
        if value is None:
            return list(default)
        return [item.strip() for item in value.split(",") if item.strip()]

    def networks(self, name: str) -> tuple[IPv4Network | IPv6Network, ...]:
        """Comma-separated CIDRs (``10.0.0.0/8,fd00::/8``; a bare address is one host), none
        by default. Host bits set (``10.0.0.1/8``) are a mistake, not a network."""
        networks = []
        for item in self.items(name, []):
            try:
                networks.append(ip_network(item, strict=True))
            except ValueError as exc:
                raise ImproperlyConfigured(
                    f"{name}: {item!r} is not a network in CIDR form such as 10.0.0.0/8 or "
                    f"fd00::/8 ({exc})") from None
        return tuple(networks)

    def path(self, name: str, default: Path) -> Path:
        value = self.text(name, str(default))
        path = Path(value)
        if not path.is_absolute():
            raise ImproperlyConfigured(f"{name}: expected an absolute path, got {value!r}")
        return path

    def url(self, name: str, default: str, schemes: Sequence[str]) -> str:
        value = self.text(name, default)
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in schemes or not rest:
            allowed = ", ".join(f"{s}://" for s in schemes)
            raise ImproperlyConfigured(
                f"{name}: expected a URL starting with {allowed}, got {value!r}"
            )
        return value

    def database(self, name: str, default: str) -> dict[str, Any]:
        value = self.text(name, default)
        try:
            config: dict[str, Any] = environ.Env.db_url_config(value)
        except Exception as exc:  # django-environ raises several types for a bad URL
            raise ImproperlyConfigured(f"{name}: not a database URL ({exc}): {value!r}") from None
        engine = config.get("ENGINE", "")
        if engine not in ("django.db.backends.sqlite3", "django.db.backends.postgresql"):
            raise ImproperlyConfigured(
                f"{name}: only sqlite:// and postgres:// URLs are supported, got {value!r}"
            )
        return config
