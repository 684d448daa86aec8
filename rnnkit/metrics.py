"""Scores of predicted labels against gold ones: accuracy, macro-F1, the confusion matrix, and
entity-level precision/recall/F1 of BIO/IOBES tag sequences (as conlleval computes them).

Everything works on label names (str), so a gold label the model never saw in training is
simply never predicted right. With n examples, gold y_i and prediction p_i::

    accuracy   = (1/n) sum_i [y_i == p_i]
    P_c = TP_c / (TP_c + FP_c),  R_c = TP_c / (TP_c + FN_c),  F1_c = 2 P_c R_c / (P_c + R_c)
    macro-F1   = (1/|C|) sum_c F1_c   over the classes C seen in gold or predictions
                 (a ratio with a zero denominator counts as 0, as in scikit-learn)

Entities (Tjong Kim Sang & De Meulder 2003; conlleval): a tag sequence is read into spans
(start, end, type); a predicted entity counts only if its span and type match a gold one::

    precision = |G & P| / |P|,  recall = |G & P| / |G|,
    F1 = 2 precision recall / (precision + recall)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Span = tuple[int, int, int, str]  # (sentence, first token, last token, entity type)

_ENTITY_TAG = re.compile(r"^([BIESLU])-(.+)$")


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """(1/n) sum_i [y_i == p_i]; 0.0 for no examples."""
    _check(gold, predicted)
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold) if gold else 0.0


def confusion_matrix(
    gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str] | None = None
) -> tuple[list[str], list[list[int]]]:
    """(labels, M) with M[i][j] the number of examples of gold label i predicted as j.

    labels: the row/column order; by default the labels seen, sorted. Labels met in the data
    but missing from ``labels`` are appended, so every example is counted.
    """
    _check(gold, predicted)
    order = list(labels) if labels is not None else []
    order += sorted((set(gold) | set(predicted)) - set(order))
    index = {label: i for i, label in enumerate(order)}
    matrix = [[0] * len(order) for _ in order]
    for g, p in zip(gold, predicted, strict=True):
        matrix[index[g]][index[p]] += 1
    return order, matrix


def per_class_f1(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """F1_c = 2 P_c R_c / (P_c + R_c) for each class c in gold or predictions."""
    labels, matrix = confusion_matrix(gold, predicted)
    scores = {}
    for c, label in enumerate(labels):
        true_positive = matrix[c][c]
        gold_count = sum(matrix[c])  # TP + FN
        predicted_count = sum(row[c] for row in matrix)  # TP + FP
        scores[label] = _f1(true_positive, predicted_count, gold_count)
    return scores


def macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """(1/|C|) sum_c F1_c over the classes seen in gold or predictions; 0.0 for no examples."""
    scores = per_class_f1(gold, predicted)
    return sum(scores.values()) / len(scores) if scores else 0.0


def is_entity_tagset(tags: Sequence[str]) -> bool:
    """True when every tag is ``O`` or ``X-TYPE`` with X in B, I, E, S (and L, U of BILOU),
    and at least one is not ``O``: the tags name entity spans (BIO/IOB1/IOB2/IOBES)."""
    tags = set(tags)
    return bool(tags - {"O"}) and all(t == "O" or _ENTITY_TAG.match(t) for t in tags)


def entity_spans(tags: Sequence[str], sentence: int = 0) -> set[Span]:
    """The entities of one tag sequence, read as conlleval reads BIO (IOB1 and IOB2) and IOBES.

    An entity starts at B- or S- (U-), or at I- or E- (L-) that does not continue an open entity
    of its type; it ends before O, before the start of another entity, or after E- or S-.
    """
    spans: set[Span] = set()
    start, kind = None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, entity = _parse(tag)
        begins = prefix in "BSU" or (prefix in "IEL" and (kind != entity or start is None))
        if start is not None and (prefix == "O" or begins):
            spans.add((sentence, start, i - 1, kind))
            start, kind = None, None
        if prefix == "O":
            continue
        if begins:
            start, kind = i, entity
        if prefix in "ESLU":  # the entity ends here
            spans.add((sentence, start, i, kind))
            start, kind = None, None
    return spans


def entity_scores(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Micro-averaged entity precision, recall and F1 over sentences of tags (module docstring)."""
    _check(gold, predicted)
    gold_spans: set[Span] = set()
    predicted_spans: set[Span] = set()
    for s, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        _check(g, p)
        gold_spans |= entity_spans(g, s)
        predicted_spans |= entity_spans(p, s)
    correct = len(gold_spans & predicted_spans)
    precision = correct / len(predicted_spans) if predicted_spans else 0.0
    recall = correct / len(gold_spans) if gold_spans else 0.0
    return {
        "entity_precision": precision,
        "entity_recall": recall,
        "entity_f1": _f1(correct, len(predicted_spans), len(gold_spans)),
    }


def _f1(true_positive: int, predicted: int, gold: int) -> float:
    """2 P R / (P + R) with P = tp / predicted, R = tp / gold, i.e. 2 tp / (predicted + gold)."""
    return 2 * true_positive / (predicted + gold) if true_positive else 0.0


def _parse(tag: str) -> tuple[str, str | None]:
    match = _ENTITY_TAG.match(tag)
    return (match.group(1), match.group(2)) if match else ("O", None)


def _check(gold: Sequence, predicted: Sequence) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
