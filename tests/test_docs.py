"""The documentation site builds without a warning, lists every page, and its API reference
holds what the package exports, with the docstrings' text."""

from __future__ import annotations

import html
import inspect
import os
import pathlib
import re
import subprocess
import sys

import pytest

import gpu_summary

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _nav_pages(entries: object) -> list[str]:
    """The page files a MkDocs ``nav`` names, at any depth."""
    if isinstance(entries, str):
        return [entries]
    if isinstance(entries, dict):
        return [page for value in entries.values() for page in _nav_pages(value)]
    return [page for entry in entries for page in _nav_pages(entry)]


def _text(page: str) -> str:
    """A built page's text: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _summary(obj: object) -> str:
    """A docstring's first paragraph as the page shows it, ``code`` without its backquotes,
    and without its whitespace (the page's markup moves it)."""
    first = inspect.getdoc(obj).split("\n\n")[0]
    return "".join(first.replace("`", "").split())


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> pathlib.Path:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs extra (in the test extra) is not installed")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    return out


def test_every_page_is_in_the_nav():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = _nav_pages(config["nav"])
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(nav) == pages
    assert len(set(nav)) == len(nav)


@pytest.mark.slow
def test_the_summary_writer_page_shows_the_inherited_methods_and_their_docstrings(site):
    page = (site / "api" / "summary_writer" / "index.html").read_text()
    text = _text(page)
    squeezed = "".join(text.split())
    for name in ("add_scalar", "add_histogram", "add_images", "add_embedding", "close"):
        assert f'id="gpu_summary.SummaryWriter.{name}"' in page, name
        assert _summary(getattr(gpu_summary.SummaryWriter, name)) in squeezed, name
    assert _summary(gpu_summary.SummaryWriter) in squeezed
    assert ":class:" not in text and ".. note::" not in text  # reStructuredText turned Markdown


@pytest.mark.slow
def test_the_api_reference_covers_every_public_name(site):
    ids = set()
    for page in (site / "api").rglob("index.html"):
        ids |= set(re.findall(r'id="(gpu_summary[\w.]*)"', page.read_text()))
    documented = {identifier.rsplit(".", 1)[-1] for identifier in ids}
    exported = set(gpu_summary.__all__) - {"__version__"}
    assert exported <= documented, exported - documented
    for module in ("gpu_summary.summary", "gpu_summary.reader", "gpu_summary.distributed"):
        assert module in ids, module
    assert {"gpu_summary.reader.inspect_logdir", "gpu_summary.summary.scalar"} <= ids


@pytest.mark.slow
def test_the_pages_render_as_html(site):
    """Every page was built from its Markdown: the theme's stylesheet linked, no fence or
    heading left as text, and no Markdown table left unparsed."""
    assert list((site / "assets" / "stylesheets").glob("main.*.css"))
    for source in DOCS.rglob("*.md"):
        relative = source.relative_to(DOCS).with_suffix("")
        built = site / ("index.html" if relative.name == "index" else relative / "index.html")
        if relative.name == "index" and relative.parent != pathlib.Path("."):
            built = site / relative.parent / "index.html"
        page = built.read_text()
        assert "assets/stylesheets/main" in page, built
        text = _text(re.sub(r"<pre.*?</pre>", "", page, flags=re.DOTALL))
        assert "```" not in text and "|---|" not in text and " ## " not in text, built
