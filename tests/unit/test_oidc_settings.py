"""OpenID Connect settings from the environment: off by default, django-allauth's provider app
from VDI_OIDC_*, and a wrong value stops start-up naming the variable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal.env import Env
from portal.oidc import read_oidc, socialaccount_settings
from tests.unit.test_settings import start_django

GOOD = {"VDI_OIDC_ISSUER": "https://id.example.org/realms/corp",
        "VDI_OIDC_CLIENT_ID": "vdi-portal", "VDI_OIDC_CLIENT_SECRET": "s3cret"}


def read(**changes: str):
    return read_oidc(Env({**GOOD, **changes}))


def test_no_issuer_no_provider_and_no_button():
    assert read_oidc(Env({})) is None
    assert socialaccount_settings(None)["SOCIALACCOUNT_PROVIDERS"] == {
        "openid_connect": {"APPS": []}}


def test_defaults():
    config = read()
    assert (config.provider_id, config.name, config.scopes, config.groups_claim,
            config.username_claim, dict(config.role_map)) == (
        "oidc", "single sign-on", ("openid", "profile", "email", "groups"), "groups",
        "preferred_username", {})
    assert config.origin == "https://id.example.org"
    assert config.source == "oidc:oidc"


def test_the_provider_app_lives_in_the_settings():
    config = read(VDI_OIDC_PROVIDER_ID="corp", VDI_OIDC_NAME="Corp ID",
                  VDI_OIDC_SCOPES="openid email roles",
                  VDI_OIDC_ROLE_GROUPS="Administrators=vdi-admins")
    settings = socialaccount_settings(config)
    [app] = settings["SOCIALACCOUNT_PROVIDERS"]["openid_connect"]["APPS"]
    assert app == {
        "provider_id": "corp", "name": "Corp ID", "client_id": "vdi-portal", "secret": "s3cret",
        "settings": {"server_url": "https://id.example.org/realms/corp",
                     "scope": ["openid", "email", "roles"], "oauth_pkce_enabled": True},
    }
    assert config.role_map == {"Administrators": "vdi-admins"}
    assert settings["SOCIALACCOUNT_EMAIL_AUTHENTICATION"] is False
    assert settings["SOCIALACCOUNT_EMAIL_VERIFICATION"] == "none"


def test_the_secret_can_come_from_a_file(tmp_path):
    secret = tmp_path / "client_secret"
    secret.write_text("from-a-file\n")
    config = read_oidc(Env({**GOOD, "VDI_OIDC_CLIENT_SECRET": "",
                            "VDI_OIDC_CLIENT_SECRET_FILE": str(secret)}))
    assert config is not None and config.client_secret == "from-a-file"


def test_plain_http_only_on_loopback():
    assert read(VDI_OIDC_ISSUER="http://127.0.0.1:9000/o").origin == "http://127.0.0.1:9000"
    with pytest.raises(ImproperlyConfigured, match="VDI_OIDC_ISSUER: expected an https://"):
        read(VDI_OIDC_ISSUER="http://id.example.org")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"VDI_OIDC_ISSUER": "id.example.org"}, "VDI_OIDC_ISSUER: expected an https:// URL"),
        ({"VDI_OIDC_ISSUER": "https://id.example.org/?x=1"}, "VDI_OIDC_ISSUER: expected the"),
        ({"VDI_OIDC_CLIENT_ID": ""}, "VDI_OIDC_CLIENT_ID: must be set"),
        ({"VDI_OIDC_CLIENT_SECRET": ""}, "VDI_OIDC_CLIENT_SECRET: must be set"),
        ({"VDI_OIDC_CLIENT_SECRET_FILE": "/nonexistent/secret"},
         "VDI_OIDC_CLIENT_SECRET_FILE: set it or VDI_OIDC_CLIENT_SECRET, not both"),
        ({"VDI_OIDC_PROVIDER_ID": "Corp/ID"}, "VDI_OIDC_PROVIDER_ID: expected lower-case"),
        ({"VDI_OIDC_SCOPES": "profile email"}, "VDI_OIDC_SCOPES: must include openid"),
        ({"VDI_OIDC_GROUPS_CLAIM": "my groups"}, "VDI_OIDC_GROUPS_CLAIM: expected a claim"),
        ({"VDI_OIDC_USERNAME_CLAIM": "a b"}, "VDI_OIDC_USERNAME_CLAIM: expected a claim"),
        ({"VDI_OIDC_ROLE_GROUPS": "Root=wheel"}, "VDI_OIDC_ROLE_GROUPS: 'Root' is not a role"),
    ],
)
def test_a_wrong_value_names_its_variable(changes, message):
    with pytest.raises(ImproperlyConfigured, match=message.replace("?", r"\?")):
        read(**changes)


def test_an_unreadable_secret_file_is_named(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="VDI_OIDC_CLIENT_SECRET_FILE: cannot read"):
        read_oidc(Env({**GOOD, "VDI_OIDC_CLIENT_SECRET": "",
                       "VDI_OIDC_CLIENT_SECRET_FILE": str(tmp_path / "missing")}))


def test_the_portal_refuses_to_start_on_a_wrong_value():
    result = start_django(**{**GOOD, "VDI_OIDC_CLIENT_ID": ""})
    assert result.returncode != 0
    assert "VDI_OIDC_CLIENT_ID: must be set (VDI_OIDC_ISSUER is set)" in result.stderr


def test_the_portal_starts_with_a_provider_and_lets_its_form_go_there():
    code = ("import django; django.setup(); from django.conf import settings; "
            "print(settings.CONTENT_SECURITY_POLICY['DIRECTIVES']['form-action'])")
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings",
               "VDI_SECRET_KEY": "k" * 40, **GOOD}
    result = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[\"'self'\", 'https://id.example.org']"


@pytest.mark.parametrize("document", ["README.md", "docker/.env.example"])
def test_every_variable_is_documented(document):
    root = Path(__file__).resolve().parents[2]
    source = (root / "portal" / "oidc.py").read_text()
    read = set(re.findall(r'"(VDI_OIDC_[A-Z_]+)"', source))
    read |= {f"{name}_FILE" for name in re.findall(r'secret\("(VDI_OIDC_[A-Z_]+)"\)', source)}
    documented = set(re.findall(r"VDI_OIDC_[A-Z_]+", (root / document).read_text()))
    assert len(read) == 10 and read <= documented, read - documented
