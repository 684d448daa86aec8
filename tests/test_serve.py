"""rnnkit serve: every endpoint answers what ``rnnkit.load`` gives for the same call; every error
is a JSON envelope with a 4xx; concurrent requests share batches and get the same results as
alone; the model runs off the event loop; the queue bound, the time limit and a client that
disconnects; a real ``rnnkit serve`` process drains on SIGTERM."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import LM_RUN, ROOT, free_port, serve_process
from fastapi.testclient import TestClient

import rnnkit
from rnnkit.errors import UserError
from rnnkit.serve.app import create_app
from rnnkit.serve.limits import Limits


@pytest.fixture(scope="module")
def runs(reverse_run, labelled_runs) -> dict[str, Any]:
    classify, tag = labelled_runs
    paths = {"lm": LM_RUN, "reverse": reverse_run, "cls": classify, "tag": tag}
    return {name: rnnkit.load(path) for name, path in paths.items()}


@pytest.fixture(scope="module")
def client(runs):
    with TestClient(create_app(runs)) as c:
        yield c


def error_of(response: httpx.Response, status: int) -> dict[str, str]:
    """The error envelope of a response that must have this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return body["error"]


def sse(text: str) -> list[tuple[str, dict]]:
    """The (event, data) pairs of a Server-Sent Events body."""
    events = []
    for frame in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


# -- every endpoint gives what rnnkit.load gives ----------------------------------------------
def test_health_and_models(client, runs):
    assert client.get("/health").json() == {"status": "ok", "models": 4}
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert sorted(models) == ["cls", "lm", "reverse", "tag"]
    for name, run in runs.items():
        assert models[name] == {"name": name, **run.describe()}
    assert models["reverse"]["task"] == "translate" and models["reverse"]["parameters"] > 0
    assert set(models["reverse"]["vocabulary_sizes"]) == {"source", "target"}


@pytest.mark.parametrize(
    "settings",
    [
        {"temperature": 0.0},
        {"temperature": 0.9, "top_k": 5, "top_p": 0.9, "seed": 3, "num_samples": 2},
        {"beam": 3, "num_samples": 2},
    ],
    ids=["greedy", "seeded", "beam"],
)
def test_generate_equals_the_api(client, runs, settings):
    prompts = ["ROMEO:", "To be"]
    body = {"model": "lm", "prompts": prompts, "max_new_tokens": 12, **settings}
    response = client.post("/v1/generate", json=body)
    assert response.status_code == 200 and int(response.headers["x-batch-size"]) >= 2
    got = response.json()["generations"]
    expected = runs["lm"].generate(prompts, max_new_tokens=12, **settings)
    assert [g["text"] for g in got] == [g.text for g in expected]
    assert [g["token_ids"] for g in got] == [g.token_ids for g in expected]
    assert [(g["prompt_index"], g["sample_index"]) for g in got] == [
        (g.prompt_index, g.sample_index) for g in expected
    ]
    assert all(g["finish_reason"] == "length" for g in got)


