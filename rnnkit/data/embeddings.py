"""Pretrained word vectors (word2vec, GloVe) as the initial rows of an embedding table.

Text formats only, one vector per line, numbers separated by single spaces::

    the 0.418 0.24968 -0.41242 ...      GloVe (Pennington et al. 2014)
    400000 50                           word2vec text (Mikolov et al. 2013): this optional
    the 0.418 0.24968 -0.41242 ...      first line gives count and dimension

Files run to gigabytes, so they are streamed and only the lines of vocabulary words parsed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.data.tokenizers import Vocabulary
from rnnkit.errors import UserError
from rnnkit.textio import iter_lines

_MISSING, _LOWERCASE, _EXACT = 0, 1, 2  # how a vocabulary row got its vector


def load_vectors(path: str | Path, vocab: Vocabulary, dim: int | None = None) -> tuple[Tensor, int]:
    """Embedding weights (len(vocab), d) float32 and the number of vocabulary words found.

    A word's row is its vector in the file, else the vector of its lowercase form ("Paris" takes
    "paris" from an uncased GloVe); the first occurrence of a word wins. The other rows are drawn
    from N(0, s^2), s the standard deviation of all loaded numbers (torch's global generator, so
    a seeded run is reproducible); the ``<pad>`` row is zero.

    dim: the dimension expected (``model.embedding_size``), checked against the file.
    Raises UserError (file:line) on a line with the wrong number of fields, a number that is not
    finite, a dimension other than ``dim``, invalid UTF-8, or when no vocabulary word is found.
    """
    path = Path(path)
    lowercase_of: dict[str, list[int]] = defaultdict(list)  # "paris" -> rows of "Paris", "PARIS"
    for i, token in enumerate(vocab.itos):
        if token.lower() != token:
            lowercase_of[token.lower()].append(i)
    source = [_MISSING] * len(vocab)
    weights: Tensor | None = None
    for number, line in iter_lines(path):
        fields = line.rstrip().split(" ")
        if fields == [""]:
            continue
        if weights is None:
            is_header = number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields)
            d = int(fields[1]) if is_header else len(fields) - 1
            if d < 1 or (dim is not None and d != dim):
                raise UserError(
                    f"{path}:{number}: vectors of dimension {d}, expected {dim or 'at least 1'}"
                )
            weights = torch.zeros(len(vocab), d)
            if is_header:
                continue
        if len(fields) != d + 1:
            raise UserError(
                f"{path}:{number}: expected a word and {d} numbers, found {len(fields)} fields"
            )
        rows = []
        exact = vocab.stoi.get(fields[0])
        if exact is not None and source[exact] != _EXACT:
            rows.append(exact)
            source[exact] = _EXACT
        for i in lowercase_of.get(fields[0], ()):
            if source[i] == _MISSING:
                rows.append(i)
                source[i] = _LOWERCASE
        if rows:
            weights[rows] = torch.tensor(_parse_numbers(fields[1:], path, number))
    if weights is None:
        raise UserError(f"{path}: no vectors in the file")
    found = [i for i, s in enumerate(source) if s != _MISSING and i != vocab.pad_index]
    if not found:
        raise UserError(
            f"{path}: none of the {len(vocab)} vocabulary words has a vector in this file"
        )
    missing = [i for i, s in enumerate(source) if s == _MISSING]
    std = weights[found].std(correction=0)
    weights[missing] = torch.randn(len(missing), weights.shape[1]) * std
    weights[vocab.pad_index] = 0.0
    return weights, len(found)


def _parse_numbers(fields: list[str], path: Path, number: int) -> list[float]:
    values = []
    for field in fields:
        try:
            value = float(field)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise UserError(f"{path}:{number}: not a finite number: {field!r}")
        values.append(value)
    return values


def embedding_from_vectors(
    embedding: torch.nn.Embedding, path: str | Path | None, vocab: Vocabulary, freeze: bool = False
) -> None:
    """Fill ``embedding`` (len(vocab), d) with the vectors of the file at ``path``
    (``load_vectors``; nothing when path is None), report how many words were found, and freeze
    it if asked."""
    if path:
        weights, found = load_vectors(path, vocab, embedding.embedding_dim)
        print(f"pretrained embeddings: {found}/{len(vocab)} vocabulary words found", flush=True)
        with torch.no_grad():
            embedding.weight.copy_(weights)
    embedding.weight.requires_grad_(not freeze)
