"""Issue 14 item 9: every asset a page loads comes from the service itself."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from booking.frontend import self_hosted_css

from ..conftest import sign_in

LOADED = re.compile(r'<(?:link|script|img|iframe|source)\b[^>]*?\b(?:href|src)="([^"]+)"', re.I)
CSS_URL = re.compile(r"url\(\s*[\"']?([^)\"']+)")
IMPORT = re.compile(r"@import\s+[\"']([^\"']+)")


def _external(url: str) -> bool:
    parsed = urlparse(url)
    return bool(parsed.netloc) or parsed.scheme not in ("", "data")


def _assets_of(client, path: str) -> list[str]:
    """Return every URL the page and its stylesheets make a browser fetch."""
    page = client.get(path, follow_redirects=True)
    assert page.status_code == 200
    urls = LOADED.findall(page.text)
    for url in list(urls):
        if url.endswith(".css") and not _external(url):
            with client.get(url) as css:
                assert css.status_code == 200, url
                urls += CSS_URL.findall(css.text) + IMPORT.findall(css.text)
    return urls


@pytest.mark.parametrize("path", ["/", "/sign-in"])
def test_public_pages_load_nothing_from_another_host(client, programme, path):
    urls = _assets_of(client, path)
    assert any(u.endswith("nhsuk-frontend.min.css") for u in urls)
    assert [u for u in urls if _external(u)] == []


def test_signed_in_pages_load_nothing_from_another_host(client, coordinator, programme):
    sign_in(client, coordinator)
    for path in ("/coordinator/", "/coordinator/outbox/", "/coordinator/jobs/"):
        assert [u for u in _assets_of(client, path) if _external(u)] == [], path


def test_the_stylesheet_has_no_remote_fonts_and_is_served_as_css(client, app):
    response = client.get("/assets/nhsuk-frontend.min.css")
    assert response.status_code == 200 and response.mimetype == "text/css"
    assert "assets.nhs.uk" not in response.text
    assert ".nhsuk-header" in response.text  # the rest of the design system is intact
    assert "Frutiger W01" in response.text  # the font stack still names it first


def test_licensed_fonts_dropped_in_are_served_locally(client, app, tmp_path: Path):
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    for name in (
        "FrutigerLTW01-55Roman.woff2",
        "FrutigerLTW01-55Roman.woff",
        "FrutigerLTW01-65Bold.woff2",
        "FrutigerLTW01-65Bold.woff",
    ):
        (fonts / name).write_bytes(b"wOF2 test font")
    app.config["FONTS_DIR"] = str(fonts)

    css = client.get("/assets/nhsuk-frontend.min.css").text
    with client.get("/assets/fonts/FrutigerLTW01-55Roman.woff2") as font:
        assert font.status_code == 200 and font.data == b"wOF2 test font"

    assert "url(/assets/fonts/FrutigerLTW01-55Roman.woff2)" in css
    assert "assets.nhs.uk" not in css


def test_the_rewrite_keeps_local_rules_and_drops_half_present_ones(tmp_path: Path):
    css = (
        "@font-face{font-family:A;src:url(/local/a.woff2)}"
        "@font-face{font-family:B;src:url(https://cdn.example/b.woff2),url(https://cdn.example/b.woff)}"
        "body{color:red}"
    )
    (tmp_path / "b.woff2").write_bytes(b"x")  # b.woff is missing: the rule cannot be served whole
    assert self_hosted_css(css, tmp_path) == (
        "@font-face{font-family:A;src:url(/local/a.woff2)}body{color:red}"
    )