def test_generate_streams_the_same_tokens(client):
    body = {"prompt": "ROMEO:", "max_new_tokens": 15, "seed": 4, "temperature": 0.8}
    whole = client.post("/v1/generate", json=body).json()["generations"][0]
    response = client.post("/v1/generate", json={**body, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse(response.text)
    tokens = [data for event, data in events if event == "token"]
    assert len(tokens) == 15 and all(t["index"] == 0 for t in tokens)
    assert "".join(t["text"] for t in tokens) == whole["completion"]
    assert events[-1] == (
        "done",
        {"index": 0, "finish_reason": "length", "text": whole["text"],
         "completion": whole["completion"], "tokens": 15},
    )  # fmt: skip


def test_score_translate_predict_equal_the_api(client, runs):
    texts = ["ROMEO: speak", "a"]
    got = client.post("/v1/score", json={"texts": texts}).json()["scores"]
    expected = runs["lm"].score(texts)
    assert [(s["loss"], s["tokens"]) for s in got] == [(s.loss, s.tokens) for s in expected]

    sentences = ["a b c", "d e f g"]
    body = {"sentences": sentences, "beam": 3, "n_best": 2, "attention": True}
    got = client.post("/v1/translate", json=body).json()["translations"]
    expected = runs["reverse"].translate(sentences, beam=3, n_best=2, attention=True)
    for g, e in zip(got, expected, strict=True):
        assert g["text"] == e.text and g["source"] == e.source
        assert [(h["text"], h["score"]) for h in g["hypotheses"]] == [
            (h.text, h.score) for h in e.hypotheses
        ]
        attention = g["attention"]
        assert attention["source_tokens"] == e.attention.source_tokens
        assert attention["target_tokens"] == e.attention.target_tokens
        assert len(attention["weights"]) == len(attention["target_tokens"])
        assert all(len(row) == len(attention["source_tokens"]) for row in attention["weights"])
        assert all(abs(sum(row) - 1) < 1e-4 for row in attention["weights"])

    got = client.post("/v1/predict", json={"model": "cls", "texts": ["w1 x2 y"]}).json()
    (label,) = runs["cls"].predict(["w1 x2 y"])
    assert got["task"] == "classify"
    assert got["predictions"] == [
        {"text": "w1 x2 y", "label": label.label, "probabilities": label.probabilities}
    ]
    got = client.post("/v1/predict", json={"model": "tag", "sentences": ["w1 x2", "w3"]}).json()
    expected = runs["tag"].predict(["w1 x2", "w3"])
    assert got["task"] == "tag"
    assert got["predictions"] == [{"tokens": t.tokens, "tags": t.tags} for t in expected]


# -- every error: JSON, one envelope, 4xx -----------------------------------------------------
@pytest.mark.parametrize(
    "path, body, where",
    [
        ("/v1/generate", {"prompt": "a", "top_p": 0}, "top_p"),
        ("/v1/generate", {"prompt": "a", "prompts": ["b"]}, "prompt or prompts"),
        ("/v1/generate", {"prompt": "a", "max_new_tokens": 257}, "max_new_tokens"),
        ("/v1/generate", {"prompt": "a", "temperature": -1}, "temperature"),
        ("/v1/generate", {"prompt": "a", "num_samples": 9}, "num_samples"),
        ("/v1/generate", {"prompt": None}, "prompt"),
        ("/v1/generate", {"prompt": "a", "mdoel": "lm"}, "mdoel"),
        ("/v1/generate", {"prompt": "a", "model": "reverse"}, "model"),
        ("/v1/generate", {"prompt": "a" * 1001}, "prompt"),
        ("/v1/translate", {"sentences": []}, "sentences"),
        ("/v1/translate", {"sentences": ["a"] * 33}, "sentences"),
        ("/v1/translate", {"sentences": ["a"], "n_best": 9}, "n_best"),
        ("/v1/score", {"texts": [" \n"]}, "texts.0"),
        ("/v1/translate", {"sentences": "a b"}, "sentences"),
        ("/v1/predict", {"texts": ["a"]}, "model"),  # two runs predict: name one
        ("/v1/predict", {"model": "cls", "texts": ["a"], "sentences": ["a"]}, "texts or"),
    ],
)
def test_bad_requests_get_a_422_that_says_where(client, path, body, where):
    error = error_of(client.post(path, json=body), 422)
    assert error["code"] == "validation_error" and where in error["message"]


def test_malformed_bodies_unknown_paths_and_large_bodies(client):
    assert error_of(client.post("/v1/translate", content=b"{not json"), 422)["code"] == (
        "validation_error"
    )
    assert error_of(client.get("/v1/nothing"), 404)["code"] == "not_found"
    assert error_of(client.get("/v1/translate"), 405)["code"] == "method_not_allowed"
    error = error_of(client.post("/v1/translate", content=b" " * 600_000), 413)
    assert error["code"] == "payload_too_large" and "524288" in error["message"]


def test_the_api_key_guards_everything_but_health(runs):
    with TestClient(create_app(runs, api_key="s3cret")) as c:
        assert c.get("/health").status_code == 200
        assert error_of(c.get("/v1/models"), 401)["code"] == "unauthorized"
        wrong = {"Authorization": "Bearer nope"}
        assert c.post("/v1/score", json={"texts": ["a b"]}, headers=wrong).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert c.get("/v1/models", headers=right).status_code == 200


def test_the_schema_lists_errors_and_the_stream_and_docs_work_offline(client):
    schema = client.get("/openapi.json").json()
    generate = schema["paths"]["/v1/generate"]["post"]["responses"]
    assert {"200", "400", "401", "413", "422", "429"} <= set(generate)
    assert "text/event-stream" in generate["200"]["content"]
    assert generate["422"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")
    docs = client.get("/docs").text
    assert "cdn" not in docs and "http://" not in docs and "https://" not in docs
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        assert client.get(asset).status_code == 200


def test_one_log_line_per_request(client, caplog):
    with caplog.at_level(logging.INFO, logger="rnnkit.serve"):
        client.post("/v1/translate", json={"sentences": ["a b"]})
        client.get("/v1/nothing")
    lines = [r.getMessage() for r in caplog.records if r.name == "rnnkit.serve"]
    assert len(lines) == 2
    assert lines[0].startswith("POST /v1/translate 200 ") and lines[0].endswith(" ms batch 1")
    assert lines[1].startswith("GET /v1/nothing 404 ")


# -- batching, off the event loop, limits: a real server on a thread --------------------------
class Gated:
    """A loaded run whose ``generate`` says it ``entered`` and waits for ``gate``, and whose
    stream sleeps ``delay`` per step and keeps every step: to hold a batch in the worker while
    the test looks at the server."""

    def __init__(self, run: Any, delay: float = 0.0, held: bool = False) -> None:
        self.run, self.delay, self.steps = run, delay, []
        self.gate, self.entered = threading.Event(), threading.Event()
        if not held:
            self.gate.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.run, name)

    def generate(self, *args, **kwargs):
        self.entered.set()
        self.gate.wait(30)
        return self.run.generate(*args, **kwargs)

    def generate_stream(self, *args, **kwargs):
        for step in self.run.generate_stream(*args, **kwargs):
            self.steps.append(step)
            time.sleep(self.delay)
            yield step


@contextlib.contextmanager
def serving(runs: dict[str, Any], **limits: Any):
    """``create_app(runs)`` under uvicorn on a free 127.0.0.1 port, in this process."""
    port = free_port()
    app = create_app(runs, Limits(**limits))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_concurrent_requests_share_a_batch_and_get_their_own_results(runs):
    bodies = [
        {"prompt": p, "max_new_tokens": 20, "temperature": t, "seed": s}
        for p, t, s in [("ROMEO:", 0.8, 1), ("JULIET:", 1.2, 2), ("A", 0.0, None), ("", 1.0, 9)]
    ] * 2
    expected = [
        runs["lm"]
        .generate(b["prompt"], max_new_tokens=20, temperature=b["temperature"], seed=b["seed"])[0]
        .text
        for b in bodies
    ]
    with serving({"lm": runs["lm"], "reverse": runs["reverse"]}, max_wait_ms=200) as url:
        with ThreadPoolExecutor(len(bodies)) as pool:
            responses = list(
                pool.map(lambda b: httpx.post(f"{url}/v1/generate", json=b, timeout=30), bodies)
            )
        assert max(int(r.headers["x-batch-size"]) for r in responses) > 1
        assert [r.json()["generations"][0]["text"] for r in responses] == expected

        sentences = ["a b c", "d e", "f g h i", "k"]
        for beam in (1, 3):
            with ThreadPoolExecutor(4) as pool:
                responses = list(pool.map(
                    lambda s, k=beam: httpx.post(f"{url}/v1/translate", timeout=30,
                                                 json={"sentences": [s], "beam": k, "n_best": k}),
                    sentences,
                ))  # fmt: skip
            assert max(int(r.headers["x-batch-size"]) for r in responses) > 1
            for s, r in zip(sentences, responses, strict=True):
                (e,) = runs["reverse"].translate(s, beam=beam, n_best=beam)
                hypotheses = r.json()["translations"][0]["hypotheses"]
                assert [h["token_ids"] for h in hypotheses] == [h.token_ids for h in e.hypotheses]
                assert [h["score"] for h in hypotheses] == pytest.approx(
                    [h.score for h in e.hypotheses], abs=1e-5
                )


def test_health_answers_while_a_batch_runs_and_a_full_queue_is_a_429(runs):
    gated = Gated(runs["lm"], held=True)
    with serving({"lm": gated}, queue_size=1, max_wait_ms=1) as url:
        body = {"prompt": "a", "max_new_tokens": 5}
        with ThreadPoolExecutor(3) as pool:
            running = pool.submit(httpx.post, f"{url}/v1/generate", json=body, timeout=30)
            assert gated.entered.wait(10)  # the first request is in the (blocked) worker
            assert httpx.get(f"{url}/health", timeout=5).status_code == 200
            assert not running.done()
            queued = pool.submit(httpx.post, f"{url}/v1/generate", json=body, timeout=30)
            time.sleep(0.2)  # let it reach the queue
            refused = httpx.post(f"{url}/v1/generate", json=body, timeout=30)
            error = error_of(refused, 429)
            assert error["code"] == "too_many_requests" and "queue is full" in error["message"]
            assert int(refused.headers["retry-after"]) >= 1
            gated.gate.set()
            assert running.result().status_code == 200 and queued.result().status_code == 200


def test_a_disconnected_stream_leaves_the_batch_and_the_others_go_on(runs):
    slow = Gated(runs["lm"], delay=0.01)
    with serving({"lm": slow}, max_wait_ms=300) as url:
        body = {"prompt": "ROMEO:", "max_new_tokens": 200, "stream": True, "seed": 1}
        with ThreadPoolExecutor(1) as pool:
            stayer = pool.submit(
                lambda: sse(httpx.post(f"{url}/v1/generate", json=body, timeout=30).text)
            )
            with httpx.stream("POST", f"{url}/v1/generate", json=body, timeout=30) as leaver:
                assert leaver.headers["x-batch-size"] == "2"
                lines = leaver.iter_lines()
                read = 0
                while read < 3:
                    read += next(lines).startswith("event: token")
            left_at = len(slow.steps)
            events = stayer.result()
    stopped = [s.step for s in slow.steps if "stop" in s.finish_reasons]
    assert len(stopped) == 1 and stopped[0] <= left_at + 10  # within a few steps of leaving
    assert events[-1][1]["finish_reason"] == "length" and events[-1][1]["tokens"] == 200
    assert len(slow.steps) == 200  # the stayer ran to its end alone


class Picky(Gated):
    """A run whose ``score`` refuses the text "poison", as a model refuses an input."""

    def score(self, texts):
        if "poison" in texts:
            raise UserError("score: poison is not a text")
        return self.run.score(texts)


def test_a_bad_input_fails_its_own_request_not_its_batch(runs):
    with serving({"lm": Picky(runs["lm"])}, max_wait_ms=300) as url:
        with ThreadPoolExecutor(2) as pool:
            good, bad = pool.map(
                lambda t: httpx.post(f"{url}/v1/score", json={"texts": [t]}, timeout=30),
                ["ROMEO:", "poison"],
            )
    assert good.status_code == 200 and good.json()["scores"][0]["tokens"] == 6
    error = error_of(bad, 400)
    assert error == {"code": "bad_input", "message": "score: poison is not a text"}


def test_more_hypotheses_than_the_beam_are_at_most_the_beam(client):
    body = {"sentences": ["a b"], "beam": 2, "n_best": 5}
    assert len(client.post("/v1/translate", json=body).json()["translations"][0]["hypotheses"]) == 2


def test_a_beam_stream_sends_each_text_then_done(client, runs):
    body = {"prompt": "ROMEO:", "max_new_tokens": 10, "beam": 3, "num_samples": 2}
    events = sse(client.post("/v1/generate", json={**body, "stream": True}).text)
    expected = runs["lm"].generate("ROMEO:", max_new_tokens=10, beam=3, num_samples=2)
    assert events == [
        pair
        for i, g in enumerate(expected)
        for pair in [("token", {"index": i, "text": g.completion}),
                     ("done", {"index": i, "finish_reason": "length", "text": g.text,
                               "completion": g.completion, "tokens": 10})]
    ]  # fmt: skip


def test_the_time_limit_ends_decoding_in_time(runs):
    slow = Gated(runs["lm"], delay=0.02)
    with serving({"lm": slow}, time_limit=1.0) as url:
        start = time.monotonic()
        body = {"prompt": "a", "max_new_tokens": 256, "stream": True}
        events = sse(httpx.post(f"{url}/v1/generate", json=body, timeout=30).text)
        assert time.monotonic() - start < 1.0
    assert events[-1][1]["finish_reason"] == "time" and 0 < events[-1][1]["tokens"] < 256


def test_the_batcher_refuses_jobs_that_waited_past_their_deadline(runs):
    gated = Gated(runs["lm"], held=True)
    with serving({"lm": gated}, time_limit=0.5, max_wait_ms=1) as url:
        body = {"prompt": "a", "max_new_tokens": 5}
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(httpx.post, f"{url}/v1/generate", json=body, timeout=30)
            time.sleep(0.1)
            late = pool.submit(httpx.post, f"{url}/v1/generate", json=body, timeout=30)
            time.sleep(0.5)
            gated.gate.set()
            assert first.result().status_code == 200
            assert error_of(late.result(), 429)["message"] == "waited too long in the queue"


# -- a real process --------------------------------------------------------------------------
def test_rnnkit_serve_drains_on_sigterm(reverse_run):
    args = [str(LM_RUN), f"rev={reverse_run}", "--max-new-tokens", "1000"]
    with serve_process(*args) as (process, url, log):
        models = httpx.get(f"{url}/v1/models").json()["models"]
        assert [m["name"] for m in models] == ["lm-run-v1", "rev"]
        body = {"prompts": ["a"] * 8, "max_new_tokens": 1000, "stream": True}
        with httpx.stream("POST", f"{url}/v1/generate", json=body, timeout=60) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("event: token")
            process.send_signal(signal.SIGTERM)
            rest = "\n".join(lines)
        done = [data for event, data in sse(rest) if event == "done"]
        assert len(done) == 8 and all(d["tokens"] == 1000 for d in done)
        assert process.wait(60) == 0
        assert "GET /v1/models 200" in log() and "POST /v1/generate 200" in log()


def test_the_wheel_ships_the_page(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = Path(tmp_path).glob("rnnkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for page in ("index.html", "app.js", "style.css"):
        assert f"rnnkit/serve/static/{page}" in names


def test_serve_loads_each_run_with_the_precision_asked_for(monkeypatch, capsys):
    """rnnkit serve RUN --precision bf16 loads the run as rnnkit.load(RUN, precision="bf16")."""
    from rnnkit.cli import main

    asked = []

    def load(path, device="cpu", engine="auto", precision="fp32"):
        asked.append((str(path), device, precision))
        raise UserError("stop here")  # before uvicorn starts

    monkeypatch.setattr(rnnkit, "load", load)
    assert main(["serve", str(LM_RUN), "--precision", "bf16"]) == 2
    assert asked == [(str(LM_RUN), "cpu", "bf16")] and "stop here" in capsys.readouterr().err
