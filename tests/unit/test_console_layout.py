"""The console pages give the screen the whole window: the menu (a handle that opens the
toolbar), the Clipboard and Files panels and the notes are siblings floating over the screen,
never above or around it, so opening them leaves the screen's size (and the desktop's
resolution) alone. The keyboard line names the layout in an element the page updates live,
and its "change" link opens the settings beside the console instead of leaving it."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from tests.support import signed_in
from vdi.choices import DisplayProtocol, Readiness

pytestmark = pytest.mark.django_db

VOID = {"input", "br", "img", "meta", "link", "hr", "source", "col", "wbr"}


class Tree(HTMLParser):
    """Each element with an id: its attributes and the ids and classes of its ancestors."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.open: list[dict[str, str]] = []
        self.found: dict[str, tuple[dict[str, str], list[dict[str, str]]]] = {}
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, **{k: v or "" for k, v in attrs}}
        if "id" in element:
            self.found[element["id"]] = (element, list(self.open))
        if tag not in VOID:
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self.open and self.open.pop()["tag"] != tag:
            pass

    def within(self, element_id: str) -> list[str]:
        """The ids and classes of the element's ancestors, innermost first."""
        return [a.get("id") or a.get("class", "") for a in reversed(self.found[element_id][1])]


@pytest.fixture
def agent_desktop(running_desktop):
    version = running_desktop.image_version
    version.readiness = Readiness.AGENT
    version.session_process = "icewm"
    version.save()
    return running_desktop


def console_page(user, desktop) -> Tree:
    response = signed_in(user).get(reverse("desktop-console", args=[desktop.pk]))
    assert response.status_code == 200
    return Tree(response.content.decode())


def test_the_screen_takes_the_window_and_everything_else_floats_over_it(owner, agent_desktop):
    page = console_page(owner, agent_desktop)
    assert "console-window" in page.found["console"][0]["class"].split()
    assert page.within("screen")[0] == "console", "the screen is the console's own child"
    for tool in ("btn-reconnect", "btn-cad", "btn-clipboard", "btn-files", "btn-fullscreen",
                 "btn-keyboard", "opt-resize", "opt-scale", "opt-viewonly"):
        assert "console-menu-body" in page.within(tool), f"{tool} is in the menu"
    assert page.within("console-state")[:2] == ["console-bar", "console-menu"], \
        "the state shows beside the handle, with the menu closed"
    handle = page.found["btn-menu"][0]
    assert (handle["aria-controls"], handle["aria-expanded"]) == ("console-menu-body", "false")
    for panel in ("clipboard-panel", "files-panel"):
        assert page.within(panel)[:2] == ["console-panels", "console"], panel
    for note in ("console-recorded", "console-watchers", "console-consent", "console-problem"):
        assert page.within(note)[:2] == ["console-notes", "console"], note


def test_the_keyboard_line_can_change_without_leaving_the_console(owner, agent_desktop):
    page = console_page(owner, agent_desktop)
    assert "console-menu-body" in page.within("console-keyboard")
    response = signed_in(owner).get(reverse("desktop-console", args=[agent_desktop.pk]))
    text = response.content.decode()
    assert '<span id="console-keyboard">English (US)</span>' in text
    assert (f'(<a href="{reverse("preferences")}" target="_blank" rel="noopener">change</a>)'
            in text)


def test_the_spice_console_has_the_same_layout(owner, running_desktop):
    running_desktop.pool.display_protocol = DisplayProtocol.SPICE
    running_desktop.pool.save()
    running_desktop.display_protocol = DisplayProtocol.SPICE
    running_desktop.save()
    page = console_page(owner, running_desktop)
    assert page.found["console"][0]["data-protocol"] == "spice"
    assert "console-window" in page.found["console"][0]["class"].split()
    assert page.within("spice-screen")[0] == "console"
    for tool in ("btn-reconnect", "btn-cad", "btn-fullscreen"):
        assert "console-menu-body" in page.within(tool), tool
    assert page.within("console-problem")[:2] == ["console-notes", "console"]
