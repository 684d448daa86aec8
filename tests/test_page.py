"""The web page of ``rnnkit serve`` (rnnkit/serve/static) in headless Chromium, against a real
``rnnkit serve`` process with an API key: the key is asked for and kept for the tab, an lm's
text streams in, a translation shows its n-best and its attention heatmap (one cell per target
x source token, each readable on hover), classify draws one bar per label and tag one tagged
token per word. With RNNKIT_SCREENSHOTS=DIR each view is saved as DIR/serve-<view>.png
(docs/ holds the committed ones)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest
from conftest import LM_RUN, serve_process
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
API_KEY = "page-test-key"
WAIT = 30  # seconds any one thing on the page may take


@pytest.fixture(scope="module")
def server(reverse_run, labelled_runs):
    """The URL of an ``rnnkit serve`` of all four tasks, behind a key; it must exit 0 on
    SIGTERM."""
    classify, tag = labelled_runs
    runs = f"lm={LM_RUN}", f"reverse={reverse_run}", f"cls={classify}", f"tag={tag}"
    with serve_process(*runs, "--api-key", API_KEY) as (process, url, log):
        yield url
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log()


@pytest.fixture(scope="module")
def driver():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        reason = f"the page test needs Debian's chromium and chromedriver: no {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        print(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(flag)
    # an explicit driver path: Selenium Manager never looks for (or downloads) one
    chrome = webdriver.Chrome(service=webdriver.ChromeService(str(CHROMEDRIVER)), options=options)
    yield chrome
    chrome.quit()


@pytest.fixture
def screenshot(tmp_path):
    folder = Path(os.environ.get("RNNKIT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return lambda driver, view: driver.save_screenshot(str(folder / f"serve-{view}.png"))


def api(url: str, path: str, body: dict) -> dict:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    response = httpx.post(f"{url}{path}", json=body, headers=headers, timeout=WAIT)
    assert response.status_code == 200, response.text
    return response.json()


def wait(driver, condition):
    return WebDriverWait(driver, WAIT).until(condition)


def visible_text(driver, css: str, text: str):
    return wait(driver, EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))


def open_page(driver, url: str, model: str) -> None:
    """The page with ``model`` chosen, the API key typed in unless the tab still holds it."""
    driver.get(url)
    key = driver.find_element(By.ID, "api-key")
    if not key.get_attribute("value"):
        key.send_keys(API_KEY, Keys.TAB)
    wait(driver, EC.presence_of_element_located((By.CSS_SELECTOR, f"#model [value={model}]")))
    Select(driver.find_element(By.ID, "model")).select_by_value(model)


def type_into(driver, element_id: str, text: str) -> None:
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def test_the_api_key_is_asked_for_and_kept_for_the_tab(server, driver):
    driver.get(server)
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()
    visible_text(driver, "#error", "an API key is needed")
    assert driver.find_elements(By.CSS_SELECTOR, "#model option") == []
    driver.find_element(By.ID, "api-key").send_keys(API_KEY, Keys.TAB)

    def models_listed(d) -> bool:
        options = d.find_elements(By.CSS_SELECTOR, "#model option")
        return [o.get_attribute("value") for o in options] == ["lm", "reverse", "cls", "tag"]

    wait(driver, models_listed)
    assert not driver.find_element(By.ID, "error").is_displayed()
    driver.refresh()
    wait(driver, models_listed)
    assert driver.find_element(By.ID, "api-key").get_attribute("value") == API_KEY


def test_lm_text_streams_in(server, driver, screenshot):
    open_page(driver, server, "lm")
    prompt = "First Citizen:\n"
    type_into(driver, "prompt", prompt)
    type_into(driver, "max-new-tokens", "60")
    # every change to the output, to see the tokens arrive one by one before the done event
    driver.execute_script(
        "window.changes = 0; new MutationObserver((m) => { window.changes += m.length; })"
        ".observe(document.getElementById('output'), {characterData: true, subtree: true})"
    )
    driver.find_element(By.ID, "generate").click()
    visible_text(driver, "#finish", "done: length, 60 tokens")
    output = driver.find_element(By.ID, "output").get_attribute("textContent")
    assert output.startswith(prompt) and len(output) > len(prompt)
    assert driver.execute_script("return window.changes") >= 60
    assert driver.find_element(By.ID, "generate").is_enabled()
    screenshot(driver, "lm")


def test_translate_shows_n_best_and_attention(server, driver, screenshot):
    sentences = ["c a d e b", "f g"]
    expected = api(server, "/v1/translate",
                   {"model": "reverse", "sentences": sentences, "attention": True,
                    "beam": 4, "n_best": 3})["translations"]  # fmt: skip
    open_page(driver, server, "reverse")
    type_into(driver, "sentences", "\n".join(sentences))
    type_into(driver, "beam", "4")
    type_into(driver, "n-best", "3")
    driver.find_element(By.ID, "translate").click()
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".translation")) == 2)
    items = driver.find_elements(By.CSS_SELECTOR, ".translation")
    for item, translation in zip(items, expected, strict=True):
        assert item.find_element(By.CLASS_NAME, "target").text == translation["text"]
        assert len(item.find_elements(By.CSS_SELECTOR, ".n-best li")) == 3

    def cells_of(attention: dict):
        rows, columns = len(attention["target_tokens"]), len(attention["source_tokens"])
        wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#heatmap tbody tr")) == rows)
        cells = driver.find_elements(By.CSS_SELECTOR, "#heatmap .heat-cell")
        assert len(cells) == rows * columns
        return cells

    items[1].click()
    cells_of(expected[1]["attention"])
    items[0].click()
    first = expected[0]["attention"]
    cells = cells_of(first)
    reading = f"source {first['source_tokens'][1]} → target {first['target_tokens'][0]}: "
    reading += f"{first['weights'][0][1]:.3f}"
    assert cells[1].get_attribute("title") == reading
    ActionChains(driver).move_to_element(cells[1]).perform()
    visible_text(driver, "#heat-readout", reading)
    screenshot(driver, "translate")


def test_an_error_shows_its_message(server, driver):
    open_page(driver, server, "lm")
    type_into(driver, "prompt", "A")
    type_into(driver, "max-new-tokens", "100000")
    driver.find_element(By.ID, "generate").click()
    visible_text(driver, "#error", "max_new_tokens: ")
    assert driver.find_element(By.ID, "generate").is_enabled()


def test_classify_draws_a_bar_per_label(server, driver, screenshot):
    texts = ["w1 x2 y", "w4 x0 y"]
    expected = api(server, "/v1/predict", {"model": "cls", "texts": texts})["predictions"]
    open_page(driver, server, "cls")
    type_into(driver, "texts", "\n".join(texts))
    driver.find_element(By.ID, "predict").click()
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#predictions .prediction")) == 2)
    shown = driver.find_elements(By.CSS_SELECTOR, "#predictions .prediction")
    for block, prediction in zip(shown, expected, strict=True):
        labels = [label.text for label in block.find_elements(By.CSS_SELECTOR, ".bar .label")]
        assert labels == list(prediction["probabilities"])
        assert block.find_element(By.CSS_SELECTOR, ".bar.chosen .label").text == prediction["label"]
    screenshot(driver, "classify")


def test_tag_marks_every_token(server, driver, screenshot):
    sentence = "w1 x2 w3 x0 w2"
    expected = api(server, "/v1/predict", {"model": "tag", "sentences": [sentence]})
    tags = expected["predictions"][0]["tags"]
    open_page(driver, server, "tag")
    type_into(driver, "texts", sentence)
    driver.find_element(By.ID, "predict").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#predictions .tagged"))
    tokens = driver.find_elements(By.CSS_SELECTOR, "#predictions .tagged")
    assert [t.find_element(By.CLASS_NAME, "word").text for t in tokens] == sentence.split()
    assert [t.find_element(By.CLASS_NAME, "tag").text for t in tokens] == tags
    screenshot(driver, "tag")
