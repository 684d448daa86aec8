"""Sentence classification: pooling by hand (padding masked), a synthetic task learnt in seconds,
the run directory round trip, predict/evaluate through the CLI, pretrained vectors, one-line
errors for malformed input."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.data.shuffle import pad_ids
from rnnkit.models.pooling import AttentionPooling, last_pool, max_pool, mean_pool
from rnnkit.runs.rundir import load_tensors
from rnnkit.tasks import registry
from rnnkit.tasks.classify.model import SequenceClassifier
from rnnkit.tasks.registry import load_config
from rnnkit.training.distributed import SINGLE_PROCESS
from rnnkit.workflows.train import train

# -- pooling ------------------------------------------------------------------------------------
H = torch.tensor(
    [
        [[1.0, -1.0, 2.0, 0.0], [3.0, 5.0, -2.0, 1.0], [2.0, 0.0, 4.0, -3.0]],
        [[7.0, 1.0, -1.0, 2.0], [100.0, 100.0, 100.0, 100.0], [100.0, 100.0, 100.0, 100.0]],
    ]
)  # (2, 3, 4)

ModelConfig = registry.section("model")
LENGTHS = torch.tensor([3, 1])  # row 1 is padded after its first step (the 100s)


def test_last_pool_takes_each_directions_final_state():
    assert last_pool(H, LENGTHS, bidirectional=False).tolist() == [[2, 0, 4, -3], [7, 1, -1, 2]]
    # forward half at t = n_b, backward half at t = 1
    assert last_pool(H, LENGTHS, bidirectional=True).tolist() == [[2, 0, 2, 0], [7, 1, -1, 2]]


def test_mean_and_max_pool_ignore_padding():
    assert torch.allclose(
        mean_pool(H, LENGTHS), torch.tensor([[2, 4 / 3, 4 / 3, -2 / 3], [7, 1, -1, 2]])
    )
    assert max_pool(H, LENGTHS).tolist() == [[3, 5, 4, 1], [7, 1, -1, 2]]


def test_attention_pool_by_hand():
    pool = AttentionPooling(4, 2)
    with torch.no_grad():
        pool.W.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0]]))
        pool.W.bias.copy_(torch.tensor([0.5, 0.0]))
        pool.v.weight.copy_(torch.tensor([[2.0, 1.0]]))
    # score_t = 2 tanh(h_t[0] + 0.5) + 1 tanh(0)
    scores = 2 * torch.tanh(H[0, :, 0] + 0.5)
    a = scores.exp() / scores.exp().sum()
    weights = pool.weights(H, LENGTHS)
    assert torch.allclose(weights[0], a)
    assert weights[1].tolist() == [1.0, 0.0, 0.0]  # padded steps get exactly zero weight
    assert torch.allclose(pool(H, LENGTHS), torch.stack([(a.unsqueeze(1) * H[0]).sum(0), H[1, 0]]))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
def test_every_cell_and_pooling_classifies_padded_batches(cell, pooling):
    torch.manual_seed(0)
    cfg = ModelConfig(
        cell=cell,
        pooling=pooling,
        embedding_size=6,
        hidden_size=5,
        num_layers=2,
        bidirectional=pooling != "mean",
        peephole=cell == "lstm",
        dropout=0.1,
    )
    model = SequenceClassifier(10, 3, cfg).eval()
    tokens = torch.tensor([[4, 5, 6, 7], [8, 9, 0, 0]])
    logits = model(tokens, torch.tensor([4, 2]))
    assert logits.shape == (2, 3)
    # the padded row scores as it does alone: padding changes nothing
    assert torch.allclose(logits[1], model(tokens[1:, :2], torch.tensor([2]))[0], atol=1e-6)


# -- a synthetic task: is the count of token a larger than that of b? ---------------------------
def count_task(count: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        tokens = rng.choices("abc", k=rng.randint(1, 15))
        lines.append(f"{int(tokens.count('a') > tokens.count('b'))}\t{' '.join(tokens)}\n")
    return "".join(lines)


def count_config(tmp: Path, *overrides: str, seed: int = 1):
    """The count task's files (generated from ``seed``, ``seed + 1``, ``seed + 2``) and recipe."""
    for offset, (split, count) in enumerate((("train", 2000), ("valid", 300), ("test", 300))):
        (tmp / f"count.{split}").write_text(count_task(count, seed + offset))
    return load_config(
        None,
        [
            "task=classify",
            f"seed={seed}",
            f"run_dir={tmp / 'run'}",
            f"data.train={tmp / 'count.train'}",
            f"data.valid={tmp / 'count.valid'}",
            f"data.test={tmp / 'count.test'}",
            "data.batch_size=32",
            "data.eval_batch_size=100",
            "model.embedding_size=16",
            "model.hidden_size=32",
            "model.num_layers=1",
            "model.bidirectional=true",
            "model.pooling=mean",
            "model.init_range=null",
            "train.optimizer=adam",
            "train.lr=0.01",
            "train.epochs=4",
            "train.progress=false",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def count_run(tmp_path_factory, toy_seed, toy_score) -> Path:
    tmp = tmp_path_factory.mktemp("count")
    summary = train(count_config(tmp, seed=toy_seed(1)))
    toy_score("count: test accuracy", summary["test"]["accuracy"], 0.95)
    toy_score("count: test macro-F1", summary["test"]["macro_f1"], 0.95)
    assert summary["test"]["accuracy"] >= 0.95 and summary["test"]["macro_f1"] >= 0.95
    return tmp / "run"


@pytest.mark.toy
def test_the_count_task_reaches_95_percent(count_run):
    scores = rnnkit.load(count_run).evaluate()
    assert scores["accuracy"] >= 0.95 and scores["examples"] == 300
    labels, matrix = scores["confusion"]["labels"], scores["confusion"]["matrix"]
    assert labels == ["0", "1"] and sum(map(sum, matrix)) == 300
    assert (matrix[0][0] + matrix[1][1]) / 300 == scores["accuracy"]


def collate_texts(tokenizers, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [tokenizers.text.encode(t) for t in texts]
    lengths = torch.tensor([len(x) for x in ids])
    return pad_ids(ids, tokenizers.text.vocab.pad_index), lengths


@pytest.mark.toy
def test_a_loaded_run_predicts_as_the_model_in_memory(count_run):
    run = rnnkit.load(count_run)
    kind = registry.get("classify").trainer_side()
    fresh = kind.build_vocabularies(run.cfg, kind.read_data(run.cfg))  # rebuilt from the data
    memory = kind.build_model(run.cfg, fresh).eval()
    memory.load_state_dict(load_tensors(count_run / "model.safetensors"))
    texts = ["a a b", "b b b a", "c", "a zebra a"]
    predicted = run.predict(texts)
    with torch.no_grad():
        in_memory = memory(*collate_texts(fresh, texts)).softmax(-1)
    for label, probabilities in zip(predicted, in_memory, strict=True):
        assert list(label.probabilities.values()) == pytest.approx(probabilities.tolist(), abs=1e-6)
    assert [label.label for label in predicted] == [
        "1",
        "0",
        "0",
        "1",
    ]


@pytest.mark.toy
def test_predict_and_evaluate_cli(count_run, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("a a b\nb b\n")
    assert main(["predict", str(count_run), "--input", str(tmp_path / "in.txt")]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [line[0] for line in lines] == ["1", "0"]
    probabilities = [float(p.split("=")[1]) for p in lines[0][1].split()]
    assert lines[0][1].startswith("0=") and sum(probabilities) == pytest.approx(1, abs=1e-3)
    assert main(["evaluate", str(count_run), "--json", str(tmp_path / "scores.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("loss ") and " accuracy " in out[0] and " macro_f1 " in out[0]
    assert out[1] == "confusion matrix (rows: gold, columns: predicted)" and out[2].split() == [
        "0",
        "1",
    ]
    assert '"matrix"' in (tmp_path / "scores.json").read_text()


@pytest.mark.toy
def test_malformed_input_gets_one_line_and_status_2(count_run, tmp_path, capsys):
    (tmp_path / "bad.txt").write_text("1 a a\nfoo b\n")
    assert main(["evaluate", str(count_run), "--data", str(tmp_path / "bad.txt")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"rnnkit: error: {tmp_path / 'bad.txt'}:2: "
        "label 'foo' is not one of the run's labels (0, 1)\n"
    )
    (tmp_path / "in.txt").write_text("a b\n \n")
    assert main(["predict", str(count_run), "--input", str(tmp_path / "in.txt")]) == 2
    assert (
        capsys.readouterr().err == f"rnnkit: error: {tmp_path / 'in.txt'}:2: no token to classify\n"
    )
    (tmp_path / "train.txt").write_text("1 a a\n0\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"task: classify\ndata:\n  train: {tmp_path / 'train.txt'}\n")
    assert main(["train", str(config), "--run-dir", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.endswith(
        "train.txt:2: missing text after the label '0' "
        "(expected 'label<TAB>text' or 'label text')\n"
    )


@pytest.mark.toy
def test_the_installed_command_prints_one_line_not_a_traceback(count_run, tmp_path):
    (tmp_path / "bad.csv").write_text("label,text\n1,a a\n,b\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnnkit.cli",
            "evaluate",
            str(count_run),
            "--data",
            str(tmp_path / "bad.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert (
        result.stderr
        == f"rnnkit: error: {tmp_path / 'bad.csv'}:3: missing label (column 'label')\n"
    )


def test_pretrained_vectors_fill_and_freeze_the_embedding(tmp_path, capsys):
    vectors = {"a": [1.0, 2.0, 3.0, 4.0], "b": [-1.0, 0.5, 0.0, 2.0]}
    (tmp_path / "vectors.txt").write_text(
        "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vectors.items())
    )
    cfg = count_config(
        tmp_path,
        f"model.pretrained_embeddings={tmp_path / 'vectors.txt'}",
        "model.freeze_embeddings=true",
        "model.embedding_size=4",
        "train.max_steps=3",
        "data.test=null",
    )
    train(cfg)
    assert "pretrained embeddings: 2/7 vocabulary words found" in capsys.readouterr().out
    run = rnnkit.load(tmp_path / "run")
    vocab, model = run.vocabularies.text.vocab, run.engine.model
    for word, vector in vectors.items():
        assert (
            model.embedding.weight[vocab.index(word)].tolist() == vector
        )  # frozen: unchanged by training


def test_word_dropout_feeds_unk_in_place_of_the_words(tmp_path):
    kind, fed = registry.get("classify").trainer_side(), {}
    for alpha in ("0", "1000000000.0"):  # every word's alpha / (alpha + count) is ~1
        cfg = count_config(tmp_path, f"model.word_dropout={alpha}")
        data = kind.read_data(cfg)
        vocabularies = kind.build_vocabularies(cfg, data)
        model = kind.build_model(cfg, vocabularies)
        task = kind.training_task(
            cfg, vocabularies, model, data, torch.device("cpu"), SINGLE_PROCESS
        )

        def seen(tokens, lengths, alpha=alpha, model=model):
            fed[alpha] = tokens, lengths
            return model(tokens, lengths)

        task.batch_loss(seen, 1, 0)
    (tokens, lengths), (dropped, _) = fed["0"], fed["1000000000.0"]
    real = torch.arange(tokens.shape[1]) < lengths[:, None]  # (B, T): not padding
    unk = vocabularies.text.vocab.unk_index
    assert (tokens[real] != unk).all() and (dropped[real] == unk).all()
    assert torch.equal(dropped[~real], tokens[~real])  # padding stays padding
