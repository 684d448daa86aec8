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
from typing import Any, NamedTuple

import torch
from sacrebleu.metrics import BLEU, CHRF
from torch import Tensor, nn

from ..config import Config, DecodeConfig, TrainConfig
from ..data.parallel import PairBatches, filter_pairs, read_parallel, source_batches
from ..data.splits import read_splits
from ..data.tokenizers import Tokenizer, load_tokenizer, tokenizer_from_config
from ..errors import UserError
from ..losses import token_cross_entropy
from ..models.seq2seq import Seq2Seq
from ..progress import progress
from ..search import beam_search
from ..training.distributed import SINGLE_PROCESS, Distributed
from .base import Task, VocabularyTask, evaluating

Pairs = list[tuple[str, str]]


class Tokenizers(NamedTuple):
    """A translation run's vocabularies: one tokenizer per side (one object when joint)."""

    source: Tokenizer
    target: Tokenizer


SOURCE_DIR, TARGET_DIR = "source", "target"  # where a run keeps each side's tokenizer


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


@torch.no_grad()
def translate_ids(
    model: Seq2Seq | Any,
    tokenizers: Tokenizers,
    sources: list[list[int]],
    decode: DecodeConfig,
    device: torch.device,
    beam_size: int | None = None,
    n_best: int = 1,
    deadline: float | None = None,
) -> list[list[tuple[list[int], float]]]:
    """Beam search (beam 1: greedy) for every source, in input order: the ``n_best`` best
    (target ids without ``<eos>``, score) each. Outputs stop at ``max_length_ratio`` x the
    source length + 10 tokens, or where the ``time.monotonic()`` ``deadline`` passes.
    ``model``: a ``Seq2Seq`` in eval mode, or any engine with its ``start`` and
    ``search_step`` (``api.engine``)."""
    source_vocab, target_vocab = tokenizers.source.vocab, tokenizers.target.vocab
    results: list[list[tuple[list[int], float]]] = [[] for _ in sources]
    batches = source_batches(
        sources, decode.batch_size, source_vocab.pad_index, source_vocab.eos_index
    )
    for source, lengths, indices in progress(batches, desc="translate"):
        source, lengths = source.to(device), lengths.to(device)
        first, state = model.start(source, lengths, target_vocab.bos_index)
        limits = (lengths.float() * decode.max_length_ratio).long() + 10  # (B,)
        beams = beam_search(
            model.search_step,
            first,
            state,
            beam_size or decode.beam_size,
            limits,
            eos=target_vocab.eos_index,
            length_penalty=decode.length_penalty,
            n_best=n_best,
            block_ngram_repeat=decode.block_ngram_repeat,
            batch_dim=0,
            deadline=deadline,
        )
        for index, hypotheses in zip(indices, beams, strict=True):
            results[index] = hypotheses
    return results


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict[str, Any]:
    """sacrebleu's corpus BLEU and chrF, and their signatures."""
    bleu, chrf = BLEU(force=True), CHRF()  # force: tokenized references (tok/ files) are meant
    return {
        "bleu": bleu.corpus_score(hypotheses, [references]).score,
        "chrf": chrf.corpus_score(hypotheses, [references]).score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


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
        with evaluating(self.model):
            hypotheses = translate_texts(
                self.model, self.tokenizers, [s for s, _ in pairs], self.cfg, self.device, beam_size
            )
        return corpus_scores([h[0][0] for h in hypotheses], [t for _, t in pairs])


def encode_sources(
    tokenizer: Tokenizer, lines: list[str], max_length: int, name: str = "input"
) -> list[list[int]]:
    """Source lines -> ids; a line of more than ``max_length`` tokens is a UserError naming it."""
    sources = []
    for number, line in enumerate(lines, 1):
        ids = tokenizer.encode(line)
        if len(ids) > max_length:
            raise UserError(
                f"{name}:{number}: {len(ids)} tokens, more than decode.max_source_length "
                f"({max_length}); split the line"
            )
        sources.append(ids)
    return sources


def translate_texts(
    model: Seq2Seq,
    tokenizers: Tokenizers,
    lines: list[str],
    cfg: Config,
    device: torch.device,
    beam_size: int | None = None,
    n_best: int = 1,
    name: str = "input",
) -> list[list[tuple[str, float]]]:
    """Source lines -> for each, the n-best (detokenized translation, score)."""
    sources = encode_sources(tokenizers.source, lines, cfg.decode.max_source_length, name)
    results = translate_ids(model, tokenizers, sources, cfg.decode, device, beam_size, n_best)
    return [
        [(tokenizers.target.decode(ids), score) for ids, score in hypotheses]
        for hypotheses in results
    ]


class Translation(Task):
    """``task: translate``: a tokenizer per side (``source/``, ``target/``), a ``Seq2Seq``."""

    name = "translate"
    run_files = (SOURCE_DIR, TARGET_DIR)
    training_class = TranslationTask

    def read_data(self, cfg: Config) -> dict[str, Pairs]:
        return read_data(cfg)

    def build_vocabularies(self, cfg: Config, data: dict[str, Pairs]) -> Tokenizers:
        return train_tokenizers(cfg, data["train"])

    def save_vocabularies(self, tokenizers: Tokenizers, directory: Path) -> None:
        for name, tokenizer in zip((SOURCE_DIR, TARGET_DIR), tokenizers, strict=True):
            (Path(directory) / name).mkdir(exist_ok=True)
            tokenizer.save(Path(directory) / name)

    def load_vocabularies(self, directory: Path) -> Tokenizers:
        return Tokenizers(*(load_tokenizer(Path(directory) / d) for d in (SOURCE_DIR, TARGET_DIR)))

    def build_model(self, cfg: Config, tokenizers: Tokenizers) -> Seq2Seq:
        source, target = (t.vocab for t in tokenizers)
        return Seq2Seq(len(source), len(target), cfg.model, source.pad_index, target.pad_index)

    def test_metrics(self, task: TranslationTask, data: dict[str, Pairs]) -> dict[str, Any]:
        """BLEU and chrF on the test pairs, with ``decode.beam_size``."""
        return task.score(data["test"], task.cfg.decode.beam_size)

    def loaded(self, path: Path, cfg: Config, tokenizers: Tokenizers, engine: Any) -> Any:
        from ..api.translate import TranslationRun

        return TranslationRun(path, cfg, tokenizers, engine)
