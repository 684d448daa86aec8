"""Transfer from a language model (rnnkit/transfer.py): the transferred weights are the LM's,
row by row and layer by layer; what does not fit is a one-line error; dev and test text never
enter pretraining; the encoder can be frozen, trained at lower rates, or unfrozen gradually;
and on a synthetic task a pretrained encoder beats the same classifier from scratch."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.errors import UserError
from rnnkit.runs.rundir import RunDir, load_tensors
from rnnkit.tasks import registry
from rnnkit.tasks.registry import load_config
from rnnkit.training.transfer import transfer_from_lms
from rnnkit.workflows.train import open_language_model

SMALL = ["model.embedding_size=8", "model.hidden_size=12", "train.progress=false"]


def topic_sentences(rng: random.Random, n: int, words: int = 30) -> list[tuple[int, str]]:
    """Sentences of 6-10 words, each from one of two topics' vocabularies (a0.. or b0..):
    (topic, text)."""
    out = []
    for _ in range(n):
        topic = rng.randrange(2)
        letter = "ab"[topic]
        text = " ".join(f"{letter}{rng.randrange(words)}" for _ in range(rng.randint(6, 10)))
        out.append((topic, text))
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Unlabelled text (the LMs' train and valid), a small labelled train set, and labelled
    valid and test sets, all of the same two topics."""
    tmp = tmp_path_factory.mktemp("transfer")
    rng = random.Random(0)
    (tmp / "unlabelled.txt").write_text("".join(t + "\n" for _, t in topic_sentences(rng, 3000)))
    (tmp / "unlabelled-valid.txt").write_text(
        "".join(t + "\n" for _, t in topic_sentences(rng, 200))
    )
    for split, n in (("train", 24), ("valid", 200), ("test", 400)):
        (tmp / f"{split}.txt").write_text(
            "".join(f"{y}\t{t}\n" for y, t in topic_sentences(rng, n))
        )
    return tmp


def train_lm(corpus: Path, name: str, *overrides: str) -> Path:
    cfg = load_config(None, [
        "task=lm", f"run_dir={corpus / name}", f"data.train={corpus / 'unlabelled.txt'}",
        f"data.valid={corpus / 'unlabelled-valid.txt'}", "data.mode=sentence",
        "data.batch_size=32", "model.num_layers=1", "train.optimizer=adam", "train.lr=0.01",
        "train.epochs=2", *SMALL, *overrides,
    ])  # fmt: skip
    rnnkit.train(cfg)
    return corpus / name


@pytest.fixture(scope="module")
def lms(corpus) -> dict[str, Path]:
    return {
        "forward": train_lm(corpus, "lm-forward"),
        "backward": train_lm(corpus, "lm-backward", "data.reverse_text=true"),
        "two layers": train_lm(corpus, "lm-two-layers", "model.num_layers=2", "train.epochs=1"),
    }


def classifier_cfg(corpus: Path, run: str, *overrides: str):
    return load_config(None, [
        "task=classify", f"run_dir={corpus / run}", f"data.train={corpus / 'train.txt'}",
        f"data.valid={corpus / 'valid.txt'}", f"data.test={corpus / 'test.txt'}",
        "data.batch_size=4", "model.num_layers=1", "train.optimizer=adam", "train.lr=0.01",
        *SMALL, *overrides,
    ])  # fmt: skip


def built(cfg):
    """A fresh model of ``cfg``, filled from the LMs it names; -> (model, vocabularies, lines)."""
    kind = registry.get(cfg.task).trainer_side()
    vocabularies = kind.build_vocabularies(cfg, kind.read_data(cfg))
    torch.manual_seed(0)
    model = kind.build_model(cfg, vocabularies)
    lines: list[str] = []
    targets = kind.transfer_targets(cfg, model, vocabularies)
    transfer_from_lms(cfg, targets, open_language_model, lines.append)
    return model, vocabularies, lines


