"""The report in a real headless Chromium: loads offline with no console errors, every panel
renders a plot, and the screenshot is not blank."""

from __future__ import annotations

import pytest

from tests.report.browser import HeadlessChromium, find_chromium, png_pixel_stats

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

PANELS_JS = """
const panels = Array.from(document.querySelectorAll('div.panel'));
return panels.map(p => [p.dataset.panel, p.querySelectorAll('.js-plotly-plot svg.main-svg').length,
                        p.querySelectorAll('.scatterlayer .trace').length]);
"""
REMOTE_JS = """
return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith('file:') && !n.startsWith('data:'));
"""


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    found = find_chromium()
    if found is None:
        pytest.skip("chromium and chromedriver are not installed (Debian packages chromium, chromium-driver; .ci/run installs them)")
    browser = HeadlessChromium.start(tmp_path_factory.mktemp("chromium"), *found)
    yield browser
    browser.stop()


@pytest.fixture(scope="module")
def loaded(chromium, built, tmp_path_factory):
    html, summary = built
    path = tmp_path_factory.mktemp("page") / "report.html"
    path.write_text(html, encoding="utf-8")
    chromium.open(path.as_uri())
    chromium.run("return document.readyState")
    return chromium, summary


def test_report_loads_without_console_errors(loaded):
    browser, _ = loaded
    assert browser.console_errors() == []
    assert browser.run(REMOTE_JS) == []  # nothing fetched from the network


def test_every_panel_renders_a_plot(loaded):
    browser, summary = loaded
    panels = browser.run(PANELS_JS)
    assert len(panels) == summary.panels_with_data + 1  # + the alerts/actions timeline
    for name, svgs, traces in panels:
        assert svgs >= 1 and traces >= 1, f"panel {name!r} has no rendered plot"


def test_screenshot_is_not_blank(loaded):
    browser, _ = loaded
    width, height, levels, variance = png_pixel_stats(browser.screenshot_png())
    assert width > 500 and height > 500
    assert levels > 20 and variance > 100, (levels, variance)


def test_checks_can_fail_on_a_blank_page_with_an_error(chromium):
    chromium.open('data:text/html,<body style="background:white"><script>console.error("boom")</script></body>')
    assert any("boom" in m for m in chromium.console_errors())
    _, _, levels, variance = png_pixel_stats(chromium.screenshot_png())
    assert levels <= 2 and variance < 1
