"""rnnkit.load: every task's loaded run gives what its CLI command prints; batched calls give
what one call per input gives (greedy, beam, seeded sampling); generate_stream yields the
tokens generate returns; ``import rnnkit`` leaves torch alone."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import LM_RUN, ROOT, small_run

import rnnkit
from rnnkit.cli import main
from rnnkit.errors import UserError
from rnnkit.tasks import registry
from rnnkit.tasks.classify.run import ClassifierRun
from rnnkit.tasks.lm.run import LanguageModelRun
from rnnkit.tasks.tag.run import TaggerRun
from rnnkit.tasks.translate.run import TranslationRun

PROMPTS = ["ROMEO:", "", "To be or", "First Citizen:\nWe"]


def cli(capsys, *argv: str, stdin: str | None = None, monkeypatch=None) -> list[str]:
    if stdin is not None:
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert main(list(argv)) == 0
    return capsys.readouterr().out.splitlines()


# -- one door, the right type ----------------------------------------------------------------
def test_load_returns_the_tasks_own_type(reverse_run, labelled_runs):
    assert isinstance(rnnkit.load(LM_RUN), LanguageModelRun)
    assert isinstance(rnnkit.load(reverse_run), TranslationRun)
    assert isinstance(rnnkit.load(labelled_runs[0]), ClassifierRun)
    assert isinstance(rnnkit.load(labelled_runs[1]), TaggerRun)
    described = rnnkit.load(reverse_run).describe()
    assert described["task"] == "translate" and described["cell"] == "gru"
    assert described["parameters"] > 0 and set(described["vocabulary_sizes"]) == {
        "source",
        "target",
    }


def test_every_task_is_registered_once_with_its_config_keys():
    assert set(registry.TASKS) == {"lm", "translate", "adding", "copy", "classify", "tag"}
    keys = registry.config_keys("translate")
    assert "bridge" in keys["model"] and "bptt" not in keys["data"]
    assert "beam_size" in keys["decode"] and registry.config_keys("lm")["decode"] == []


# -- the same output as the CLI --------------------------------------------------------------
def test_lm_generate_equals_the_cli(capsys):
    run = rnnkit.load(LM_RUN)
    expected = run.generate("ROMEO:", max_new_tokens=40, temperature=0.8, seed=3, num_samples=2)
    out = cli(capsys, "generate", str(LM_RUN), "--prompt", "ROMEO:", "--max-new-tokens", "40",
              "--temperature", "0.8", "--seed", "3", "--num-samples", "2")  # fmt: skip
    assert out == ["--- sample 1 ---", *expected[0].text.splitlines(),
                   "--- sample 2 ---", *expected[1].text.splitlines()]  # fmt: skip
    beam = run.generate("ROMEO:", max_new_tokens=20, beam=3)
    assert cli(capsys, "generate", str(LM_RUN), "--prompt", "ROMEO:", "--max-new-tokens", "20",
               "--beam", "3") == beam[0].text.splitlines()  # fmt: skip


def test_translate_equals_the_cli(reverse_run, capsys, monkeypatch):
    run = rnnkit.load(reverse_run)
    sentences = ["a b c", "d e f g h", "k"]
    translations = run.translate(sentences, beam=3, n_best=2)
    out = cli(capsys, "translate", str(reverse_run), "--beam", "3", "--n-best", "2",
              stdin="\n".join(sentences) + "\n", monkeypatch=monkeypatch)  # fmt: skip
    expected = [
        f"{n}\t{h.score:.4f}\t{h.text}" for n, t in enumerate(translations, 1) for h in t.hypotheses
    ]
    assert out == expected


def test_predict_equals_the_cli(labelled_runs, capsys, tmp_path):
    classify, tag = labelled_runs
    (tmp_path / "in.txt").write_text("w1 x2 y\nw0 x0\n")
    labels = rnnkit.load(classify).predict(["w1 x2 y", "w0 x0"])
    out = cli(capsys, "predict", str(classify), "--input", str(tmp_path / "in.txt"))
    assert [line.split("\t")[0] for line in out] == [label.label for label in labels]
    assert all(abs(sum(label.probabilities.values()) - 1) < 1e-5 for label in labels)
    tagged = rnnkit.load(tag).predict(["w1 x2", "w3"])
    (tmp_path / "tag.txt").write_text("w1 x2\nw3\n")
    out = cli(capsys, "predict", str(tag), "--input", str(tmp_path / "tag.txt"))
    assert [line for line in out if line] == [
        f"{t}\t{g}" for s in tagged for t, g in zip(s.tokens, s.tags, strict=True)
    ]


def test_evaluate_equals_the_cli(labelled_runs, capsys):
    classify = labelled_runs[0]
    scores = rnnkit.load(classify).evaluate("valid")
    out = cli(capsys, "evaluate", str(classify), "--split", "valid")
    assert out[0].startswith(f"loss {scores['loss']:.6f} accuracy {scores['accuracy']:.6f}")
    fixture = rnnkit.load(LM_RUN).evaluate(data=str(LM_RUN / "sample.txt"))
    out = cli(capsys, "evaluate", str(LM_RUN), "--data", str(LM_RUN / "sample.txt"))
    assert out == [f"loss {fixture['loss']:.6f} ppl {fixture['ppl']:.6f} tokens "
                   f"{fixture['tokens']} bpc {fixture['bpc']:.6f}"]  # fmt: skip


def test_long_range_runs_evaluate(tmp_path):
    run = small_run(tmp_path, "task=adding", "data.sequence_length=10", "data.train_size=64",
                    "data.valid_size=32", "data.test_size=32", "model.hidden_size=8",
                    "model.num_layers=1", "train.epochs=1", "model.init_range=null",
                    "model.embedding_size=200")  # fmt: skip
    scores = rnnkit.load(run).evaluate("test")
    assert scores["mse"] == scores["loss"] and scores["mse"] > 0


# -- batched equals one call per input -------------------------------------------------------
@pytest.mark.parametrize(
    "settings",
    [
        {"temperature": 0.0},  # greedy
        {"temperature": 0.9, "top_k": 5, "seed": [11, 12, 13, 14]},
        {"temperature": [1.0, 0.5, 1.5, 0.0], "top_p": [0.9, 1.0, 0.8, 1.0], "seed": 7},
        {"beam": 3},
    ],
    ids=["greedy", "seeded-top-k", "per-row-settings", "beam"],
)
def test_batched_generate_equals_one_prompt_at_a_time(settings):
    run = rnnkit.load(LM_RUN)
    batched = run.generate(PROMPTS, max_new_tokens=[25, 10, 30, 5], **settings)
    for i, prompt in enumerate(PROMPTS):
        alone = {k: v[i] if isinstance(v, list) else v for k, v in settings.items()}
        (single,) = run.generate(prompt, max_new_tokens=[25, 10, 30, 5][i], **alone)
        assert batched[i].text == single.text and batched[i].token_ids == single.token_ids
        assert batched[i].prompt_index == i
    assert [len(g.token_ids) for g in batched] == [25, 10, 30, 5]


def test_each_sample_of_a_seeded_prompt_is_reproducible_and_distinct():
    run = rnnkit.load(LM_RUN)
    first = run.generate("ROMEO:", max_new_tokens=30, seed=5, num_samples=3)
    again = run.generate(["x", "ROMEO:"], max_new_tokens=30, seed=[1, 5], num_samples=3)[3:]
    assert [g.text for g in first] == [g.text for g in again]
    assert len({g.text for g in first}) == 3
    assert [g.sample_index for g in first] == [0, 1, 2]


def test_batched_translate_equals_one_sentence_at_a_time(reverse_run):
    run = rnnkit.load(reverse_run)
    sentences = ["a b c", "t s r q p o n m", "k", "b b a a b"]
    for beam in (1, 4):
        batched = run.translate(sentences, beam=beam, n_best=beam)
        for sentence, translation in zip(sentences, batched, strict=True):
            (single,) = run.translate(sentence, beam=beam, n_best=beam)
            assert [h.token_ids for h in single.hypotheses] == [
                h.token_ids for h in translation.hypotheses
            ]
            assert [h.score for h in single.hypotheses] == pytest.approx(
                [h.score for h in translation.hypotheses], abs=1e-5
            )


def test_translate_gives_the_attention_of_the_best_hypothesis(reverse_run):
    (translation,) = rnnkit.load(reverse_run).translate("a b c", beam=2, attention=True)
    matrix = translation.attention
    assert matrix.source_tokens == ["a", "b", "c", "<eos>"]
    assert len(matrix.weights) == len(translation.hypotheses[0].token_ids) + 1
    assert all(abs(sum(row) - 1) < 1e-5 for row in matrix.weights)


# -- streaming -------------------------------------------------------------------------------
def test_generate_stream_yields_the_tokens_generate_returns():
    run = rnnkit.load(LM_RUN)
    options = dict(max_new_tokens=[12, 20], temperature=0.8, seed=[2, 3], num_samples=2)
    generations = run.generate(["ROMEO:", "JULIET:"], **options)
    tokens: list[list[int]] = [[] for _ in generations]
    texts = ["" for _ in generations]
    reasons: list[str | None] = [None for _ in generations]
    for step in run.generate_stream(["ROMEO:", "JULIET:"], **options):
        for r, token in enumerate(step.token_ids):
            if token is not None:
                tokens[r].append(token)
                texts[r] += step.texts[r]
            reasons[r] = step.finish_reasons[r] or reasons[r]
    assert tokens == [g.token_ids for g in generations]
    assert texts == [g.completion for g in generations]
    assert reasons == ["length"] * 4


def test_score_gives_each_texts_perplexity():
    run = rnnkit.load(LM_RUN)
    scores = run.score(["ROMEO: what", "zzzz qqqq"])
    assert scores[0].tokens == len("ROMEO: what") + 0 and scores[0].loss > 0
    alone = run.score("ROMEO: what")[0]
    assert alone.loss == pytest.approx(scores[0].loss, rel=1e-5)
    assert scores[0].ppl == pytest.approx(2.718281828 ** scores[0].loss, rel=1e-6)


def test_bad_settings_are_user_errors():
    run = rnnkit.load(LM_RUN)
    with pytest.raises(UserError, match="top_p"):
        run.generate("a", max_new_tokens=3, top_p=0.0)
    with pytest.raises(UserError, match="2 values for 1 inputs"):
        run.generate("a", max_new_tokens=3, seed=[1, 2])


def test_import_rnnkit_does_not_import_torch():
    code = "import rnnkit, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_bf16_weights_decode_as_fp32_does(reverse_run, labelled_runs, monkeypatch):
    """precision="bf16" holds the weights in bf16 (forced on: a CPU without native bf16 then
    emulates it, slowly, which is fine for these tiny runs) and decodes as fp32 does: the same
    translations and labels (the runs' margins are far wider than bf16's rounding), LM scores
    within 2%."""
    import torch

    monkeypatch.setattr("rnnkit.nn.device.cpu_has_bf16", lambda: True)
    sentences = ["a b c d", "e f g h i j", "k"]
    full, half = (rnnkit.load(reverse_run, precision=p) for p in ("fp32", "bf16"))
    assert {p.dtype for p in half.engine.model.parameters()} == {torch.bfloat16}
    for beam in (1, 5):
        assert [t.text for t in half.translate(sentences, beam=beam)] == [
            t.text for t in full.translate(sentences, beam=beam)
        ]
    full, half = (rnnkit.load(labelled_runs[0], precision=p) for p in ("fp32", "bf16"))
    texts = ["w1 x2 y", "w0", "x2 w3 w1"]
    assert [x.label for x in half.predict(texts)] == [x.label for x in full.predict(texts)]
    full, half = (rnnkit.load(LM_RUN, precision=p) for p in ("fp32", "bf16"))
    assert half.score("To be, or not to be")[0].loss == pytest.approx(
        full.score("To be, or not to be")[0].loss, rel=0.02
    )
    assert len(half.generate("ROMEO:", max_new_tokens=20, seed=1)[0].token_ids) == 20


def test_bf16_without_native_bf16_says_so_and_runs_fp32(monkeypatch, capsys):
    import torch

    monkeypatch.setattr("rnnkit.nn.device.cpu_has_bf16", lambda: False)
    run = rnnkit.load(LM_RUN, precision="bf16")
    assert {p.dtype for p in run.engine.model.parameters()} == {torch.float32}
    assert "no native bf16" in capsys.readouterr().err
    with pytest.raises(UserError, match="fp16 needs a CUDA device"):
        rnnkit.load(LM_RUN, precision="fp16")
    with pytest.raises(UserError, match="precision: one of fp32, bf16, fp16"):
        rnnkit.load(LM_RUN, precision="int8")
