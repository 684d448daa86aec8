"""Loaded classifiers and taggers: ``predict`` (labels with probabilities; tags per token) and
``evaluate`` (accuracy, macro-F1 and the confusion matrix; token accuracy and entity scores)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..tasks import TASKS, classify, tag
from .base import LoadedRun


@dataclass
class Label:
    """A text's most probable label and every label's probability."""

    text: str
    label: str
    probabilities: dict[str, float]


@dataclass
class Tagged:
    tokens: list[str]
    tags: list[str]


def labelled_examples(run: LoadedRun, split: str, data: str | Path | None, read) -> tuple:
    """The examples to score: a labelled file, or a split of the run's own data."""
    if data is not None:
        return read(run.cfg, data), str(data)
    splits = TASKS[run.task].read_data(run.cfg)
    if split not in splits:
        raise UserError(f"{run.path}: the run has no {split} data; pass --data FILE")
    return splits[split], str(getattr(run.cfg.data, split) or run.cfg.data.train)


class ClassifierRun(LoadedRun):
    """``rnnkit.load`` of a classify run."""

    def vocabulary_sizes(self) -> dict[str, int]:
        return {
            "tokens": len(self.vocabularies.text.vocab),
            "labels": len(self.vocabularies.labels),
        }

    def predict(self, texts: str | Sequence[str], name: str = "input") -> list[Label]:
        """Label each text; ``name`` (a file) is what an error names, with the line."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        names = self.vocabularies.labels.names
        with torch.inference_mode():
            results = classify.predict(
                self.engine.classify,
                self.vocabularies,
                texts,
                self.device,
                name,
                self.cfg.data.eval_batch_size,
            )
        return [
            Label(text, label, dict(zip(names, probabilities, strict=True)))
            for text, (label, probabilities) in zip(texts, results, strict=True)
        ]

    def evaluate(self, split: str = "test", data: str | Path | None = None) -> dict[str, Any]:
        examples, name = labelled_examples(self, split, data, classify.read_file)
        with torch.inference_mode():
            return classify.evaluate(
                self.engine.classify,
                self.vocabularies,
                examples,
                self.device,
                name,
                self.cfg.data.eval_batch_size,
            )


class TaggerRun(LoadedRun):
    """``rnnkit.load`` of a tag run."""

    def vocabulary_sizes(self) -> dict[str, int]:
        sizes = {"words": len(self.vocabularies.words.vocab), "tags": len(self.vocabularies.tags)}
        if self.vocabularies.chars is not None:
            sizes["chars"] = len(self.vocabularies.chars.vocab)
        return sizes

    def predict(
        self, sentences: str | Sequence[str | Sequence[str]], name: str = "input"
    ) -> list[Tagged]:
        """Tag each sentence: a list of tokens, or a string split at whitespace (``name``: where
        they came from, for symmetry with ``ClassifierRun.predict``; tagging has no bad input)."""
        if isinstance(sentences, str):
            sentences = [sentences]
        tokens = [s.split() if isinstance(s, str) else list(s) for s in sentences]
        with torch.inference_mode():
            tags = tag.predict(
                self.engine.tag,
                self.vocabularies,
                tokens,
                self.device,
                self.cfg.data.eval_batch_size,
            )
        return [Tagged(t, g) for t, g in zip(tokens, tags, strict=True)]

    def evaluate(self, split: str = "test", data: str | Path | None = None) -> dict[str, Any]:
        sentences, name = labelled_examples(self, split, data, tag.read_file)
        with torch.inference_mode():
            return tag.evaluate(
                self.engine.tag,
                self.vocabularies,
                sentences,
                self.device,
                name,
                self.cfg.data.eval_batch_size,
            )
