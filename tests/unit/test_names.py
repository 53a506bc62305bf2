"""Names people give (pools, images, hosts, install media, webhooks, groups) hold no control or
invisible formatting characters: the admin's forms say so beside the name and change nothing,
and an install media upload named with a line break stores nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests.support import signed_in
from vdi.models import InstallMedia, Pool
from vdi.names import refused_character

LINE_BREAK = "Sales\nproxy=http://192.0.2.66:3128"
RIGHT_TO_LEFT = "Sales\u202eeciffO"
REFUSED = {LINE_BREAK: "this one holds U+000A (a line break).",
           RIGHT_TO_LEFT: "this one holds U+202E RIGHT-TO-LEFT OVERRIDE."}


def posted_back(client: Client, url: str) -> dict[str, Any]:
    """What the admin page at ``url`` would post back unchanged (its inlines left empty)."""
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(name): management[name].value()
                     for name in management.fields})
    return data


@pytest.mark.parametrize("name", REFUSED)
def test_the_pool_page_refuses_a_name_that_breaks_lines_or_reads_reversed(admin_user, pool,
                                                                          name):
    client = signed_in(admin_user)
    change = reverse("admin:vdi_pool_change", args=[pool.pk])
    unchanged = posted_back(client, change)
    assert client.post(change, unchanged).status_code == 302, "the page posts back as it is"
    answer = client.post(change, {**unchanged, "name": name})
    assert answer.status_code == 200
    errors = answer.context["adminform"].form.errors
    assert list(errors) == ["name"], errors
    assert errors["name"] == ["A name may not hold control or invisible formatting characters "
                              f"(line breaks, tabs, text-direction overrides); {REFUSED[name]}"]
    assert Pool.objects.get(pk=pool.pk).name == pool.name


@pytest.mark.parametrize("model", ["vdi_goldenimage", "vdi_host", "vdi_installmedia",
                                   "vdi_webhook", "auth_group"])
@pytest.mark.parametrize("name", REFUSED)
def test_every_admin_page_that_names_something_refuses_the_same(admin_user, model, name):
    client = signed_in(admin_user)
    add = reverse(f"admin:{model}_add")
    answer = client.post(add, {**posted_back(client, add), "name": name})
    assert answer.status_code == 200
    assert REFUSED[name] in " ".join(answer.context["adminform"].form.errors["name"])


def test_an_install_media_upload_named_with_a_line_break_stores_nothing(admin_user, settings,
                                                                        tmp_path: Path):
    settings.MEDIA_DIR = media = tmp_path / "media"
    upload = reverse("admin:vdi_installmedia_upload")
    answer = signed_in(admin_user).post(f"{upload}?name=debian%0A", data=b"CD001" * 1000,
                                        content_type="application/octet-stream")
    assert answer.status_code == 400
    assert answer.json()["error"] == "'debian\\n': use lower-case letters, digits and dashes"
    assert not InstallMedia.objects.exists()
    assert not media.exists() or list(media.iterdir()) == []


@pytest.mark.parametrize(("text", "refused"), [
    ("Bürotechnik 2", None),
    ("\u062f\u0641\u062a\u0631\u200c\u06a9\u0627\u0631", None),  # Persian: a ZWNJ
    ("family \U0001F468\u200d\U0001F469\u200d\U0001F467", None),  # an emoji sequence (ZWJ)
    ("tab\there", "U+0009 (a tab)"),
    ("c1\x9bcontrol", "U+009B (a control character)"),
    ("isolate\u2067", "U+2067 RIGHT-TO-LEFT ISOLATE"),
    ("invisible\u200bspace", "U+200B ZERO WIDTH SPACE"),
    ("paragraph\u2029", "U+2029 PARAGRAPH SEPARATOR"),
])
def test_which_characters_a_name_may_hold(text, refused):
    assert refused_character(text) == refused
