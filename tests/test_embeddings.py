"""rnnkit.data.embeddings: GloVe and word2vec text files -> embedding rows, file:line errors."""

import pytest
import torch

from rnnkit.data.embeddings import load_vectors
from rnnkit.data.tokenizers import EOS, PAD, UNK, Vocabulary
from rnnkit.errors import UserError

VOCAB = Vocabulary([PAD, UNK, EOS, "the", "cat", "Paris", "zebra"])
GLOVE = "the 1 2 3\nunseen 9 9 9\ncat -1 0.5 2e-1\nparis 4 5 6\nthe 7 7 7\n"


def _write(tmp_path, text: str, name: str = "vectors.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("header", ["", "5 3\n"], ids=["glove", "word2vec"])
def test_found_rows_hold_their_vectors(tmp_path, header):
    torch.manual_seed(0)
    weights, found = load_vectors(_write(tmp_path, header + GLOVE), VOCAB, dim=3)
    assert weights.shape == (7, 3) and weights.dtype == torch.float32 and found == 3
    assert weights[3].tolist() == [1, 2, 3]  # the first "the" wins
    assert torch.allclose(weights[4], torch.tensor([-1, 0.5, 0.2]))
    assert weights[5].tolist() == [4, 5, 6]  # "Paris" falls back on "paris"


def test_missing_rows_are_random_and_pad_is_zero(tmp_path):
    torch.manual_seed(0)
    weights, _ = load_vectors(_write(tmp_path, GLOVE), VOCAB)
    assert weights[0].eq(0).all()
    missing = weights[[1, 2, 6]]
    assert missing.ne(0).all() and not torch.equal(missing[0], missing[1])
    torch.manual_seed(0)
    assert torch.equal(
        load_vectors(_write(tmp_path, GLOVE), VOCAB)[0], weights
    )  # reproducible under a seed


def test_exact_match_beats_lowercase_fallback(tmp_path):
    weights, found = load_vectors(_write(tmp_path, "paris 1 1\nParis 2 2\n"), VOCAB)
    assert found == 1 and weights[5].tolist() == [2, 2]


@pytest.mark.parametrize(
    "text, dim, message",
    [
        (
            "the 1 2\ncat 1 2 3\n",
            None,
            r"vectors\.txt:2: expected a word and 2 numbers, found 4 fields",
        ),
        ("the 1 2\ncat 1 x\n", None, r"vectors\.txt:2: not a finite number: 'x'"),
        ("the 1 2\ncat 1 nan\n", None, r"vectors\.txt:2: not a finite number: 'nan'"),
        ("the 1 2\n", 3, r"vectors\.txt:1: vectors of dimension 2, expected 3"),
        ("2 4\nthe 1 2 3 4\n", 3, r"vectors\.txt:1: vectors of dimension 4, expected 3"),
        ("dog 1 2\nbird 3 4\n", None, r"vectors\.txt: none of the 7 vocabulary words"),
        ("\n\n", None, r"vectors\.txt: no vectors"),
    ],
)
def test_errors_name_file_and_line(tmp_path, text, dim, message):
    with pytest.raises(UserError, match=message):
        load_vectors(_write(tmp_path, text), VOCAB, dim=dim)


def test_invalid_utf8_is_reported_with_its_line(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_bytes(b"the 1 2\ncat 3 4\nz\xe9bra 5 6\n")
    with pytest.raises(UserError, match=r"vectors\.txt:3: invalid UTF-8"):
        load_vectors(path, VOCAB)
