"""rnnkit.data.tokenizers: vocabulary order, round trips, save/load, PTB counts."""

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from rnnkit.data.tokenizers import (
    BOS,
    EOS,
    PAD,
    UNK,
    CharTokenizer,
    SubwordTokenizer,
    Vocabulary,
    WordTokenizer,
    build_tokenizer,
    load_tokenizer,
)
from rnnkit.errors import UserError
from rnnkit.textio import read_text

PTB_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptb" / "ptb.train.txt"

TEXT = """the cat sat on the mat
the dog sat on the log

a cat and a dog met on a mat by the log
dogs and cats are not the same but they sit on mats and logs
"""
SUBWORD_TEXT = TEXT * 3 + "\n".join(
    f"{a} {b} {c} quickly, while {b} jumped over {a}s!"
    for a in ("fox", "hare", "owl", "bear")
    for b in ("river", "forest", "meadow")
    for c in ("ran", "swam", "flew")
)


@pytest.fixture(scope="module")
def subword() -> SubwordTokenizer:
    return build_tokenizer("subword", SUBWORD_TEXT, vocab_size=50)


def test_vocabulary_order_specials_then_count_then_alphabet():
    counts = Counter({"b": 3, "a": 3, "c": 5, "d": 1, UNK: 7})
    assert Vocabulary.build(counts, [PAD, UNK]).itos == [PAD, UNK, "c", "a", "b", "d"]
    assert Vocabulary.build(counts, [PAD, UNK], min_freq=2).itos == [PAD, UNK, "c", "a", "b"]
    assert Vocabulary.build(counts, [PAD, UNK], max_size=4).itos == [PAD, UNK, "c", "a"]
    with pytest.raises(UserError, match="max_size 2"):
        Vocabulary.build(counts, [PAD, UNK], max_size=2)


def test_vocabulary_lookup_and_json_round_trip():
    vocab = Vocabulary.build(Counter("abca"), [PAD, UNK, EOS, BOS])
    assert (vocab.pad_index, vocab.unk_index, vocab.eos_index, vocab.bos_index) == (0, 1, 2, 3)
    assert len(vocab) == 7 and "a" in vocab and "z" not in vocab
    assert vocab.index("a") == 4 and vocab.index("z") == vocab.unk_index
    assert Vocabulary.from_json(json.loads(json.dumps(vocab.to_json()))).itos == vocab.itos
    no_unk = Vocabulary([PAD, "a"])
    assert no_unk.unk_index is None and no_unk.indices(["a"]) == [1]
    with pytest.raises(UserError, match="'z'"):
        no_unk.index("z")
    for itos in ([UNK, PAD], [PAD, "a", "a"]):
        with pytest.raises(ValueError):
            Vocabulary(itos)


def test_char_round_trip_includes_newlines():
    tok = build_tokenizer("char", TEXT)
    assert isinstance(tok, CharTokenizer) and tok.vocab.itos[:2] == [PAD, UNK]
    ids = tok.encode_corpus(TEXT)
    assert len(ids) == len(TEXT) and ids.count(tok.vocab.index("\n")) == TEXT.count("\n")
    assert tok.decode(ids) == TEXT
    assert tok.encode("tz") == [tok.vocab.index("t"), tok.vocab.unk_index]


def test_char_max_size_keeps_the_most_frequent():
    tok = build_tokenizer("char", "aaab bc", max_size=4)
    assert tok.vocab.itos == [PAD, UNK, "a", "b"]


def test_word_round_trip_normalises_spaces_and_closes_lines_with_eos():
    tok = build_tokenizer("word", TEXT)
    assert isinstance(tok, WordTokenizer) and tok.vocab.itos[:4] == [PAD, UNK, EOS, BOS]
    messy = "  the   cat\tsat \n\non the mat\n"
    ids = tok.encode_corpus(messy)
    eos = tok.vocab.eos_index
    assert ids == tok.encode("the cat sat") + [eos, eos] + tok.encode("on the mat") + [eos]
    assert tok.decode(ids) == "the cat sat\n\non the mat\n"
    assert (
        tok.decode([tok.vocab.bos_index] + tok.encode("the cat") + [tok.vocab.pad_index])
        == "the cat"
    )
    assert tok.encode("the zebra") == [tok.vocab.index("the"), tok.vocab.unk_index]


def test_word_literal_unk_maps_to_the_special_and_is_counted_once():
    tok = build_tokenizer("word", "a <unk> <unk> <unk> b a\n<unk> c\n")
    assert tok.vocab.itos == [PAD, UNK, EOS, BOS, "a", "b", "c"]
    assert tok.encode("<unk> a") == [tok.vocab.unk_index, 4]


def test_word_min_freq_and_lowercase():
    tok = build_tokenizer("word", "The the THE cat Cat dog", min_freq=2, lowercase=True)
    assert tok.vocab.itos[4:] == ["the", "cat"]
    assert tok.encode("THE CAT Dog") == [4, 5, tok.vocab.unk_index]


