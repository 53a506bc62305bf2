"""The desktop list on a phone, in Chromium: at 412 and 360 px wide the page does not scroll
sideways with several desktops listed (each a card), every action of every desktop is on
screen and answers a tap; a wide screen keeps the table."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from tests.browser_fixtures import sign_in
from vdi.choices import DesktopStatus
from vdi.models import Desktop

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONES = [(412, 915), (360, 740)]
LONG_ERROR = ("The start failed on host pages: Cannot access storage file "
              "'/var/lib/vdi-portal/disks/a-rather-long-domain-name-without-spaces.qcow2'")


@pytest.fixture
def desktops(owner, pool, host, image_version) -> list[Desktop]:
    """Four of the owner's desktops in a persistent pool, in states that show the most: a
    running one with its agent's facts, a stopped one, one in error, one busy."""
    pool.persistence, pool.idle_minutes = "persistent", 30
    pool.save()
    made = []
    for number, status in enumerate([DesktopStatus.RUNNING, DesktopStatus.STOPPED,
                                     DesktopStatus.ERROR, DesktopStatus.SNAPSHOTTING]):
        made.append(Desktop.objects.create(
            owner=owner, pool=pool, host=host, image_version=image_version,
            domain_name=f"vditest-phone-{number}", disk_path=f"/nonexistent/{number}.qcow2",
            data_disk_path=f"/nonexistent/{number}-data.qcow2",
            serial_log_path=f"/nonexistent/{number}.log", vcpus=2, memory_mib=2048,
            status=status, vnc_port=1, last_error=LONG_ERROR if number == 2 else "",
            guest_ready_at=timezone.now() if number == 0 else None,
            guest_facts={"os": "Debian GNU/Linux 12 (bookworm)", "hostname": "phone-0",
                         "addresses": ["10.100.7.129", "fe80::5054:ff:fe00:7"],
                         "users": ["user"]} if number == 0 else {}))
    return made


def widths(page: Any) -> tuple[int, int]:
    scroll, inner = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]")
    return int(scroll), int(inner)


def actions_on_screen(page: Any) -> list[tuple[str, float, float]]:
    """Each action of each desktop: its words, left and right edges."""
    return [tuple(box) for box in page.evaluate("""() =>
        [...document.querySelectorAll('#my-desktops td.actions :is(a, button)')].map(e => {
            const r = e.getBoundingClientRect();
            return [e.textContent.trim(), r.left, r.right];
        })""")]


@pytest.mark.parametrize(("width", "height"), PHONES)
def test_the_desktop_list_fits_a_phone_without_sideways_scrolling(
        browser, portal, desktops, width, height, artifacts):
    context = browser.new_context(viewport={"width": width, "height": height},
                                  device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    sign_in(page, portal, "owner", "owner-password")
    page.wait_for_selector("#my-desktops tbody tr")
    assert page.locator("#my-desktops tbody tr").count() == len(desktops)
    page.screenshot(path=str(artifacts / f"desktop-list-{width}.png"), full_page=True)

    scroll, inner = widths(page)
    assert inner == width and scroll <= inner, f"{scroll} px of page in {inner} px"
    actions = actions_on_screen(page)
    words = [name for name, _left, _right in actions]
    assert {"Connect", "Stop", "Start", "Snapshots", "Backups"} <= set(words), words
    off = [(name, left, right) for name, left, right in actions if left < 0 or right > width]
    assert off == [], "every action is on screen"
    running = f"#desktop-{desktops[0].pk}"
    assert "Signed in: user" in page.inner_text(running), "the card keeps what the row says"
    headings = page.evaluate("""(row) => [...document.querySelectorAll(`${row} td`)].map(
        td => getComputedStyle(td, '::before').content)""", running)
    assert headings[1:4] == ['"State"', '"Image"', '"Size"'], "each value under its heading"

    page.tap(f"{running} a.snapshots")
    page.wait_for_url(f"{portal.origin}/desktops/{desktops[0].pk}/snapshots/")
    context.close()


def test_a_wide_screen_keeps_the_table(browser, portal, desktops):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    sign_in(page, portal, "owner", "owner-password")
    page.wait_for_selector("#my-desktops tbody tr")
    shown = page.evaluate("""() => {
        const style = (selector) => getComputedStyle(document.querySelector(selector));
        return [style('#my-desktops tbody tr').display, style('#my-desktops thead').position,
                style('#my-desktops td.actions').whiteSpace];
    }""")
    assert shown == ["table-row", "static", "nowrap"], "a table with its headings, as before"
    scroll, inner = widths(page)
    assert scroll <= inner
    context.close()
