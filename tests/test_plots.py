"""rnnkit.plots: the attention heatmap is a readable PNG shaped like its matrix; bad shapes
refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")

import matplotlib.image  # noqa: E402

from rnnkit.plots import attention_heatmap, time_to_quality_plot  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_heatmap_is_a_png_as_wide_as_the_source_and_as_tall_as_the_target(tmp_path):
    source = ["ein", "Hund", "läuft", "$5", "$x$", "über", "die", "Wiese", "schnell", "."]
    target = ["a", "dog", "runs"]
    weights = torch.rand(len(target), len(source)).softmax(dim=-1)
    wide = tmp_path / "wide.png"
    attention_heatmap(weights, source, target, wide, title="de -> en")
    assert wide.read_bytes().startswith(PNG_SIGNATURE)
    height, width = matplotlib.image.imread(wide).shape[:2]
    assert width > height > 0

    tall = tmp_path / "tall.png"
    attention_heatmap(np.full((len(source), len(target)), 1 / len(target)), target, source, tall)
    height, width = matplotlib.image.imread(tall).shape[:2]
    assert height > width > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "tall.png",
        "wide.png",
    ]  # no temp files left


def test_weights_that_do_not_match_the_tokens_are_refused(tmp_path):
    path = tmp_path / "bad.png"
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        attention_heatmap(np.zeros((3, 2)), ["a", "b", "c"], ["x", "y"], path)
    assert not path.exists()


def test_time_to_quality_is_a_png_with_one_line_per_run(tmp_path):
    path = tmp_path / "curve.png"
    curves = {"rnnkit": ([2.5, 5.0, 7.5], [20.1, 27.9, 30.2]), "peer": ([4.0, 8.0], [12.0, 20.5])}
    time_to_quality_plot(curves, "dev BLEU", path, title="Multi30k")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    height, width = matplotlib.image.imread(path).shape[:2]
    assert width > height > 0
    time_to_quality_plot({"lm": ([1.0, 2.0], [300.0, 150.0])}, "valid ppl", path, log_y=True)
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]