def test_subword_ids_are_the_vocabulary_indices(subword):
    assert len(subword.vocab) == 50
    assert subword.vocab.itos[:4] == [PAD, UNK, BOS, EOS]
    for piece, i in subword.vocab.stoi.items():
        assert subword.processor.piece_to_id(piece) == i
    sentence = "the fox swam over the river"
    pieces = subword.processor.encode(sentence, out_type=str)
    assert [subword.vocab.itos[i] for i in subword.encode(sentence)] == pieces


def test_subword_round_trip_and_corpus_stream(subword):
    text = "the cat sat on the mat\n\nthe owl flew over the forest\n"
    ids = subword.encode_corpus(text)
    assert ids.count(subword.vocab.eos_index) == 3 and ids[-1] == subword.vocab.eos_index
    assert subword.decode(ids) == text


def test_subword_training_is_deterministic(subword):
    assert build_tokenizer("subword", SUBWORD_TEXT, vocab_size=50).model == subword.model
    bpe = build_tokenizer("subword", SUBWORD_TEXT, vocab_size=50, model_type="bpe")
    assert (
        bpe.vocab.itos[:4] == [PAD, UNK, BOS, EOS]
        and bpe.decode(bpe.encode("the dog")) == "the dog"
    )


def test_subword_vocab_size_too_large_for_the_text():
    with pytest.raises(UserError, match=r"vocab_size 5000.*<= \d+") as info:
        build_tokenizer("subword", TEXT, vocab_size=5000)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="model_type"):
        build_tokenizer("subword", TEXT, model_type="wordpiece")


@pytest.mark.parametrize("kind", ["char", "word", "subword"])
def test_save_load_round_trip(tmp_path, kind):
    tok = build_tokenizer(kind, SUBWORD_TEXT, lowercase=True, vocab_size=50)
    tok.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert type(loaded) is type(tok) and loaded.vocab.itos == tok.vocab.itos
    sample = "The cat sat on the log\nthe fox\n"
    assert loaded.encode_corpus(sample) == tok.encode_corpus(sample)
    assert not list(tmp_path.glob("*.tmp"))


def test_load_errors_name_the_file(tmp_path, subword):
    with pytest.raises(UserError, match="tokenizer.json: no such file"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"kind": "word",\n "options": }')
    with pytest.raises(UserError, match="tokenizer.json:2: malformed JSON"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text(
        '{"kind": "morse", "options": {}, "vocabulary": {"itos": ["<pad>"]}}'
    )
    with pytest.raises(UserError, match="unknown tokenizer kind 'morse'"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text(
        '{"kind": "word", "options": {"stem": true}, "vocabulary": {"itos": ["<pad>"]}}'
    )
    with pytest.raises(UserError, match="tokenizer.json: bad options"):
        load_tokenizer(tmp_path)
    subword.save(tmp_path)
    (tmp_path / "tokenizer.model").unlink()
    with pytest.raises(UserError, match="tokenizer.model: no such file"):
        load_tokenizer(tmp_path)


def test_unknown_kind():
    with pytest.raises(UserError, match="char, word, subword"):
        build_tokenizer("bytes", TEXT)


@pytest.mark.skipif(not PTB_TRAIN.exists(), reason="PTB not in ../shared/data")
def test_ptb_word_vocabulary_has_the_standard_10000_types():
    text = read_text(PTB_TRAIN)
    tok = build_tokenizer("word", text)
    assert len([t for t in tok.vocab.itos if t not in (PAD, BOS)]) == 10_000
    assert len(tok.vocab) == 10_002
    ids = tok.encode_corpus(text)
    assert len(ids) == 929_589 and ids.count(tok.vocab.eos_index) == 42_068


def test_word_normalize_nfkc_makes_equivalent_spellings_one_word(tmp_path):
    decomposed, ligature = "cafe\u0301", "\ufb01ne"  # e + combining acute; the "fi" ligature
    tok = build_tokenizer("word", f"café {decomposed} fine {ligature}", normalize=True)
    assert tok.encode(decomposed) == tok.encode("café") and tok.encode(ligature) == tok.encode(
        "fine"
    )
    assert len(tok.vocab) == 4 + 2
    plain = build_tokenizer("word", f"café {decomposed}")
    assert plain.encode(decomposed) != plain.encode("café")
    tok.save(tmp_path)
    assert load_tokenizer(tmp_path).encode(decomposed) == tok.encode("café")


@pytest.mark.parametrize("kind", ["char", "word", "subword"])
def test_text_splits_where_decode_splits_after_says(kind):
    """decode(a + [t] + b) == decode(a + [t]) + decode(b) wherever decode_splits_after(t): what
    generate_stream relies on to decode only the text after the last split."""
    tok = build_tokenizer(kind, SUBWORD_TEXT, vocab_size=50)
    rng = random.Random(0)
    for _ in range(200):
        ids = [rng.randrange(len(tok.vocab)) for _ in range(rng.randint(2, 30))]
        for k, token in enumerate(ids):
            if tok.decode_splits_after(token):
                assert tok.decode(ids) == tok.decode(ids[: k + 1]) + tok.decode(ids[k + 1 :])
