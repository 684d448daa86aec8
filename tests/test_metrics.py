"""rnnkit.metrics against hand computations: accuracy, confusion matrix, macro-F1, entity spans
(BIO, IOB1, IOBES) and entity precision/recall/F1."""

from __future__ import annotations

import pytest

from rnnkit.metrics import (
    accuracy,
    confusion_matrix,
    entity_scores,
    entity_spans,
    is_entity_tagset,
    macro_f1,
    per_class_f1,
)

GOLD = ["a", "a", "a", "b", "b", "c"]
PRED = ["a", "b", "a", "b", "c", "c"]


def test_accuracy_counts_exact_matches():
    assert accuracy(GOLD, PRED) == pytest.approx(4 / 6)
    assert accuracy([], []) == 0.0
    with pytest.raises(ValueError):
        accuracy(["a"], [])


def test_confusion_matrix_rows_are_gold_columns_predicted():
    labels, matrix = confusion_matrix(GOLD, PRED)
    assert labels == ["a", "b", "c"]
    assert matrix == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    # a given order first, then labels met in the data but missing from it
    labels, matrix = confusion_matrix(["x", "y"], ["y", "z"], labels=["y", "x"])
    assert labels == ["y", "x", "z"] and matrix == [[0, 0, 1], [1, 0, 0], [0, 0, 0]]


def test_macro_f1_by_hand():
    # a: TP 2, FP 0, FN 1 -> P 1, R 2/3, F1 0.8
    # b: TP 1, FP 1, FN 1 -> P 1/2, R 1/2, F1 0.5
    # c: TP 1, FP 1, FN 0 -> P 1/2, R 1, F1 2/3
    assert per_class_f1(GOLD, PRED) == pytest.approx({"a": 0.8, "b": 0.5, "c": 2 / 3})
    assert macro_f1(GOLD, PRED) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    # a class only ever predicted counts, with F1 0
    assert macro_f1(["a", "a"], ["a", "z"]) == pytest.approx((2 / 3 + 0) / 2)


def test_bio_spans():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-ORG", "I-ORG", "O", "I-PER"]
    assert entity_spans(tags) == {
        (0, 0, 1, "PER"),
        (0, 3, 3, "LOC"),
        (0, 4, 4, "LOC"),
        (0, 5, 6, "ORG"),
        (0, 8, 8, "PER"),
    }  # I- after O or another type opens an entity


def test_iobes_spans():
    tags = ["S-PER", "B-ORG", "I-ORG", "E-ORG", "E-ORG", "B-LOC", "O", "S-LOC"]
    assert entity_spans(tags, sentence=3) == {
        (3, 0, 0, "PER"),
        (3, 1, 3, "ORG"),
        (3, 4, 4, "ORG"),
        (3, 5, 5, "LOC"),
        (3, 7, 7, "LOC"),
    }


def test_entity_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    # gold: PER(0-1) LOC(3) ORG; predicted: PER(0-1) ORG LOC(s1)
    # -> 2 right of 3 predicted, of 3 gold
    scores = entity_scores(gold, pred)
    assert scores == pytest.approx(
        {"entity_precision": 2 / 3, "entity_recall": 2 / 3, "entity_f1": 2 / 3}
    )
    # a partly right span is wrong
    assert entity_scores([["B-PER", "I-PER"]], [["B-PER", "O"]]) == pytest.approx(
        {"entity_precision": 0.0, "entity_recall": 0.0, "entity_f1": 0.0}
    )


def test_entity_tagsets_are_recognised():
    assert is_entity_tagset(["O", "B-PER", "I-PER"])
    assert is_entity_tagset(["S-LOC", "E-LOC", "O"])
    assert not is_entity_tagset(["NOUN", "VERB", "PUNCT"])
    assert not is_entity_tagset(["O"])
    assert not is_entity_tagset(["-LRB-", "NN"])
