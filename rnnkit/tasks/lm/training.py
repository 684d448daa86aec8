"""Language modelling: text files -> tokenizer -> batches -> RNNLanguageModel, and back to text.

``LanguageModelling`` is the task (data, tokenizer, model); ``LanguageModelTask`` is what the
trainer trains (a model, a loss over numbered batches, a validation score);
``LanguageModelScorer`` scores any text. Generating text is ``rnnkit.load(RUN).generate``
(``run.py``).
In stream mode the hidden state flows from one bptt window to the next, detached so that
the gradient stops at the window's start (truncated BPTT); that carried state is part of the
task's ``state_dict`` so that a resumed run continues exactly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.config import Config
from rnnkit.data.embeddings import embedding_from_vectors
from rnnkit.data.labelled import read_unlabelled, resolve_format
from rnnkit.data.splits import read_splits
from rnnkit.data.tokenizers import (
    Tokenizer,
    tokenizer_from_config,
)
from rnnkit.errors import UserError
from rnnkit.losses import token_cross_entropy
from rnnkit.progress import progress
from rnnkit.tasks.lm.batches import SentenceBatches, StreamBatches
from rnnkit.tasks.lm.model import RNNLanguageModel
from rnnkit.tasks.trainable import TaskTraining, evaluating
from rnnkit.textio import read_text, split_lines
from rnnkit.training.distributed import SINGLE_PROCESS, Distributed

State = Tensor | tuple[Tensor, ...]


def detach_state(state: State | None) -> State | None:
    if state is None or isinstance(state, Tensor):
        return None if state is None else state.detach()
    return tuple(s.detach() for s in state)


def read_texts(cfg: Config) -> dict[str, str]:
    """The train/valid/test texts; without a valid file the last ``valid_fraction`` of train
    (cut at a character for char models, at a line otherwise) is held out for validation. The
    ``data.extra_text`` files then join train (each read with format auto)."""
    data = cfg.data
    if data.mode == "sentence" and data.tokenizer == "char":
        raise UserError(
            "data.mode: sentence mode needs data.tokenizer word or subword "
            "(a char vocabulary has no <bos>/<eos>; use stream mode)"
        )

    # A char model is held out at a character, any other at a line; a labelled file gives its
    # text alone (data.format).
    def read(path: str, fmt: str = data.format) -> list[str]:
        if data.tokenizer != "char":
            return read_unlabelled(path, fmt, data.text_column)
        if resolve_format(fmt, path, otherwise="text") == "text":
            return list(read_text(path))
        lines = read_unlabelled(path, fmt, data.text_column)
        return list("".join(line + "\n" for line in lines))

    splits = read_splits(data, read)
    for path in data.extra_text or []:
        extra = read(path, "auto")
        if not extra:
            raise UserError(f"{path}: no text (data.extra_text)")
        splits["train"] += extra
    joiner = "" if data.tokenizer == "char" else "\n"
    return {name: joiner.join(items) for name, items in splits.items()}


def stream_ids(tokenizer: Tokenizer, text: str, reverse: bool = False) -> Tensor:
    """The text as one stream of ids (<eos> after each line) (N,); ``reverse``
    (``data.reverse_text``): the whole stream read backwards, for a backward LM."""
    ids = torch.tensor(tokenizer.encode_corpus(text), dtype=torch.long)
    return ids.flip(0) if reverse else ids


def line_ids(tokenizer: Tokenizer, text: str, reverse: bool = False) -> list[list[int]]:
    """Each line's ids (sentence mode); ``reverse``: each line read right to left."""
    lines = [tokenizer.encode(line) for line in split_lines(text)]
    return [line[::-1] for line in lines] if reverse else lines


