"""Sequence tagging: char features tag words never seen in training, a BIO task gets entity
scores, the run directory round trip, predict/evaluate through the CLI, one-line errors for a
bad CoNLL-U row and a tag count that disagrees with the tokens, and the UD English-EWT files."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.data.labelled import LabelVocabulary, read_conllu
from rnnkit.data.tokenizers import PAD, UNK, CharTokenizer, Vocabulary, WordTokenizer
from rnnkit.decoding.engine import TorchEngine
from rnnkit.runs.rundir import load_tensors
from rnnkit.tasks import registry
from rnnkit.tasks.registry import load_config
from rnnkit.tasks.tag import run as tag
from rnnkit.tasks.tag.model import SequenceTagger
from rnnkit.training.distributed import SINGLE_PROCESS
from rnnkit.workflows.train import train

UD_TEST = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "ud-en" / "en_ewt-ud-test.conllu"
)

ModelConfig = registry.section("model")


def test_collate_spells_each_distinct_word_once():
    words = WordTokenizer(Vocabulary.build(Counter(["the", "cat", "the"]), [PAD, UNK]))
    chars = CharTokenizer.train("thecat")
    tokenizers = (words, chars, LabelVocabulary(["D", "N"]))
    batch = [
        tag.EncodedSentence(tokenizers, ["the", "cat", "the"], ["D", "N", "X"]),
        tag.EncodedSentence(tokenizers, ["cat"], ["N"]),
    ]
    ids, lengths, tags, spelled = tag.collate(batch, pad=0)
    assert lengths.tolist() == [3, 1] and ids[1].tolist() == [words.vocab.index("cat"), 0, 0]
    assert tags.tolist() == [
        [0, 1, tag.IGNORE],
        [1, tag.IGNORE, tag.IGNORE],
    ]  # "X": unknown, no loss
    assert spelled.chars.shape[0] == 3  # the padding row, "the", "cat"

    def word(b: int, t: int) -> str:
        row = spelled.index[b, t]
        return chars.decode(spelled.chars[row, : spelled.lengths[row]].tolist())

    assert [word(0, t) for t in range(3)] == ["the", "cat", "the"] and word(1, 0) == "cat"
    assert spelled.index[1, 1:].tolist() == [0, 0]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padding_does_not_change_a_sentences_tags(cell):
    torch.manual_seed(0)
    cfg = ModelConfig(
        cell=cell,
        embedding_size=6,
        hidden_size=5,
        num_layers=2,
        bidirectional=True,
        char_features=True,
        char_embedding_size=3,
        char_hidden_size=4,
    )
    engine = TorchEngine(SequenceTagger(10, 4, cfg, num_chars=8), torch.device("cpu"))
    words, lengths, _, chars = tag.collate(
        [_encoded([4, 5, 6], [[2, 3], [4], [5, 6, 7]]), _encoded([7], [[3, 3, 3, 3]])], pad=0
    )
    logits = engine.call("forward", words, lengths, chars)
    assert logits.shape == (2, 3, 4)
    alone = tag.collate([_encoded([7], [[3, 3, 3, 3]])], pad=0)
    assert torch.allclose(
        logits[1, :1], engine.call("forward", alone[0], alone[1], alone[3])[0], atol=1e-6
    )


def _encoded(words: list[int], chars: list[list[int]]) -> tag.EncodedSentence:
    sentence = tag.EncodedSentence.__new__(tag.EncodedSentence)
    sentence.words, sentence.chars, sentence.tags = words, [tuple(c) for c in chars], None
    return sentence


def token_tag_file(sentences: list[list[tuple[str, str]]]) -> str:
    return "\n".join("".join(f"{token}\t{t}\n" for token, t in sentence) for sentence in sentences)


def parity_task(count: int, seed: int, low: int, high: int) -> str:
    """Numbers tagged with their parity; train on low..high, test on numbers never seen."""
    rng = random.Random(seed)
    return token_tag_file(
        [
            [
                (str(n), "even" if n % 2 == 0 else "odd")
                for n in (rng.randrange(low, high) for _ in range(rng.randint(1, 8)))
            ]
            for _ in range(count)
        ]
    )


def tag_config(tmp: Path, name: str, *overrides: str, seed: int = 1):
    return load_config(
        None,
        [
            "task=tag",
            f"seed={seed}",
            f"run_dir={tmp / name}",
            f"data.train={tmp / 'train.tsv'}",
            f"data.valid={tmp / 'valid.tsv'}",
            f"data.test={tmp / 'test.tsv'}",
            "data.batch_size=16",
            "data.eval_batch_size=100",
            "model.embedding_size=16",
            "model.hidden_size=32",
            "model.num_layers=1",
            "model.bidirectional=true",
            "model.char_embedding_size=8",
            "model.char_hidden_size=16",
            "model.init_range=null",
            "train.optimizer=adam",
            "train.lr=0.01",
            "train.progress=false",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def parity_seed(toy_seed) -> int:
    return toy_seed(1)


@pytest.fixture(scope="module")
def parity(tmp_path_factory, parity_seed) -> Path:
    tmp = tmp_path_factory.mktemp("parity")
    (tmp / "train.tsv").write_text(parity_task(1000, parity_seed, 0, 500))
    (tmp / "valid.tsv").write_text(parity_task(200, parity_seed + 1, 500, 1000))
    (tmp / "test.tsv").write_text(parity_task(200, parity_seed + 2, 500, 1000))
    return tmp


@pytest.fixture(scope="module")
def parity_run(parity, parity_seed) -> Path:
    cfg = tag_config(parity, "run", "model.char_features=true", "train.epochs=3", seed=parity_seed)
    train(cfg)
    return parity / "run"


def test_word_dropout_feeds_unk_in_place_of_words_but_keeps_their_spelling(parity):
    kind = registry.get("tag").trainer_side()
    batches = {}
    for alpha in ("0", "1000000000.0"):  # every word's alpha / (alpha + count) is ~1
        cfg = tag_config(parity, "wd", "model.char_features=true", f"model.word_dropout={alpha}")
        data = kind.read_data(cfg)
        vocabularies = kind.build_vocabularies(cfg, data)
        model = kind.build_model(cfg, vocabularies)
        task = kind.training_task(
            cfg, vocabularies, model, data, torch.device("cpu"), SINGLE_PROCESS
        )

        def seen(words, lengths, chars, alpha=alpha, model=model):
            batches[alpha] = (words, lengths, chars)
            return model(words, lengths, chars)

        task.batch_loss(seen, 1, 0)
    (words, lengths, chars), (dropped, _, dropped_chars) = batches["0"], batches["1000000000.0"]
    real = torch.arange(words.shape[1]) < lengths[:, None]  # (B, T): not padding
    assert (words[real] != vocabularies.words.vocab.unk_index).any()
    assert (dropped[real] == vocabularies.words.vocab.unk_index).all()
    assert torch.equal(dropped[~real], words[~real])  # padding stays padding
    assert all(
        torch.equal(a, b) for a, b in zip(chars, dropped_chars, strict=True)
    )  # the same spellings


@pytest.mark.toy
def test_char_features_tag_unseen_words_above_95_percent(
    parity, parity_run, parity_seed, toy_score
):
    accuracy = rnnkit.load(parity_run).evaluate()["accuracy"]
    toy_score("parity, char features: test accuracy", accuracy, 0.95)
    assert accuracy >= 0.95
    # without them every test word is <unk>: the tagger can only guess
    summary = train(tag_config(parity, "words-only", "train.epochs=2", seed=parity_seed))
    toy_score("parity, words only: test accuracy", summary["test"]["accuracy"], 0.7, higher=False)
    assert summary["test"]["accuracy"] < 0.7


@pytest.mark.toy
def test_a_loaded_run_tags_as_the_model_in_memory(parity_run):
    run = rnnkit.load(parity_run)
    kind = registry.get("tag").trainer_side()
    fresh = kind.build_vocabularies(run.cfg, kind.read_data(run.cfg))
    memory = kind.build_model(run.cfg, fresh).eval()
    memory.load_state_dict(load_tensors(parity_run / "model.safetensors"))
    sentences = [["803", "22", "7"], [], ["1000001"]]
    tags = [t.tags for t in run.predict(sentences)]
    assert tags == tag.predict(TorchEngine(memory, torch.device("cpu")), fresh, sentences)
    assert tags == [["odd", "even", "odd"], [], ["odd"]]


@pytest.mark.toy
def test_predict_cli_prints_token_tab_tag_and_a_blank_line_per_sentence(
    parity_run, tmp_path, capsys
):
    (tmp_path / "in.txt").write_text("803 22\n\n7\n")
    assert main(["predict", str(parity_run), "--input", str(tmp_path / "in.txt")]) == 0
    assert capsys.readouterr().out == "803\todd\n22\teven\n\n\n7\todd\n\n"


@pytest.mark.toy
def test_bio_tags_get_entity_scores(tmp_path, capsys, toy_seed, toy_score):
    """Runs of capitalised words are PER entities, runs of digits LOC: B- opens one, I- goes on."""

    def sentences(count: int, seed: int) -> str:
        rng = random.Random(seed)
        kinds = {"x": ("x", "y", "z", "w"), "PER": ("Ann", "Bob", "Cy"), "LOC": ("1", "2", "3")}
        result = []
        for _ in range(count):
            sentence, previous = [], "x"
            for _ in range(rng.randint(2, 10)):
                kind = rng.choice(list(kinds))
                t = "O" if kind == "x" else ("I-" if kind == previous else "B-") + kind
                sentence.append((rng.choice(kinds[kind]), t))
                previous = kind
            result.append(sentence)
        return token_tag_file(result)

    seed = toy_seed(1)
    for offset, (name, count) in enumerate((("train", 1000), ("valid", 100), ("test", 100))):
        (tmp_path / f"{name}.tsv").write_text(sentences(count, seed + offset))
    summary = train(tag_config(tmp_path, "run", "train.epochs=2", seed=seed))
    toy_score("BIO: test entity F1", summary["test"]["entity_f1"], 0.95)
    assert summary["test"]["entity_f1"] >= 0.95
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "--split", "valid"]) == 0
    out = capsys.readouterr().out.split()
    assert out[::2] == [
        "loss",
        "accuracy",
        "tokens",
        "sentences",
        "entity_precision",
        "entity_recall",
        "entity_f1",
    ]


@pytest.mark.toy
def test_malformed_tag_files_get_one_line_and_status_2(parity_run, tmp_path, capsys):
    (tmp_path / "bad.tsv").write_text("803\todd\n22\teven\todd\n")
    assert main(["evaluate", str(parity_run), "--data", str(tmp_path / "bad.tsv")]) == 2
    assert capsys.readouterr().err == (
        f"rnnkit: error: {tmp_path / 'bad.tsv'}:2: 2 tags for one token "
        "(expected 'token<TAB>tag')\n"
    )
    (tmp_path / "bad.conllu").write_text(
        "# text = a b\n1\ta\ta\tDET\tDT\t_\t2\tdet\t_\t_\n2 b b NOUN NN _ 0 root _ _\n"
    )
    config = tmp_path / "c.yaml"
    config.write_text(f"task: tag\ndata:\n  train: {tmp_path / 'bad.conllu'}\n")
    assert main(["train", str(config), "--run-dir", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == (
        f"rnnkit: error: {tmp_path / 'bad.conllu'}:3: expected 10 tab-separated "
        "CoNLL-U columns, found 1\n"
    )
    (tmp_path / "other.tsv").write_text("803\tNUM\n")
    assert main(["evaluate", str(parity_run), "--data", str(tmp_path / "other.tsv")]) == 2
    assert "none of its tags is one the run knows (even, odd, ...)" in capsys.readouterr().err


@pytest.mark.skipif(not UD_TEST.exists(), reason="UD English-EWT not in ../shared/data")
def test_ud_english_ewt_test_file_reads_whole():
    sentences = read_conllu(UD_TEST)
    assert len(sentences) == 2077 and sum(len(s.tokens) for s in sentences) == 25094
    assert sentences[0].tokens[:3] == ["What", "if", "Google"] and sentences[0].tags[:3] == [
        "PRON",
        "SCONJ",
        "PROPN",
    ]
    assert {t for s in sentences for t in s.tags} >= {
        "NOUN",
        "VERB",
        "ADJ",
        "PUNCT",
        "PROPN",
        "X",
        "SYM",
    }
