"""The production profile passes Django's deployment checks; every page carries a CSP."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from django.test import Client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_check_deploy_is_clean_with_the_production_profile(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", "VDI_HTTPS": "true",
           "VDI_SECRET_KEY": secrets.token_urlsafe(50), "VDI_ALLOWED_HOSTS": "vdi.example.org",
           "VDI_DATA_DIR": str(tmp_path), "VDI_DEBUG": "false"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_pages_carry_a_strict_content_security_policy(db):
    response = Client().get("/accounts/login/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"


def test_no_inline_script_in_templates():
    """Inline scripts would be blocked by the policy: templates load files, or carry the
    request's nonce (the console page's early ticket request)."""
    import pathlib
    import re

    for template in pathlib.Path(ROOT).glob("*/templates/**/*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert ("src=" in tag or 'type="application/json"' in tag
                    or 'nonce="{{ request.csp_nonce }}"' in tag), (template, tag)
        assert not re.search(r"\son[a-z]+=", text), f"inline event handler in {template}"
