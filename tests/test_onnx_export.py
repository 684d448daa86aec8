"""``rnnkit export``: each task's graphs pass ``onnx.checker`` (in the export) and onnxruntime gives
what the PyTorch model gives, |d| <= 1e-5 + 1e-5 |x|, on shapes other than the export's (B in
1, 3, 7; T in 1, 9, 23) with ragged lengths: the language model over a prompt and then step by
step with its carried state, the encoder and several decoder steps, the classifier and the
tagger with character features. ``pytest -m onnx_matrix`` does the same for every cell variant
and every attention, bridge and pooling."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import LM_RUN, small_run

import rnnkit
from rnnkit.cli import main
from rnnkit.export.onnx_export import MANIFEST_VERSION, export_onnx
from rnnkit.tasks.tag.model import CharBatch
from rnnkit.tasks.translate.model import state_parts

SHAPES = [(b, t) for b in (1, 3, 7) for t in (1, 9, 23)]


def close(got: np.ndarray, want: torch.Tensor) -> float:
    """The largest |got - want| / (1e-5 + 1e-5 |want|): at most 1 passes."""
    want = want.detach().float().numpy()
    assert got.shape == want.shape, (got.shape, want.shape)
    if got.dtype == bool:
        assert (got == want).all()
        return 0.0
    return float((np.abs(got - want) / (1e-5 + 1e-5 * np.abs(want))).max())


def sessions(folder: Path) -> dict[str, ort.InferenceSession]:
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == MANIFEST_VERSION and manifest["opset"] == 17
    return {
        name: ort.InferenceSession(str(folder / g["file"]), providers=["CPUExecutionProvider"])
        for name, g in manifest["graphs"].items()
    }


def ragged(batch: int, steps: int, vocab: int, generator: torch.Generator):
    ids = torch.randint(2, vocab, (batch, steps), generator=generator)
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    lengths[0] = steps
    return ids, lengths


def lm_error(run, folder: Path) -> float:
    (lm,) = sessions(folder).values()
    model, g = run.engine.model, torch.Generator().manual_seed(0)
    layer = model.rnn
    worst, vocab = 0.0, model.output.out_features
    for batch, steps in SHAPES:
        tokens, lengths = ragged(batch, steps, vocab, g)
        state = tuple(torch.randn(layer.num_layers, batch, layer.hidden_size, generator=g)
                      for _ in range(2 if isinstance(layer, torch.nn.LSTM) else 1))  # fmt: skip
        names = ["h", "c"][: len(state)]
        for _ in range(3):  # the prompt, then two single steps with the carried state
            with torch.no_grad():
                logits, new = model(tokens, state if len(state) > 1 else state[0], lengths=lengths)
            feed = {"tokens": tokens.numpy(), "lengths": lengths.numpy()}
            feed |= {n: s.numpy() for n, s in zip(names, state, strict=True)}
            got = lm.run(None, feed)
            new = state_parts(new)
            for o, w in zip(got, (logits, *new), strict=True):
                worst = max(worst, close(o, w))
            state, tokens, lengths = new, tokens[:, :1], torch.ones(batch, dtype=torch.long)
    return worst


def translate_error(run, folder: Path) -> float:
    graphs = sessions(folder)
    model, g, worst = run.engine.model, torch.Generator().manual_seed(0), 0.0
    decoder = model.decoder
    encoder_outputs = [o.name for o in graphs["encoder"].get_outputs()]
    step_inputs = [i.name for i in graphs["decoder_step"].get_inputs()]
    vocab = decoder.output.out_features
    for batch, steps in SHAPES:
        source, lengths = ragged(batch, steps, model.encoder.embedding.num_embeddings, g)
        with torch.no_grad():
            memory, state = model.encode(source, lengths)
        got = dict(zip(encoder_outputs, graphs["encoder"].run(None, {
            "source": source.numpy(), "lengths": lengths.numpy()}), strict=True))  # fmt: skip
        want = {"keys": memory.keys, "mask": memory.mask, "projected": memory.projected}
        want |= dict(zip(["h", "c"], state_parts(state), strict=False))
        for name in encoder_outputs:
            worst = max(worst, close(got[name], want[name]))
        feed = torch.zeros(batch, decoder.rnn.hidden_size)
        tokens = torch.randint(2, vocab, (batch,), generator=g)
        values = {k: v for k, v in want.items() if v is not None} | {"feed": feed}
        for _ in range(4):  # each step's ONNX inputs are the state the torch step starts from
            inputs = {n: (values | {"tokens": tokens})[n].numpy() for n in step_inputs}
            with torch.no_grad():
                feed, state, weights = decoder.step(tokens, state, feed, memory)
                log_probs = torch.log_softmax(decoder.logits(feed), -1)
            parts = state_parts(state)
            out = graphs["decoder_step"].run(None, inputs)
            for o, w in zip(out, [log_probs, *parts, feed, weights], strict=True):
                worst = max(worst, close(o, w))
            values |= dict(zip(["h", "c"], parts, strict=False)) | {"feed": feed}
            tokens = log_probs.argmax(-1)
    return worst


def labelled_error(run, folder: Path) -> float:
    (session,) = sessions(folder).values()
    model, g, worst = run.engine.model, torch.Generator().manual_seed(0), 0.0
    tagging = run.task == "tag"
    for batch, steps in SHAPES:
        tokens, lengths = ragged(batch, steps, model.embedding.num_embeddings, g)
        inputs = {"words" if tagging else "tokens": tokens.numpy(), "lengths": lengths.numpy()}
        chars = None
        if tagging and model.char_features:
            spelled = batch * steps  # every word its own spelling: U = B * T
            char_lengths = torch.randint(1, 6, (spelled,), generator=g)
            chars = CharBatch(torch.randint(1, model.char_embedding.num_embeddings, (spelled, 5),
                                            generator=g), char_lengths,
                              torch.arange(spelled).view(batch, steps))  # fmt: skip
            inputs |= {"chars": chars.chars.numpy(), "char_lengths": char_lengths.numpy(),
                       "char_index": chars.index.numpy()}  # fmt: skip
        with torch.no_grad():
            want = model(tokens, lengths, chars) if tagging else model(tokens, lengths)
        worst = max(worst, close(session.run(None, inputs)[0], want))
    return worst


ERRORS = {"lm": lm_error, "translate": translate_error, "classify": labelled_error,
          "tag": labelled_error}  # fmt: skip


def exported_error(run_dir: Path, out: Path) -> float:
    run = rnnkit.load(run_dir)
    return ERRORS[run.task](run, export_onnx(run, out))


def test_every_task_exports_and_onnxruntime_agrees(reverse_run, labelled_runs, tmp_path):
    for name, run_dir in [("lm", LM_RUN), ("reverse", reverse_run), ("cls", labelled_runs[0]),
                          ("tag", labelled_runs[1])]:  # fmt: skip
        assert exported_error(run_dir, tmp_path / name) <= 1.0, name


def test_the_manifest_says_what_a_runtime_needs(reverse_run, tmp_path):
    out = tmp_path / "rev"
    assert main(["export", str(reverse_run), "--format", "onnx", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"] == "translate" and manifest["dtype"] == "float32"
    step = manifest["graphs"]["decoder_step"]
    assert [i["name"] for i in step["inputs"]][:2] == ["tokens", "h"]
    assert step["inputs"][0] == {"name": "tokens", "dtype": "int64", "shape": ["B"]}
    assert "attention" in [o["name"] for o in step["outputs"]]
    source = manifest["vocabularies"]["source/tokenizer.json"]
    assert source["kind"] == "word" and "<eos>" in source["vocabulary"]["itos"]
    assert manifest["decode"]["beam_size"] == 1
    assert main(["export", str(reverse_run), "--format", "onnx", "--out", str(out)]) == 2


TINY = ["model.embedding_size=8", "model.hidden_size=8", "train.max_steps=2", "train.epochs=1"]
LM = [f"data.train={LM_RUN / 'sample.txt'}", "data.mode=stream", "data.bptt=8"]
REVERSE = [
    "task=translate",
    "data.synthetic=reverse",
    "data.tokenizer=word",
    "model.init_range=null",
]
LABELLED = "".join(f"{i % 2}\tw{i % 5} x{i % 3} y\n" for i in range(40))
TAGGED = "".join(f"w{i % 4}\tT{i % 2}\nx{i % 3}\tT{i % 3}\n\n" for i in range(20))
MATRIX = {
    "lm": [[], ["model.cell=rnn"], ["model.cell=rnn", "model.nonlinearity=relu"],
           ["model.peephole=true"], ["model.cell=gru"],
           ["model.cell=gru", "model.reset=before", "model.gate=hard_sigmoid"],
           ["model.cell=gru", "model.num_layers=2"], ["model.num_layers=2"]],
    "translate": [[f"model.attention={a}"] for a in ("none", "dot", "general", "concat",
                                                      "additive")]
                 + [["model.bridge=zero"], ["model.bridge=last", "model.bidirectional=false"],
                    ["model.input_feeding=false"], ["model.cell=gru", "model.bidirectional=true"],
                    ["model.cell=gru", "model.reset=before", "model.gate=hard_sigmoid"],
                    ["model.peephole=true", "model.num_layers=2"],
                    ["model.cell=rnn", "model.attention=additive"]],
    "classify": [[f"model.pooling={p}"] for p in ("last", "mean", "max", "attention")]
                + [["model.bidirectional=true", "model.cell=gru"]],
    "tag": [[], ["model.char_features=true"], ["model.cell=gru", "model.bidirectional=true",
                                                "model.char_features=true"]],
}  # fmt: skip


def matrix_run(task: str, settings: list[str], tmp: Path) -> Path:
    if task == "lm":
        return small_run(tmp, *TINY, *LM, *settings)
    if task == "translate":
        return small_run(tmp, *TINY, *REVERSE, *settings)
    data = tmp / "data.txt"
    data.write_text(LABELLED if task == "classify" else TAGGED)
    return small_run(tmp, *TINY, f"task={task}", f"data.train={data}", *settings)


@pytest.mark.onnx_matrix
@pytest.mark.parametrize(
    "task, settings",
    [(task, settings) for task, rows in MATRIX.items() for settings in rows],
    ids=lambda v: v if isinstance(v, str) else "-".join(x.split(".")[-1] for x in v) or "default",
)
def test_every_variant_exports_and_onnxruntime_agrees(task, settings, tmp_path):
    run = matrix_run(task, settings, tmp_path)
    assert exported_error(run, tmp_path / "out") <= 1.0


# -- decoding through onnxruntime: rnnkit.load(EXPORT_DIR), the CLI, the server --------------
@pytest.fixture(scope="module")
def exports(reverse_run, labelled_runs, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """(run, its export) per task."""
    tmp = tmp_path_factory.mktemp("exports")
    runs = {"lm": LM_RUN, "translate": reverse_run, "classify": labelled_runs[0],
            "tag": labelled_runs[1]}  # fmt: skip
    return {task: (run, export_onnx(rnnkit.load(run), tmp / task)) for task, run in runs.items()}


def test_an_export_decodes_as_pytorch_does(exports):
    run, export = (rnnkit.load(p) for p in exports["translate"])
    assert type(run) is type(export) and type(export.engine).__name__ == "OnnxEngine"
    sentences = ["a b c d", "e f g h i j k", "l", "m n o p q r s t u v"]
    for beam, n_best in [(1, 1), (5, 3)]:
        want = run.translate(sentences, beam=beam, n_best=n_best, attention=True)
        got = export.translate(sentences, beam=beam, n_best=n_best, attention=True)
        for w, g in zip(want, got, strict=True):
            assert [h.text for h in g.hypotheses] == [h.text for h in w.hypotheses]
            assert [h.score for h in g.hypotheses] == pytest.approx(
                [h.score for h in w.hypotheses], abs=1e-4
            )
            assert np.allclose(g.attention.weights, w.attention.weights, atol=1e-5)
    lm, lm_export = (rnnkit.load(p) for p in exports["lm"])
    for options in [{"temperature": 0.0}, {"beam": 5, "num_samples": 2},
                    {"temperature": 0.8, "top_k": 10, "seed": [1, 2]}]:  # fmt: skip
        want = lm.generate(["ROMEO:", "To be"], max_new_tokens=40, **options)
        got = lm_export.generate(["ROMEO:", "To be"], max_new_tokens=40, **options)
        assert [g.text for g in got] == [g.text for g in want]
    assert lm_export.score(["To be"])[0].loss == pytest.approx(lm.score(["To be"])[0].loss, 1e-5)
    for task, inputs in [("classify", ["w1 x2 y", "w0"]), ("tag", ["w1 x2", "w3 x0 w1"])]:
        run, export = (rnnkit.load(p) for p in exports[task])
        want, got = run.predict(inputs), export.predict(inputs)
        if task == "tag":
            assert got == want
        else:
            assert [g.label for g in got] == [w.label for w in want]
            for g, w in zip(got, want, strict=True):
                assert g.probabilities == pytest.approx(w.probabilities, abs=1e-5)


# The CLI in a process where ``import torch`` fails: what a user without torch runs.
WITHOUT_TORCH = "import sys; sys.modules['torch'] = None; from rnnkit.cli import main; "


def without_torch(code: str, *argv: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH + code, *argv], input=stdin,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.parametrize(
    "command, task, stdin, options",
    [
        ("translate", "translate", "a b c d\ne f g h i\nl\n", ["--beam", "5", "--n-best", "2"]),
        ("translate", "translate", "m n o p q\n", ["--beam", "1"]),
        ("generate", "lm", "", ["--prompt", "ROMEO:", "--max-new-tokens", "30", "--seed", "3",
                                "--temperature", "0.8", "--top-k", "10", "--top-p", "0.9"]),
        ("generate", "lm", "", ["--prompt", "To be", "--beam", "5", "--num-samples", "2",
                                "--max-new-tokens", "20"]),
        ("predict", "classify", "w1 x2 y\nw0\n", []),
        ("predict", "tag", "w1 x2\nw3 x0 w1\n", []),
    ],
)  # fmt: skip
def test_decoding_an_export_never_imports_torch(
    exports, capsys, monkeypatch, command, task, stdin, options
):
    """The export decodes in a process that cannot import torch, and prints what the PyTorch
    run prints: the same search, fed numpy arrays by onnxruntime."""
    assert without_torch("import torch").returncode != 0  # the blocker blocks
    run, export = exports[task]
    done = without_torch(
        "sys.exit(main(sys.argv[1:]))", "-q", command, str(export), *options, stdin=stdin
    )
    assert done.returncode == 0, done.stderr
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main(["-q", command, str(run), *options]) == 0
    assert done.stdout == capsys.readouterr().out and done.stdout.strip()


def test_the_cli_runs_an_export_and_exports_on_the_fly(exports, capsys, monkeypatch):
    run, export = exports["translate"]
    outputs = []
    for argv in ([str(run)], [str(export)], [str(run), "--engine", "onnxruntime"]):
        monkeypatch.setattr("sys.stdin", io.StringIO("a b c\nd e f g\n"))
        assert main(["translate", *argv, "--beam", "3", "--n-best", "2"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2] and outputs[0].count("\n") == 4
    assert main(["translate", str(export), "--engine", "torch"]) == 2
    assert "runs in onnxruntime" in capsys.readouterr().err


def test_rnnkit_serve_serves_an_export(exports):
    from fastapi.testclient import TestClient

    from rnnkit.serve.app import create_app

    run, export = exports["translate"]
    body = {"sentences": ["a b c", "d e"], "beam": 3, "n_best": 2}
    answers = []
    for path in (run, export):
        with TestClient(create_app({"rev": rnnkit.load(path)})) as client:
            answers.append(client.post("/v1/translate", json=body).json()["translations"])
    assert [[h["text"] for h in t["hypotheses"]] for t in answers[0]] == [
        [h["text"] for h in t["hypotheses"]] for t in answers[1]
    ]
