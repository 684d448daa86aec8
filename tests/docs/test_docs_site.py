"""The built site, in headless chromium (marker ``docs``; after the blocks have run).

The site builds with warnings as errors (every internal link and ``#anchor`` checked), is served
on 127.0.0.1, and then: no page asks any other host for anything (Chrome's network log), the
math is typeset by the MathJax the site serves itself, the search finds a Vietnamese word typed
with or without its diacritics, and three pages are photographed into docs/screenshots/.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from rnnkit_docs.pages import DOCS, ROOT
from selenium import webdriver
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.docs
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOTS = DOCS / "screenshots"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--window-size=1280,1000",
    "--disable-background-networking",
    "--disable-component-update",
)
PAGES = [
    "index.html",
    "en/01-recurrence.html",
    "en/02-bptt.html",
    "vi/03-gradients.html",
    "vi/04-lstm-gru.html",
    "glossary.html",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-W", "--keep-going", "-b", "html"]
        + ["-d", str(out / "doctrees"), "docs", str(out / "html")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return out / "html"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server(site):
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        reason = f"the site test needs Debian's chromium and chromedriver: no {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    chrome = webdriver.Chrome(service=webdriver.ChromeService(str(CHROMEDRIVER)), options=options)
    yield chrome
    chrome.quit()


def open_page(browser, url: str) -> None:
    """Load a page and wait until MathJax (where the page has math) has typeset it."""
    browser.get(url)
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return document.readyState") == "complete"
    )
    browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (!window.MathJax || !MathJax.startup) { done(); return; }"
        "MathJax.startup.promise.then(() => done(), () => done());"
    )


def _here(url: str) -> bool:
    return urlsplit(url).hostname == "127.0.0.1"


def requested_urls(browser) -> list[str]:
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_pages_request_nothing_from_another_host(browser, server):
    browser.get_log("performance")  # start from an empty log
    urls = []
    for page in [*PAGES, "search.html?q=" + quote("hồi tiếp")]:
        open_page(browser, f"{server}/{page}")
        urls += requested_urls(browser)
    assert len(urls) > len(PAGES), "the network log recorded the pages' requests"
    local = ("data", "blob", "about")
    foreign = [u for u in urls if urlsplit(u).scheme not in local and not _here(u)]
    assert not foreign
    assert any("/_static/mathjax/" in u for u in urls), "MathJax came from the site"
    assert any(u.endswith(".woff") for u in urls), "and so did its fonts"


@pytest.mark.parametrize("page", ["en/02-bptt.html", "vi/04-lstm-gru.html"])
def test_math_is_typeset(browser, server, page):
    open_page(browser, f"{server}/{page}")
    counts = browser.execute_script(
        "return [document.querySelectorAll('.math').length,"
        " document.querySelectorAll('mjx-container').length,"
        " document.querySelectorAll('mjx-merror, [data-mjx-error]').length,"
        " document.querySelector('article').innerText.includes('\\\\frac')]"
    )
    formulas, typeset, errors, raw_tex_left = counts
    assert formulas > 10
    assert typeset >= formulas
    assert errors == 0
    assert not raw_tex_left


def search(browser, server, query: str) -> set[str]:
    open_page(browser, f"{server}/search.html?q={quote(query)}")
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return !!document.querySelector('.search-summary')")
    )
    links = browser.execute_script(
        "return [...document.querySelectorAll('ul.search li a')].map(a => a.pathname)"
    )
    return {link.lstrip("/").split("#")[0] for link in links}


@pytest.mark.parametrize(
    ("accented", "plain", "page"),
    [
        ("hồi tiếp", "hoi tiep", "vi/01-recurrence.html"),
        ("tiêu biến gradient", "tieu bien gradient", "vi/03-gradients.html"),
        ("cổng quên", "cong quen", "vi/04-lstm-gru.html"),
    ],
)
def test_search_finds_vietnamese_with_or_without_diacritics(browser, server, accented, plain, page):
    found = search(browser, server, accented)
    assert page in found
    assert search(browser, server, plain) == found
    assert search(browser, server, accented.upper()) == found


def test_search_still_stems_english(browser, server):
    assert "en/04-lstm-gru.html" in search(browser, server, "gates")


@pytest.mark.parametrize(
    ("page", "anchor", "name"),
    [
        ("en/01-recurrence.html", "hello", "en-01-recurrence.png"),
        ("en/03-gradients.html", "diagnose-trained", "en-03-gradients.png"),
        ("vi/04-lstm-gru.html", "lstm", "vi-04-lstm-gru.png"),
    ],
)
def test_screenshots(browser, server, page, anchor, name):
    browser.set_window_size(1280, 1400)
    open_page(browser, f"{server}/{page}")
    browser.execute_script("localStorage.clear(); sessionStorage.clear();")  # search highlights
    open_page(browser, f"{server}/{page}")
    browser.execute_script(
        "document.documentElement.style.scrollBehavior = 'auto';"
        f"document.getElementById('{anchor}').scrollIntoView({{block: 'start'}});"
    )
    WebDriverWait(browser, 10).until(
        lambda b: b.execute_script(
            f"return Math.abs(document.getElementById('{anchor}').getBoundingClientRect().top) < 2"
        )
    )
    SCREENSHOTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOTS / name))
