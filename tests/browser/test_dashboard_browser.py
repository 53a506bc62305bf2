"""The dashboard in Chromium under the portal's real CSP: its charts draw, an idle page asks the
server nothing, a new thumbnail and a state change pushed over /ws/live/ show at once, and the
browser reports no CSP violation."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from PIL import Image

from tests.browser_fixtures import sign_in
from tests.dashboard_fixtures import desktop, session
from tests.support import as_the_service_wrote_it, make_version
from vdi import state, thumbnails
from vdi.choices import DesktopStatus, OperationStatus
from vdi.live import events
from vdi.models import Operation, Rollout
from vdi.services import rollouts

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def jpeg(colour: tuple[int, int, int]) -> bytes:
    import io

    out = io.BytesIO()
    Image.new("RGB", (320, 240), colour).save(out, "JPEG")
    return out.getvalue()


def canvas_drawn(page, selector: str) -> bool:
    """The chart's canvas has pixels that are not transparent (axes, grid, bars)."""
    return bool(page.evaluate("""(selector) => {
        const canvas = document.querySelector(selector);
        if (!canvas || canvas.width < 50 || canvas.height < 50) return false;
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let drawn = 0;
        for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) drawn++; }
        return drawn > 100;
    }""", selector))


def test_the_dashboard_is_pushed_to_and_draws_its_charts_under_the_csp(
        browser, portal, pool, host, owner, artifacts):
    User.objects.create_superuser("chief", password="chief-password-123")
    watched = desktop(pool, host, owner=owner, domain_name="vditest-dash-browser")
    session(watched, owner, client_address="192.0.2.77", bytes_to_browser=4096)
    as_the_service_wrote_it(thumbnails.store(watched.domain_name, jpeg((20, 120, 200))))
    changing = desktop(pool, host, owner=owner)
    trying = Rollout.objects.create(
        pool=pool, from_version=pool.image.versions.get(),
        to_version=make_version(pool.image.name, "/nonexistent/dash-browser-v2.qcow2"))

    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(
        f"{message.text} ({message.location.get('url', '')})")
        if message.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    failing: list[str] = []
    page.on("response", lambda response: failing.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    sign_in(page, portal, "chief", "chief-password-123")
    page.click("nav a[href='/dashboard/']")
    page.wait_for_url(f"{portal.origin}/dashboard/")
    page.wait_for_selector("body[data-live=on]", timeout=10_000)
    page.wait_for_selector("#dash-charts[data-loaded]", timeout=10_000)
    for chart in ("sessions", "claims", "failures", "claim-ready"):
        assert canvas_drawn(page, f"#chart-{chart}"), f"the {chart} chart drew nothing"
    assert "192.0.2.77" in page.inner_text(f"#live-{watched.pk}")
    thumbnail = page.locator(f"img[data-thumbnail='{watched.pk}']")
    page.wait_for_function("(img) => img.complete && img.naturalWidth === 320",
                           arg=thumbnail.element_handle(), timeout=10_000)

    requests.clear()
    time.sleep(7)  # more than two of the old 3-second polls
    assert requests == [], f"the idle dashboard asked the server: {requests}"

    # a new picture of one screen: that picture alone is fetched again
    before = thumbnail.get_attribute("src")
    events.thumbnail_taken(watched.pk, pool.pk)
    page.wait_for_function("([img, before]) => img.getAttribute('src') !== before",
                           arg=[thumbnail.element_handle(), before], timeout=10_000)
    page.wait_for_timeout(500)
    assert [url.split("?")[0] for url in requests] == [
        f"{portal.origin}/dashboard/desktops/{watched.pk}/thumbnail.jpg"]

    # a state change: the parts that show it are fetched once, and show it
    requests.clear()
    operation = Operation.objects.create(
        kind="start", desktop=changing, target=str(changing), status=OperationStatus.FAILED,
        error="Its host said no.", finished_at=timezone.now())
    state.compare_and_set(changing.pk, {DesktopStatus.RUNNING}, DesktopStatus.ERROR,
                          error="Its host said no.")
    page.wait_for_selector(f"#operation-{operation.pk}:has-text('Its host said no.')",
                           timeout=10_000)
    page.wait_for_selector("[data-stat=errors]:text-is('1')", timeout=10_000)
    assert page.locator(f"#operation-{operation.pk} button.retry").count() == 1
    parts = sorted(url for url in requests if "/dashboard/parts/" in url)
    assert len(parts) == len(set(parts)), f"each part fetched once: {parts}"
    assert f"{portal.origin}/dashboard/parts/failures/" in parts
    assert all("/dashboard/" in url for url in requests), requests

    # a rollout paused by an administrator: its row says so at once
    assert page.get_attribute(f"#rollout-{trying.pk}", "data-stage") == "canary"
    rollouts.pause(User.objects.get(username="chief"), trying)
    page.wait_for_selector(f"#rollout-{trying.pk}[data-stage=paused]", timeout=10_000)
    assert "an administrator to resume it" in page.inner_text(f"#rollout-{trying.pk}")
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)

    csp = [text for text in problems if "Content Security Policy" in text or "Refused" in text]
    assert csp == [], csp
    # the browser's own request for a site icon (the portal has none) is not the page's
    assert [text for text in problems if "/favicon.ico" not in text] == [], problems
    assert failing == [], failing
    page.close()
