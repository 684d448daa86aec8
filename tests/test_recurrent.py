"""rnnkit.models.recurrent: the one initialisation order, init_range -> forget_bias ->
recurrent_init, holds in every task model, and no step undoes an earlier one's target."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rnnkit.nn import LSTM, RNN
from rnnkit.tasks import registry
from rnnkit.tasks.classify.model import SequenceClassifier
from rnnkit.tasks.lm.model import RNNLanguageModel
from rnnkit.tasks.long_range.model import LongRangeModel
from rnnkit.tasks.tag.model import SequenceTagger
from rnnkit.tasks.translate.model import Seq2Seq

ModelConfig = registry.section("model")

SMALL = ModelConfig(embedding_size=6, hidden_size=8, num_layers=2, cell="lstm", attention="general")

MODELS = {
    "lm": lambda cfg: RNNLanguageModel(11, cfg),
    "translate": lambda cfg: Seq2Seq(11, 13, dataclasses.replace(cfg, bidirectional=True), 0, 0),
    "classify": lambda cfg: SequenceClassifier(11, 3, cfg),
    "tag": lambda cfg: SequenceTagger(
        11, 5, dataclasses.replace(cfg, char_features=True, bidirectional=True), num_chars=7
    ),
    "copy": lambda cfg: LongRangeModel(cfg, symbols=10),
}


def lstm_layers(model: torch.nn.Module) -> list[LSTM]:
    return [m for m in model.modules() if isinstance(m, LSTM)]


@pytest.mark.parametrize("task", MODELS)
def test_forget_bias_survives_init_range(task):
    torch.manual_seed(0)
    model = MODELS[task](dataclasses.replace(SMALL, init_range=0.05, forget_bias=1.5))
    layers = lstm_layers(model)
    assert layers
    for layer in layers:
        for name, p in layer.named_parameters():
            if name.startswith("bias_"):
                H = layer.hidden_size
                forget = p[H : 2 * H]
                expected = 1.5 if name.startswith("bias_ih") else 0.0
                assert torch.equal(forget, torch.full_like(forget, expected)), name
                others = torch.cat([p[:H], p[2 * H :]])
                assert others.abs().max() <= 0.05
    # every other parameter is drawn from U(-r, r) and is not left at torch's init
    for name, p in model.named_parameters():
        if "bias" not in name:
            assert p.abs().max() <= 0.05, name
            assert p.abs().max() > 0.01, name


@pytest.mark.parametrize("task", MODELS)
def test_recurrent_init_comes_last_and_keeps_forget_bias(task):
    cfg = dataclasses.replace(
        SMALL, init_range=0.1, forget_bias=1.0, recurrent_init="identity", recurrent_gain=0.9
    )
    model = MODELS[task](cfg)
    for layer in lstm_layers(model):
        H = layer.hidden_size
        for name, weight in layer.named_parameters():
            if name.startswith("weight_hh"):
                for block in weight.split(H):
                    assert torch.equal(block, 0.9 * torch.eye(H)), name
            if name.startswith("bias_ih"):
                assert torch.equal(weight[H : 2 * H], torch.ones(H))


def test_without_init_range_layers_keep_torch_init_and_default_recurrent_init_changes_nothing():
    torch.manual_seed(3)
    model = LongRangeModel(dataclasses.replace(SMALL, cell="rnn", init_range=None))
    torch.manual_seed(3)
    reference = RNN(2, 8, num_layers=2, batch_first=True)
    rnn = next(m for m in model.modules() if isinstance(m, RNN))
    for (name, p), (_, q) in zip(rnn.named_parameters(), reference.named_parameters(), strict=True):
        assert torch.equal(p, q), name


def test_orthogonal_recurrent_init_has_the_gain_as_spectral_radius():
    cfg = dataclasses.replace(SMALL, cell="gru", recurrent_init="orthogonal", recurrent_gain=1.3)
    model = MODELS["lm"](cfg)
    layer = model.rnn
    for name, weight in layer.named_parameters():
        if name.startswith("weight_hh"):
            for block in weight.split(layer.hidden_size):
                singular = torch.linalg.svdvals(block)
                assert torch.allclose(singular, torch.full_like(singular, 1.3), atol=1e-5)


@pytest.mark.parametrize("task", MODELS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_chrono_spreads_the_memory_timescales_over_one_to_t_max(task, cell):
    """Tallec & Ollivier 2018: b_f = -b_i = log u (LSTM), b_z = log u (GRU), u ~ U(1, T_max - 1);
    with no input a unit keeps its memory for 1 / (1 - sigmoid(b)) = 1 + u steps."""
    t_max = 200
    torch.manual_seed(0)
    cfg = dataclasses.replace(SMALL, cell=cell, init_range=0.1, recurrent_init="chrono",
                              chrono_t_max=t_max)  # fmt: skip
    layers = [m for m in MODELS[task](cfg).modules() if isinstance(m, torch.nn.RNNBase)]
    assert layers
    largest = 0.0
    for layer in layers:
        H = layer.hidden_size
        for row in layer.cell_weights():
            for w in row:
                keep = w.bias_ih[H : 2 * H]
                assert torch.equal(w.bias_hh[H : 2 * H], torch.zeros(H))
                timescale = 1 / (1 - torch.sigmoid(keep))  # = 1 + u
                assert timescale.min() >= 2 - 1e-4 and timescale.max() <= t_max + 1e-2
                if cell == "lstm":
                    assert torch.equal(w.bias_ih[:H], -keep)
                    assert torch.equal(w.bias_hh[:H], torch.zeros(H))
                    assert w.bias_ih[2 * H :].abs().max() <= 0.1  # g and o keep init_range
                else:
                    assert w.bias_ih[:H].abs().max() <= 0.1  # r and n keep init_range
                largest = max(largest, float(keep.max()))
    assert largest > 2.0  # spread over [0, log 199], not bunched near 0 (P(fail) < 1e-12)


@pytest.mark.parametrize(
    "options, fragment",
    [
        (dict(cell="lstm", forget_bias=1.0, chrono_t_max=50), "drop model.forget_bias"),
        (dict(cell="rnn", chrono_t_max=50), "model.cell rnn has no gates"),
        (dict(cell="gru"), "needs model.chrono_t_max"),
    ],
)
def test_chrono_misconfigurations_are_one_line_errors(options, fragment):
    from rnnkit.errors import UserError

    cfg = dataclasses.replace(SMALL, recurrent_init="chrono", **options)
    with pytest.raises(UserError, match=fragment):
        MODELS["lm"](cfg)
    with pytest.raises(UserError, match="chrono only"):
        MODELS["lm"](dataclasses.replace(SMALL, chrono_t_max=50))


PARALLEL_SCAN_RUNS = {
    "lm": ["task=lm", "data.tokenizer=char", "data.bptt=8", "data.batch_size=4"],
    "translate": ["task=translate", "data.synthetic=reverse", "model.bidirectional=true",
                  "data.batch_size=100"],
    "classify": ["task=classify", "model.pooling=attention", "model.bidirectional=true"],
    "tag": ["task=tag", "model.char_features=true"],
    "copy": ["task=copy", "data.sequence_length=10", "data.train_size=200",
             "data.valid_size=50", "data.test_size=50"],
}  # fmt: skip


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_every_task_trains_and_decodes_with_the_parallel_scan_cells(cell, tmp_path):
    """model.cell: mingru | minlstm in every task: training runs the scan, decoding (greedy,
    beam) the step form; the export refuses them in one line (no ONNX form yet)."""
    import rnnkit
    from rnnkit.errors import UserError
    from rnnkit.export.onnx_export import export_onnx
    from rnnkit.nn import MinGRU, MinLSTM

    (tmp_path / "lm.txt").write_text("hello world\n" * 100)
    (tmp_path / "classify.txt").write_text("".join(f"{i % 2}\tw{i % 5} y\n" for i in range(40)))
    (tmp_path / "tag.txt").write_text("".join(f"w{i % 4}\tT{i % 2}\n\n" for i in range(30)))
    small = ["model.embedding_size=8", "model.hidden_size=8", "model.num_layers=2",
             "train.epochs=1", "train.optimizer=adam", "train.progress=false"]  # fmt: skip
    for task, options in PARALLEL_SCAN_RUNS.items():
        data = (
            [f"data.train={tmp_path / f'{task}.txt'}"]
            if (tmp_path / f"{task}.txt").exists()
            else []
        )
        run_dir = tmp_path / task
        cfg = rnnkit.load_config(None, [f"run_dir={run_dir}", f"model.cell={cell}", *small,
                                        *options, *data])  # fmt: skip
        rnnkit.train(cfg)
        run = rnnkit.load(run_dir)
        layer = run.engine.model.rnn if task != "translate" else run.engine.model.decoder.rnn
        assert isinstance(layer, MinGRU if cell == "mingru" else MinLSTM)
        if task == "lm":
            assert len(run.generate("he", max_new_tokens=5, temperature=0)[0].completion) == 5
            assert run.generate("he", max_new_tokens=5, beam=2)[0].text.startswith("he")
        elif task == "translate":
            assert len(run.translate(["a b c"], beam=2, n_best=2)[0].hypotheses) == 2
        elif task in ("classify", "tag"):
            assert len(run.predict(["w1 w2"])) == 1
        else:
            assert 0 <= run.evaluate("test")["accuracy"] <= 1
    with pytest.raises(UserError, match="no ONNX export yet"):
        export_onnx(rnnkit.load(tmp_path / "lm"), tmp_path / "export")