def test_transferred_weights_are_the_lms_row_by_row(corpus, lms):
    cfg = classifier_cfg(
        corpus, "unused", "model.bidirectional=true", f"model.init_from={lms['forward']}",
        f"model.init_from_backward={lms['backward']}",
    )  # fmt: skip
    model, vocabularies, lines = built(cfg)
    forward, backward = (
        load_tensors(lms[d] / "model.safetensors") for d in ("forward", "backward")
    )
    lm_vocab = registry.get("lm").run_type.load_vocabularies(lms["forward"]).vocab
    ours = vocabularies.text.vocab
    matched = [t for t in ours.itos if t in lm_vocab.stoi]
    assert len(matched) > 50
    for token in matched:
        assert torch.equal(
            model.embedding.weight[ours.stoi[token]],
            forward["embedding.weight"][lm_vocab.stoi[token]],
        )
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        assert torch.equal(getattr(model.rnn, name), forward[f"rnn.{name}"])
        assert torch.equal(getattr(model.rnn, f"{name}_reverse"), backward[f"rnn.{name}"])
    assert len(lines) == 2 and "matched by token" in lines[0] and "(backward)" in lines[1]
    # the head is not touched: the same as a model built without transfer
    torch.manual_seed(0)
    plain = registry.get("classify").trainer_side().build_model(cfg, vocabularies)
    assert torch.equal(model.output.weight, plain.output.weight)


def test_unmatched_rows_and_extra_input_columns_keep_their_initialisation(corpus, lms, tmp_path):
    tagged = tmp_path / "tag.txt"
    tagged.write_text("a1\tA\nzz9\tZ\nb2\tB\n\n" * 10)
    cfg = load_config(None, [
        "task=tag", f"data.train={tagged}", "model.num_layers=1", "model.char_features=true",
        f"model.init_from={lms['forward']}", *SMALL,
    ])  # fmt: skip
    model, vocabularies, lines = built(cfg)
    torch.manual_seed(0)
    plain = registry.get("tag").trainer_side().build_model(cfg, vocabularies)
    forward = load_tensors(lms["forward"] / "model.safetensors")
    words = vocabularies.words.vocab
    assert torch.equal(
        model.embedding.weight[words.stoi["zz9"]], plain.embedding.weight[words.stoi["zz9"]]
    )
    assert not torch.equal(
        model.embedding.weight[words.stoi["a1"]], plain.embedding.weight[words.stoi["a1"]]
    )
    w_ih = model.rnn.weight_ih_l0  # (4H, E + 2C): the char columns have no counterpart
    assert torch.equal(w_ih[:, :8], forward["rnn.weight_ih_l0"])
    assert torch.equal(w_ih[:, 8:], plain.rnn.weight_ih_l0[:, 8:])
    assert "only the forward direction" not in " ".join(lines)  # the tagger is unidirectional


def test_translation_fills_encoder_and_decoder_input_feeding_columns_untouched(
    corpus, lms, tmp_path
):
    for side in ("de", "en"):
        (tmp_path / f"train.{side}").write_text("a1 a2 b3\nb4 a5\n" * 5)
    cfg = load_config(None, [
        "task=translate", f"data.train={tmp_path / 'train'}", "data.source_suffix=de",
        "data.target_suffix=en", "model.num_layers=1", "model.attention=dot",
        f"model.encoder_init_from={lms['forward']}", f"model.decoder_init_from={lms['forward']}",
        *SMALL,
    ])  # fmt: skip
    model, _, lines = built(cfg)
    forward = load_tensors(lms["forward"] / "model.safetensors")
    assert torch.equal(model.encoder.rnn.weight_hh_l0, forward["rnn.weight_hh_l0"])
    assert torch.equal(model.decoder.rnn.weight_ih_l0[:, :8], forward["rnn.weight_ih_l0"])
    torch.manual_seed(0)
    plain = registry.get("translate").trainer_side().build_model(cfg, _)
    assert torch.equal(model.decoder.rnn.weight_ih_l0[:, 8:], plain.decoder.rnn.weight_ih_l0[:, 8:])
    assert [line.split()[0] for line in lines] == [
        "model.encoder_init_from",
        "model.decoder_init_from",
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ("model.cell=gru", "model.cell lstm, the model here gru"),
        ("model.hidden_size=16", "a hidden size of 12, the model here 16"),
        ("model.embedding_size=6", "model.embedding_size 8"),
        (
            "model.bidirectional=true model.num_layers=2 model.init_from={two}",
            r"layer 1's weight_ih is \(48, 24\) here and \(48, 12\)",
        ),
        (
            "model.bidirectional=true model.init_from_backward={forward}",
            "reverse_text false; the backward direction needs true",
        ),
        ("model.init_from={backward}", "reverse_text true; the forward direction needs false"),
        ("model.init_from_backward={backward}", "the model's stack is not bidirectional"),
        ("model.init_from=/nowhere", "model.init_from: /nowhere is not a run directory"),
    ],
)
def test_what_does_not_fit_is_a_one_line_error(corpus, lms, overrides, message):
    paths = {"forward": lms["forward"], "backward": lms["backward"], "two": lms["two layers"]}
    resolved = [f"model.init_from={lms['forward']}", *overrides.format(**paths).split()]
    with pytest.raises(UserError, match=message) as error:
        built(classifier_cfg(corpus, "unused", *resolved))
    assert "\n" not in str(error.value)


