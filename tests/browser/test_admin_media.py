"""An administrator uploads an installer ISO from the admin: the page shows the upload's
progress and lands on the new media; a file that is not an ISO is refused in the page."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser_fixtures import sign_in
from vdi.models import InstallMedia

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_iso_uploaded_through_the_admin(browser, portal, admin_user, tmp_path: Path):
    for old in settings.MEDIA_DIR.iterdir():  # the folder stays as the set-up made it
        old.unlink()
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "data.bin").write_bytes(b"x" * 3 * 1024**2)  # big enough to show progress
    iso = tmp_path / "debian.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", "DEBIAN_12", "-o", str(iso),
                    str(tree)], check=True)
    text = tmp_path / "notes.iso"
    text.write_text("not an installer\n")

    page = browser.new_page()
    sign_in(page, portal, admin_user.username, "boss-password")
    page.goto(f"{portal.origin}/admin/vdi/installmedia/")
    page.click("text=Upload an ISO")
    page.fill("#media-name", "text")
    page.set_input_files("#media-file", str(text))
    page.click("input[type=submit]")
    page.wait_for_selector("#upload-status:has-text('not an ISO 9660 image')")

    page.reload()
    page.fill("#media-name", "debian-12")
    page.set_input_files("#media-file", str(iso))
    page.click("input[type=submit]")
    try:
        page.wait_for_url("**/admin/vdi/installmedia/*/change/")
    except PlaywrightTimeout:
        pytest.fail(f"the upload did not land: {page.text_content('#upload-status')!r}")
    media = InstallMedia.objects.get(name="debian-12")
    assert (media.volume_id, media.uploaded, media.size_bytes) == (
        "DEBIAN_12", True, iso.stat().st_size)
    assert Path(media.path).read_bytes() == iso.read_bytes()
    assert not InstallMedia.objects.filter(name="text").exists()
