"""The NHS.UK front-end's files, served by the service itself.

nhsuk-frontend's stylesheet loads the Frutiger fonts from the NHS's own web host. On a
trust intranet or an offline demo that request hangs until the browser gives up (about
5 s on one load in ten), and it tells an outside host who is using the service. The
stylesheet is served here with those ``@font-face`` rules rewritten: pointing at
``/assets/fonts/`` when the font files are in ``FONTS_DIR`` (organisations licensed for
Frutiger can put them there), or removed, so the page uses the stack's next font (Arial)
at once.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

FONT_FACE = re.compile(r"@font-face\s*\{[^}]*\}")
REMOTE_URL = re.compile(r"url\(\s*[\"']?(?:https?:)?//[^)\"']*/([^/)\"']+)[\"']?\s*\)")


def self_hosted_css(css: str, fonts_dir: Path) -> str:
    """Return ``css`` with each remote ``@font-face`` made local, or dropped without its files."""

    def rewrite(match: re.Match[str]) -> str:
        rule = match.group(0)
        files = REMOTE_URL.findall(rule)
        if not files:
            return rule
        if all((fonts_dir / name).is_file() for name in files):
            return REMOTE_URL.sub(lambda m: f"url(/assets/fonts/{m.group(1)})", rule)
        return ""

    return FONT_FACE.sub(rewrite, css)


@lru_cache(maxsize=4)
def _cached(path: Path, mtime: float, fonts_dir: Path, fonts: tuple[str, ...]) -> str:
    return self_hosted_css(path.read_text(encoding="utf-8"), fonts_dir)


def stylesheet(path: Path, fonts_dir: Path) -> str:
    """Return the rewritten stylesheet, recomputed when it or the fonts folder changes."""
    fonts = tuple(sorted(p.name for p in fonts_dir.iterdir())) if fonts_dir.is_dir() else ()
    return _cached(path, path.stat().st_mtime, fonts_dir, fonts)