def test_dev_and_test_text_never_enter_pretraining(corpus, tmp_path):
    copy = tmp_path / "copy-of-test.txt"
    copy.write_bytes((corpus / "test.txt").read_bytes())
    for name, overrides, split in (
        ("lm-on-valid", [f"data.valid={corpus / 'valid.txt'}"], "valid"),
        ("lm-on-test", [f"data.valid={corpus / 'test.txt'}"], "test"),
        ("lm-on-a-copy", [f"data.train={copy}", "data.format=label_text"], "test"),
        (
            "lm-on-extra-valid",
            [f"data.extra_text=[{corpus / 'train.txt'}, {corpus / 'valid.txt'}]"],
            "valid",
        ),
    ):
        lm = train_lm(corpus, name, *overrides, "train.epochs=1")
        cfg = classifier_cfg(corpus, "unused", f"model.init_from={lm}")
        with pytest.raises(UserError, match=f"which is this run's data.{split}: dev and test"):
            built(cfg)


def test_transfer_options_without_a_transfer_are_refused(corpus):
    for option in ("model.freeze_encoder=true", "train.discriminative_lr=2.6",
                   "train.gradual_unfreezing=true"):  # fmt: skip
        cfg = classifier_cfg(corpus, "scratch-refused", option, "train.epochs=1")
        with pytest.raises(UserError, match="is for a model transferred from an LM"):
            rnnkit.train(cfg)


def train_classifier(corpus: Path, run: str, *overrides: str) -> dict:
    return rnnkit.train(classifier_cfg(corpus, run, *overrides))


def last_weights(run: Path) -> dict[str, torch.Tensor]:
    """The weights at the end of training (model.safetensors holds the best epoch's)."""
    return RunDir.open(run).load_checkpoint()[0]


def test_frozen_encoder_stays_the_lms_and_gradual_unfreezing_goes_top_down(corpus, lms):
    forward = load_tensors(lms["forward"] / "model.safetensors")
    train_classifier(corpus, "frozen", f"model.init_from={lms['forward']}",
                     "model.freeze_encoder=true", "train.epochs=2")  # fmt: skip
    frozen = last_weights(corpus / "frozen")
    assert torch.equal(frozen["rnn.weight_hh_l0"], forward["rnn.weight_hh_l0"])
    lm_vocab = registry.get("lm").run_type.load_vocabularies(lms["forward"]).vocab
    ours = registry.get("classify").run_type.load_vocabularies(corpus / "frozen").text.vocab
    word = next(t for t in ours.itos if t in lm_vocab.stoi and not t.startswith("<"))
    row, lm_row = ours.stoi[word], lm_vocab.stoi[word]
    assert torch.equal(frozen["embedding.weight"][row], forward["embedding.weight"][lm_row])
    # gradual unfreezing, 2 epochs: epoch 1 the head alone, epoch 2 also the recurrent layer;
    # the embedding (the lowest group) unfreezes only in epoch 3, so it is still the LM's.
    two_layers = [
        f"model.init_from={lms['forward']}",
        "train.gradual_unfreezing=true",
        "train.epochs=2",
    ]
    train_classifier(corpus, "gradual", *two_layers)
    gradual = last_weights(corpus / "gradual")
    assert not torch.equal(gradual["rnn.weight_hh_l0"], forward["rnn.weight_hh_l0"])
    assert torch.equal(gradual["embedding.weight"][row], forward["embedding.weight"][lm_row])
    # after one epoch, only the head has moved
    train_classifier(corpus, "gradual-1", *two_layers[:2], "train.epochs=1")
    one = last_weights(corpus / "gradual-1")
    assert torch.equal(one["rnn.weight_hh_l0"], forward["rnn.weight_hh_l0"])


