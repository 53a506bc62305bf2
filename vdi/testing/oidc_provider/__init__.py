"""A real OpenID Connect provider for the tests: django-oauth-toolkit (discovery, the
authorization code flow with PKCE, RS256-signed ID tokens, userinfo) in a process of its own
on 127.0.0.1, with its own settings, database and signing key in a folder of the test's."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from vdi.testing.processes import ROOT, free_port, wait_for

SETTINGS = "vdi.testing.oidc_provider.settings"


@dataclass(frozen=True)
class DirectoryUser:
    username: str
    password: str
    groups: Sequence[str] = ()
    email: str = ""
    first_name: str = ""
    last_name: str = ""


@dataclass(frozen=True)
class Client:
    client_id: str
    secret: str
    redirect_uris: Sequence[str] = field(default_factory=list)


def write_signing_key(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


class OidcProvider:
    """``start()``, ``seed(users, clients)`` at any time, ``stop()``. The issuer is
    ``http://127.0.0.1:<port>/o``; its sign-in page is ``/login/``."""

    def __init__(self, folder: Path, host: str = "127.0.0.1") -> None:
        self.folder = folder
        self.port = free_port()
        self.origin = f"http://{host}:{self.port}"
        self.issuer = f"{self.origin}/o"
        self.log = folder / "provider.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DJANGO_SETTINGS_MODULE": SETTINGS,
                "OIDC_PROVIDER_DIR": str(self.folder), "OIDC_PROVIDER_ISSUER": self.issuer}

    def seed(self, users: Iterable[DirectoryUser] = (), clients: Iterable[Client] = ()) -> None:
        """Create or update users (with exactly these groups) and clients."""
        spec = {"users": [asdict(u) for u in users], "clients": [asdict(c) for c in clients]}
        subprocess.run([sys.executable, "-m", "vdi.testing.oidc_provider.seed"], cwd=ROOT,
                       env=self._env(), input=json.dumps(spec).encode(), check=True,
                       timeout=120)

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "secret_key").write_text(secrets.token_urlsafe(48))
        write_signing_key(self.folder / "signing_key.pem")
        self.seed()  # the database, migrated
        command = [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{self.port}",
                   "--noreload", "--skip-checks"]
        handle = self.log.open("ab")
        self.process = subprocess.Popen(command, cwd=ROOT, env=self._env(), stdout=handle,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self.discovery, 30, "the OpenID Connect provider to answer")

    def discovery(self) -> dict[str, object] | None:
        """The provider's discovery document, or None while it does not answer."""
        url = f"{self.issuer}/.well-known/openid-configuration"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                document: dict[str, object] = json.load(response)
                return document
        except OSError:
            return None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)
