"""Translation: parallel text -> tokenizers -> ``Seq2Seq`` -> loss, BLEU/chrF and decoding.

Data (``data.*``): a split is two aligned files ``PATH.SOURCE_SUFFIX`` / ``PATH.TARGET_SUFFIX``
or one TSV file of (source, target) columns; ``data.synthetic: reverse`` generates the
reverse-the-sequence task instead (Joey NMT's smoke test), in memory. Training pairs with an
empty side or a side longer than ``data.max_length`` tokens are dropped and counted.

Training (the trainer's ``TrainingTask``): teacher forcing with a ratio drawn per step, which
scheduled sampling decays with the step (``teacher_forcing_ratio``); label smoothing.
Validation: teacher-forced loss and perplexity, and free-running BLEU and chrF (sacrebleu, on
the decoded text) of greedy (or ``decode.valid_beam_size``) translations; the best weights
are those of the best BLEU.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.config import Config, TrainConfig
from rnnkit.data.splits import read_splits
from rnnkit.data.tokenizers import tokenizer_from_config
from rnnkit.decoding.engine import TorchEngine
from rnnkit.errors import UserError
from rnnkit.losses import token_cross_entropy
from rnnkit.tasks.trainable import TaskTraining, VocabularyTask, evaluating
from rnnkit.tasks.translate.data import PairBatches, filter_pairs
from rnnkit.tasks.translate.model import Seq2Seq
from rnnkit.tasks.translate.pairs import read_parallel
from rnnkit.tasks.translate.run import (
    SOURCE_DIR,
    TARGET_DIR,
    Tokenizers,
    corpus_scores,
    encode_sources,
    translate_ids,
)
from rnnkit.training.distributed import SINGLE_PROCESS, Distributed
from rnnkit.training.transfer import FORWARD, TransferTarget

Pairs = list[tuple[str, str]]


def reverse_task(count: int, seed: int, max_length: int = 12, alphabet: int = 20) -> Pairs:
    """``count`` pairs "c a d" -> "d a c": 1 to ``max_length`` symbols from ``alphabet`` letters."""
    rng = random.Random(seed)
    letters = [chr(ord("a") + i) for i in range(alphabet)]
    pairs = []
    for _ in range(count):
        symbols = rng.choices(letters, k=rng.randint(1, max_length))
        pairs.append((" ".join(symbols), " ".join(reversed(symbols))))
    return pairs


def read_split(cfg: Config, path: str) -> Pairs:
    data = cfg.data
    if data.source_suffix and data.target_suffix:
        return read_parallel(f"{path}.{data.source_suffix}", f"{path}.{data.target_suffix}")
    if data.source_suffix or data.target_suffix:
        raise UserError(
            "data.source_suffix and data.target_suffix: give both (two files per split) "
            "or neither (TSV)"
        )
    pairs = read_parallel(path)
    return [(t, s) for s, t in pairs] if data.reverse else pairs


SYNTHETIC_TASKS = ("reverse",)  # data.synthetic: generated pairs instead of files


def read_data(cfg: Config) -> dict[str, Pairs]:
    """The train/valid(/test) pairs; without a valid split, the last ``valid_fraction`` of train."""
    if cfg.data.synthetic == "reverse":
        return {
            "train": reverse_task(5000, cfg.seed),
            "valid": reverse_task(200, cfg.seed + 1),
            "test": reverse_task(200, cfg.seed + 2),
        }
    return read_splits(cfg.data, lambda path: read_split(cfg, path))


def train_tokenizers(cfg: Config, train: Pairs) -> Tokenizers:
    """Trained on the training pairs: one joint vocabulary, or one per side."""
    sources, targets = "\n".join(s for s, _ in train), "\n".join(t for _, t in train)
    if cfg.data.joint_vocabulary:
        joint = tokenizer_from_config(cfg.data, sources + "\n" + targets, sentence_markers=True)
        return Tokenizers(joint, joint)
    return Tokenizers(
        tokenizer_from_config(cfg.data, sources, sentence_markers=True),
        tokenizer_from_config(cfg.data, targets, sentence_markers=True),
    )


def encode_pairs(tokenizers: Tokenizers, pairs: Pairs) -> list[tuple[list[int], list[int]]]:
    return [(tokenizers.source.encode(s), tokenizers.target.encode(t)) for s, t in pairs]


# train.scheduled_sampling
SAMPLING_SCHEDULES = ("none", "linear", "exponential", "inverse_sigmoid")


def teacher_forcing_ratio(cfg: TrainConfig, step: int) -> float:
    """The probability of feeding the gold token at optimizer step i (Bengio et al. 2015):
    ``none`` the constant ``teacher_forcing``; ``linear`` max(min, k - c i); ``exponential``
    max(min, k^i) (k < 1); ``inverse_sigmoid`` max(min, k / (k + exp(i / k))) (k >= 1)."""
    k, c, floor = cfg.sampling_k, cfg.sampling_c, cfg.sampling_min
    if cfg.scheduled_sampling == "none":
        return cfg.teacher_forcing
    if cfg.scheduled_sampling == "linear":
        ratio = k - c * step
    elif cfg.scheduled_sampling == "exponential":
        ratio = k**step
    else:
        ratio = k / (k + math.exp(min(step / k, 700.0)))
    return max(floor, ratio)


class TranslationTask(VocabularyTask):
    """The trainer's view of translation (see ``trainer.TrainingTask``)."""

    best_metric, higher_is_better = "bleu", True

    def __init__(
        self,
        cfg: Config,
        tokenizers: Tokenizers,
        model: Seq2Seq,
        data: dict[str, Pairs],
        device: torch.device,
        env: Distributed = SINGLE_PROCESS,
    ) -> None:
        super().__init__(cfg, tokenizers, model, data, device)
        target = tokenizers.target.vocab
        pairs, dropped = filter_pairs(encode_pairs(tokenizers, data["train"]), cfg.data.max_length)
        if not pairs:
            raise UserError(f"{cfg.data.train}: no training pair left after filtering {dropped}")
        if env.is_main and any(dropped.values()):
            print(
                f"translate: training on {len(pairs)} of {len(data['train'])} pairs; dropped "
                + ", ".join(
                    f"{count} {reason.replace('_', ' ')}" for reason, count in dropped.items()
                )
                + f" (data.max_length {cfg.data.max_length})",
                flush=True,
            )
        batch_size = (
            cfg.data.batch_size // env.world_size if cfg.data.batch_tokens is None else None
        )
        self.train = PairBatches(
            pairs,
            cfg.data.batch_tokens,
            batch_size,
            target.pad_index,
            target.bos_index,
            target.eos_index,
            seed=cfg.seed,
            rank=env.rank,
            world_size=env.world_size,
        )
        self.valid = PairBatches(
            encode_pairs(tokenizers, data["valid"]),
            None,
            cfg.decode.batch_size,
            target.pad_index,
            target.bos_index,
            target.eos_index,
            shuffle=False,
        )

    def num_batches(self) -> int:
        return len(self.train)

    def loss(
        self, model: nn.Module, batch, teacher_forcing: float = 1.0, label_smoothing: float = 0.0
    ) -> tuple[Tensor, int]:
        logits, _ = model(
            batch.source.to(self.device),
            batch.source_lengths.to(self.device),
            batch.target_in.to(self.device),
            teacher_forcing,
        )  # (B, T, V)
        return token_cross_entropy(
            logits,
            batch.target_out.to(self.device),
            self.tokenizers.target.vocab.pad_index,
            label_smoothing,
        )

    def batch_loss(self, model: nn.Module, epoch: int, k: int) -> tuple[Tensor, int, int]:
        batch = self.train.batch(epoch, k)
        ratio = teacher_forcing_ratio(self.cfg.train, epoch * len(self.train) + k)
        return (
            *self.loss(model, batch, ratio, self.cfg.train.label_smoothing),
            batch.source.shape[0],
        )

    @torch.no_grad()
    def validate(self, model: nn.Module) -> dict[str, float]:
        """Teacher-forced loss/perplexity and free-running BLEU/chrF on the valid pairs."""
        total, count = 0.0, 0
        with evaluating(self.model):
            for k in range(len(self.valid)):
                loss, n = self.loss(self.model, self.valid.batch(0, k))
                total, count = total + loss.item(), count + n
        scores = self.score(self.data["valid"], self.cfg.decode.valid_beam_size)
        loss = total / max(count, 1)
        return {
            "loss": loss,
            "ppl": math.exp(min(loss, 50)),
            "bleu": scores["bleu"],
            "chrf": scores["chrf"],
        }

    def score(self, pairs: Pairs, beam_size: int | None = None) -> dict[str, Any]:
        """BLEU and chrF of the model's translations of the sources against the targets."""
        decode, tokenizers = self.cfg.decode, self.tokenizers
        sources = encode_sources(tokenizers.source, [s for s, _ in pairs], decode.max_source_length)
        with evaluating(self.model):
            engine = TorchEngine(self.model, self.device)
            results = translate_ids(engine, tokenizers, sources, decode, beam_size)
        hypotheses = [tokenizers.target.decode(best[0][0]) for best in results]
        return corpus_scores(hypotheses, [t for _, t in pairs])


