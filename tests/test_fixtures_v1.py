"""Runs and exports written by rnnkit before the one-home-per-task layout (at d816a88) load and
decode exactly as they did then, and a server of them has the same OpenAPI schema."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import rnnkit
from rnnkit.serve.app import create_app

FIXTURES = Path(__file__).parent / "fixtures"


def translations(run, inputs: list[str]) -> dict[str, list]:
    out = {}
    for beam in (1, 3):
        found = run.translate(inputs, beam=beam, n_best=min(beam, 2))
        out[f"beam{beam}"] = [
            [[h.text, round(float(h.score), 6)] for h in t.hypotheses] for t in found
        ]
    return out


@pytest.mark.parametrize("path, engine", [("translate-run-v1", "torch"),
                                          ("translate-export-v1", "onnxruntime")])  # fmt: skip
def test_a_translate_run_and_export_of_v1_decode_as_before(path, engine):
    expected = json.loads((FIXTURES / "translate-run-v1" / "expected.json").read_text())
    got = translations(rnnkit.load(FIXTURES / path), expected["inputs"])
    for beam, rows in expected[engine].items():
        for got_row, want_row in zip(got[beam], rows, strict=True):
            assert [h[0] for h in got_row] == [h[0] for h in want_row]
            assert [h[1] for h in got_row] == pytest.approx([h[1] for h in want_row], abs=2e-6)


def test_an_lm_export_of_v1_generates_as_before():
    expected = json.loads((FIXTURES / "lm-export-v1" / "expected.json").read_text())
    run = rnnkit.load(FIXTURES / "lm-export-v1")
    for key, texts in expected["generate"].items():
        prompt, temperature = key.split("|")
        got = run.generate(prompt, max_new_tokens=30, temperature=float(temperature), seed=7)
        assert [g.text for g in got] == texts
    beams = run.generate("KING", max_new_tokens=20, beam=3, num_samples=2)
    assert [g.text for g in beams] == [b[0] for b in expected["beam"]]
    assert [g.score for g in beams] == pytest.approx([b[1] for b in expected["beam"]], abs=2e-5)


@pytest.mark.parametrize("name", ["classify-run-v1", "tag-run-v1"])
def test_a_labelling_run_of_v1_predicts_as_before(name):
    expected = json.loads((FIXTURES / name / "expected.json").read_text())
    got = [dataclasses.asdict(p) for p in rnnkit.load(FIXTURES / name).predict(expected["inputs"])]
    for mine, theirs in zip(got, expected["predict"], strict=True):
        probabilities = mine.pop("probabilities", None)
        assert probabilities == pytest.approx(theirs.pop("probabilities", None))
        assert mine == theirs


def test_the_openapi_schema_of_the_v1_endpoints_is_unchanged():
    names = ("lm-run-v1", "translate-run-v1", "classify-run-v1", "tag-run-v1")
    schema = create_app({n: rnnkit.load(FIXTURES / n) for n in names}).openapi()
    expected = json.loads((FIXTURES / "openapi-v1.json").read_text())
    assert json.loads(json.dumps(schema, sort_keys=True)) == expected