class LanguageModelScorer:
    """Loss, perplexity and bits per character of a model on any text."""

    def __init__(
        self, cfg: Config, tokenizer: Tokenizer, model: RNNLanguageModel, device: torch.device
    ) -> None:
        self.cfg, self.tokenizer, self.model, self.device = cfg, tokenizer, model.to(device), device
        self._eval_batches: dict[str, StreamBatches | SentenceBatches] = {}

    def token_loss(
        self, logits: Tensor, targets: Tensor, label_smoothing: float = 0.0
    ) -> tuple[Tensor, int]:
        """Summed cross-entropy over the non-padding targets, and their number."""
        return token_cross_entropy(logits, targets, self.tokenizer.vocab.pad_index, label_smoothing)

    def eval_batches(self, text: str) -> StreamBatches | SentenceBatches:
        """The batches of an evaluation text, tokenized once and kept (validation runs each
        epoch)."""
        if text not in self._eval_batches:
            data = self.cfg.data
            if data.mode == "stream":
                ids = stream_ids(self.tokenizer, text, data.reverse_text)
                rows = min(data.eval_batch_size, max(1, (ids.numel() - 1) // 2))
                self._eval_batches[text] = StreamBatches(ids, rows, data.bptt)
            else:
                vocab = self.tokenizer.vocab
                self._eval_batches[text] = SentenceBatches(
                    line_ids(self.tokenizer, text, data.reverse_text),
                    data.eval_batch_size,
                    vocab.pad_index,
                    vocab.bos_index,
                    vocab.eos_index,
                    shuffle=False,
                )
        return self._eval_batches[text]

    @torch.no_grad()
    def score(self, text: str) -> dict[str, float]:
        """Mean loss per token (nats), perplexity, and bits per character for char models.
        Stream mode carries the state through the whole text, as training does."""
        batches = self.eval_batches(text)
        total, count = 0.0, 0
        state = None
        with evaluating(self.model):
            for k in progress(range(len(batches)), desc="score"):
                inputs, targets, lengths = (
                    t if t is None else t.to(self.device) for t in batches.batch(0, k)
                )
                carried = state if lengths is None else None
                logits, state = self.model(inputs, carried, lengths=lengths)
                loss, n = self.token_loss(logits, targets)
                total, count = total + loss.item(), count + n
        loss = total / max(count, 1)
        metrics = {"loss": loss, "ppl": math.exp(min(loss, 50)), "tokens": count}
        if self.tokenizer.kind == "char":
            metrics["bpc"] = loss / math.log(2)
        return metrics


class LanguageModelTask(LanguageModelScorer):
    """The trainer's view of language modelling (see ``trainer.TrainingTask``)."""

    best_metric, higher_is_better = "loss", False

    def __init__(
        self,
        cfg: Config,
        tokenizer: Tokenizer,
        model: RNNLanguageModel,
        texts: dict[str, str],
        device: torch.device,
        env: Distributed = SINGLE_PROCESS,
    ) -> None:
        super().__init__(cfg, tokenizer, model, device)
        self.texts = texts
        vocab = tokenizer.vocab
        data = cfg.data
        if data.mode == "stream":
            ids = stream_ids(tokenizer, texts["train"], data.reverse_text)
            self.train = StreamBatches(ids, data.batch_size, data.bptt, env.rank, env.world_size)
        else:
            self.train = SentenceBatches(
                line_ids(tokenizer, texts["train"], data.reverse_text),
                data.batch_size // env.world_size,
                vocab.pad_index,
                vocab.bos_index,
                vocab.eos_index,
                seed=cfg.seed,
                rank=env.rank,
                world_size=env.world_size,
            )
        self.carried: State | None = None

    def num_batches(self) -> int:
        return len(self.train)

    def start_epoch(self, epoch: int) -> None:
        self.carried = None

    def batch_loss(self, model: nn.Module, epoch: int, k: int) -> tuple[Tensor, int, int]:
        inputs, targets, lengths = (
            t if t is None else t.to(self.device) for t in self.train.batch(epoch, k)
        )
        logits, state = model(inputs, self.carried, lengths=lengths)  # (B, T, V)
        if lengths is None:  # stream: the next window starts where this one ended
            self.carried = detach_state(state)
        return (*self.token_loss(logits, targets, self.cfg.train.label_smoothing), inputs.shape[0])

    def validate(self, model: nn.Module) -> dict[str, float]:
        return self.score(self.texts["valid"])

    def state_dict(self) -> dict[str, Any]:
        return {"carried": self.carried}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        carried = state["carried"]
        self.carried = carried if carried is None or isinstance(carried, Tensor) else tuple(carried)


class LanguageModelling(TaskTraining):
    """``task: lm``: one tokenizer (``tokenizer.json``), an ``RNNLanguageModel``."""

    training_class = LanguageModelTask

    def read_data(self, cfg: Config) -> dict[str, str]:
        return read_texts(cfg)

    def scorer(
        self, cfg: Config, tokenizer: Tokenizer, model: RNNLanguageModel
    ) -> LanguageModelScorer:
        """Loss and perplexity of a trained model on any text (``rnnkit evaluate``)."""
        return LanguageModelScorer(cfg, tokenizer, model, next(model.parameters()).device)

    def build_vocabularies(self, cfg: Config, data: dict[str, str]) -> Tokenizer:
        return tokenizer_from_config(cfg.data, data["train"])

    def save_vocabularies(self, tokenizer: Tokenizer, directory: Path) -> None:
        tokenizer.save(directory)

    def build_model(self, cfg: Config, tokenizer: Tokenizer) -> RNNLanguageModel:
        vocab = tokenizer.vocab
        model = RNNLanguageModel(len(vocab), cfg.model, vocab.pad_index)
        # With tie_weights the output layer shares this Parameter, so it takes the vectors too.
        embedding_from_vectors(
            model.embedding, cfg.model.pretrained_embeddings, vocab, cfg.model.freeze_embeddings
        )
        return model

    def test_metrics(self, task: LanguageModelTask, data: dict[str, str]) -> dict[str, float]:
        return task.score(data["test"])

    def diagnostic_batch(
        self, cfg: Config, tokenizer: Tokenizer, data: dict[str, str], size: int
    ) -> tuple[Tensor, Tensor]:
        """The first ``size`` bptt windows of the validation text (inputs, targets), each
        (size, bptt): the batch ``rnnkit diagnose gradients`` differentiates."""
        ids = stream_ids(tokenizer, data["valid"], cfg.data.reverse_text)
        rows = max(1, min(size, (ids.numel() - 1) // (cfg.data.bptt + 1)))
        inputs, targets, _ = StreamBatches(ids, rows, cfg.data.bptt).batch(0, 0)
        return inputs, targets

    def last_step_loss(self, model: RNNLanguageModel, batch: tuple[Tensor, Tensor]) -> Tensor:
        """L_T: the cross-entropy of the prediction after the window's last token."""
        inputs, targets = batch
        logits, _ = model(inputs)  # (B, T, V)
        return F.cross_entropy(logits[:, -1], targets[:, -1])


TRAINING = LanguageModelling()