class Translation(TaskTraining):
    """``task: translate``: a tokenizer per side (``source/``, ``target/``), a ``Seq2Seq``."""

    training_class = TranslationTask

    def read_data(self, cfg: Config) -> dict[str, Pairs]:
        return read_data(cfg)

    def build_vocabularies(self, cfg: Config, data: dict[str, Pairs]) -> Tokenizers:
        return train_tokenizers(cfg, data["train"])

    def save_vocabularies(self, tokenizers: Tokenizers, directory: Path) -> None:
        for name, tokenizer in zip((SOURCE_DIR, TARGET_DIR), tokenizers, strict=True):
            (Path(directory) / name).mkdir(exist_ok=True)
            tokenizer.save(Path(directory) / name)

    def build_model(self, cfg: Config, tokenizers: Tokenizers) -> Seq2Seq:
        source, target = (t.vocab for t in tokenizers)
        return Seq2Seq(len(source), len(target), cfg.model, source.pad_index, target.pad_index)

    def transfer_targets(
        self, cfg: Config, model: Seq2Seq, tokenizers: Tokenizers
    ) -> list[TransferTarget]:
        """The encoder from a source-language LM, the decoder from a target-language LM."""
        return [
            TransferTarget(
                name, part.embedding, part.rnn, tokenizer.vocab,
                {FORWARD: (f"model.{key}", path)} if (path := getattr(cfg.model, key)) else {},
            )
            for name, part, tokenizer, key in (
                ("encoder", model.encoder, tokenizers.source, "encoder_init_from"),
                ("decoder", model.decoder, tokenizers.target, "decoder_init_from"),
            )
        ]  # fmt: skip

    def test_metrics(self, task: TranslationTask, data: dict[str, Pairs]) -> dict[str, Any]:
        """BLEU and chrF on the test pairs, with ``decode.beam_size``."""
        return task.score(data["test"], task.cfg.decode.beam_size)


TRAINING = Translation()
