"""Pushed, not polled: the desktop list in Chromium shows a state change the moment it is
made, and asks the server nothing while nothing changes."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User

from tests.browser_fixtures import sign_in
from vdi import state
from vdi.choices import DesktopStatus
from vdi.models import Desktop

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_desktop_list_hears_a_change_without_polling(browser, portal, pool, host,
                                                         image_version, artifacts):
    user = User.objects.create_user("pushed", password="pushed-password-123")
    pool.users.add(user)
    desktop = Desktop.objects.create(
        owner=user, pool=pool, host=host, image_version=image_version,
        domain_name="vditest-pushed", disk_path="/nonexistent/pushed.qcow2",
        serial_log_path="/nonexistent/pushed.log", vcpus=1, memory_mib=256,
        status=DesktopStatus.RUNNING, vnc_port=1)
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    sign_in(page, portal, "pushed", "pushed-password-123")
    page.wait_for_selector("body[data-live=on]", timeout=10_000)
    row = f"#desktop-{desktop.pk}"
    assert "running" in page.inner_text(row)

    requests.clear()
    time.sleep(7)  # more than two of the old 3-second polls
    assert requests == [], f"the idle page asked the server: {requests}"

    state.compare_and_set(desktop.pk, {DesktopStatus.RUNNING}, DesktopStatus.STOPPING)
    page.wait_for_selector(f"{row}:has-text('stopping')", timeout=10_000)
    page.screenshot(path=str(artifacts / "live-list.png"))
    assert [url for url in requests if "/desktops/rows/" in url] == [
        f"{portal.origin}/desktops/rows/"], "one fetch, for the change"
    page.close()
