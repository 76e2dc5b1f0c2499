"""The built web client committed under src/parley/web/static is the build of web/ as it is: a
fresh clone serves it without Node.js, so a change to web/ must come with `npm run build`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from parley.server.web import static_dir

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
_TOP = ("index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts")


def sources_digest() -> str:
    """The digest web/scripts/stamp.mjs writes at each build, computed the same way."""
    files = [WEB / name for name in _TOP]
    files += [path for folder in ("src", "scripts") for path in (WEB / folder).rglob("*")]
    listing = "".join(
        f"{path.relative_to(WEB).as_posix()}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n"
        for path in sorted(files, key=lambda path: path.relative_to(WEB).as_posix())
        if path.is_file()
    )
    return hashlib.sha256(listing.encode()).hexdigest()


def test_the_committed_build_is_of_the_current_sources() -> None:
    stamped = (static_dir() / "sources.sha256").read_text().strip()
    assert stamped == sources_digest(), (
        "web/ changed since src/parley/web/static was built: run `npm ci && npm run build` "
        "in web/ and commit the result."
    )


def test_the_page_loads_only_files_that_are_there() -> None:
    html = (static_dir() / "index.html").read_text()
    referenced = re.findall(r'(?:src|href)="(/[^"]*)"', html)
    assert referenced, html
    for path in referenced:
        assert (static_dir() / path.lstrip("/")).is_file(), path
    # Nothing inline for the CSP to block: no inline scripts or styles.
    assert "<style" not in html
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None
    built = {path.name for path in (static_dir() / "assets").iterdir()}
    assert built == {Path(path).name for path in referenced if path.startswith("/assets/")}