def test_discriminative_rates_scale_each_encoder_depth(corpus, lms):
    from rnnkit.training.transfer import parameter_groups

    cfg = classifier_cfg(corpus, "unused", f"model.init_from={lms['forward']}",
                         "train.discriminative_lr=2.0", "model.num_layers=1")  # fmt: skip
    model, vocabularies, _ = built(cfg)
    groups = parameter_groups(
        model,
        registry.get("classify").trainer_side().transfer_targets(cfg, model, vocabularies),
        cfg,
    )
    assert [g["lr_scale"] for g in groups] == [1.0, 0.5, 0.25]  # head, layer 0, embedding
    assert groups[2]["params"] == [model.embedding.weight]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.rnn.parameters()}
    assert model.output.weight in groups[0]["params"]


@pytest.mark.toy
def test_pretraining_helps_on_a_synthetic_task(corpus, lms, toy_seed, toy_score):
    """24 labelled sentences, 2 epochs: the topic of a sentence is what the LM's state learnt to
    carry from 3,000 unlabelled ones; from scratch the classifier has seen each word about
    twice. Measured: 1.0 against 0.465 (chance), mean of seeds 1-3, on every CPU setting."""
    first = toy_seed(1)
    accuracy = {}
    for name, extra in (("scratch", []), ("pretrained", [f"model.init_from={lms['forward']}"])):
        scores = [
            train_classifier(corpus, f"{name}-{seed}", f"seed={seed}", "train.epochs=2", *extra)[
                "test"
            ]["accuracy"]
            for seed in (first, first + 1, first + 2)
        ]
        accuracy[name] = sum(scores) / len(scores)
    gain = accuracy["pretrained"] - accuracy["scratch"]
    toy_score("transfer: test accuracy, pretrained minus scratch", gain, 0.15, True, 0.2)
    assert accuracy["pretrained"] >= 0.9 and gain >= 0.15, accuracy


def test_an_lm_pretrains_on_the_text_of_a_labelled_file(tmp_path):
    from rnnkit.tasks.lm.training import read_texts

    (tmp_path / "train.txt").write_text("1\ta gripping film\n0 a dull one\n")
    rows = ("1\tThe\tthe\tDET\tDT", "2\tdog\tdog\tNOUN\tNN")
    conllu = "# sent_id = 1\n" + "".join(r + "\t_" * 5 + "\n" for r in rows) + "\n"
    (tmp_path / "train.conllu").write_text(conllu * 2)
    labelled = [f"data.valid={tmp_path / 'train.txt'}", "data.format=label_text"]
    for train, extra, expected in (
        ("train.txt", labelled, "a gripping film\na dull one"),
        ("train.conllu", [f"data.valid={tmp_path / 'train.conllu'}"], "The dog\nThe dog"),
        ("train.txt", [f"data.valid={tmp_path / 'train.txt'}"], "1\ta gripping film\n0 a dull one"),
    ):
        cfg = load_config(None, ["task=lm", f"data.train={tmp_path / train}", *extra])
        assert read_texts(cfg)["train"] == expected
    char = load_config(
        None, ["task=lm", "data.tokenizer=char", f"data.train={tmp_path / 'train.txt'}", *labelled]
    )
    assert read_texts(char)["train"] == "a gripping film\na dull one\n"


def test_extra_text_joins_train_after_the_validation_split(tmp_path):
    from rnnkit.tasks.lm.training import read_texts

    (tmp_path / "own.txt").write_text("".join(f"1 own {i}\n" for i in range(10)))
    (tmp_path / "more.txt").write_text("more text\nand more\n")
    rows = ("1\tThe\tthe\tDET\tDT", "2\tdog\tdog\tNOUN\tNN")
    conllu = "# sent_id = 1\n" + "".join(r + "\t_" * 5 + "\n" for r in rows) + "\n"
    (tmp_path / "tagged.conllu").write_text(conllu)
    extra = f"data.extra_text=[{tmp_path / 'more.txt'}, {tmp_path / 'tagged.conllu'}]"
    own = [f"data.train={tmp_path / 'own.txt'}", "data.format=label_text"]
    texts = read_texts(load_config(None, ["task=lm", *own, extra]))
    assert texts["train"].split("\n") == [f"own {i}" for i in range(9)] + [
        "more text", "and more", "The dog"
    ]  # fmt: skip
    assert texts["valid"] == "own 9"  # the extra text never validates
    for bad, message in (
        ("data.extra_text=more.txt", "key 'data.extra_text': expected list or null"),
        ("data.extra_text=[1]", "key 'data.extra_text', item 1: expected str"),
        (f"data.extra_text=[{tmp_path / 'missing.txt'}]", "missing.txt"),
    ):
        with pytest.raises(UserError, match=message):
            read_texts(load_config(None, ["task=lm", *own, bad]))
