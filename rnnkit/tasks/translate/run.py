"""A loaded translation model: ``translate`` (greedy or beam search, n-best with scores, the
attention matrix if asked) and ``evaluate`` (BLEU and chrF with sacrebleu).

Decoding here is engine-neutral (``engine``): the sources are padded as numpy arrays, and
the engine's own arrays come back to ``search.beam_search``; the training task validates
with the same ``translate_ids``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rnnkit.config import DecodeConfig
from rnnkit.data.padding import pad_sources
from rnnkit.data.tokenizers import Tokenizer, load_tokenizer
from rnnkit.decoding.search import beam_search
from rnnkit.errors import UserError
from rnnkit.progress import progress
from rnnkit.tasks.loaded import LoadedRun, deadline_after, per_input
from rnnkit.tasks.translate.pairs import read_parallel


class Tokenizers(NamedTuple):
    """A translation run's vocabularies: one tokenizer per side (one object when joint)."""

    source: Tokenizer
    target: Tokenizer


SOURCE_DIR, TARGET_DIR = "source", "target"  # where a run keeps each side's tokenizer


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


def source_batches(
    sources: list[list[int]], batch_size: int, pad: int, eos: int
) -> Iterator[tuple[np.ndarray, np.ndarray, list[int]]]:
    """Sources to translate -> (source (B, S), source_lengths (B,), indices), shortest first.

    Padded as in ``PairBatch`` (``<eos>`` appended); sorting by length keeps padding small, and
    ``indices`` (positions in ``sources``) put the translations back in input order.
    """
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        source, lengths = pad_sources([sources[i] for i in indices], pad, eos)
        yield source, lengths, indices


def translate_ids(
    engine: Any,
    tokenizers: Tokenizers,
    sources: list[list[int]],
    decode: DecodeConfig,
    beam_size: int | None = None,
    n_best: int = 1,
    deadline: float | None = None,
) -> list[list[tuple[list[int], float]]]:
    """Beam search (beam 1: greedy) for every source, in input order: the ``n_best`` best
    (target ids without ``<eos>``, score) each. Outputs stop at ``max_length_ratio`` x the
    source length + 10 tokens, or where the ``time.monotonic()`` ``deadline`` passes.
    ``engine``: the model's ``start`` and ``search_step`` (``decoding.engine``)."""
    source_vocab, target_vocab = tokenizers.source.vocab, tokenizers.target.vocab
    results: list[list[tuple[list[int], float]]] = [[] for _ in sources]
    batches = source_batches(
        sources, decode.batch_size, source_vocab.pad_index, source_vocab.eos_index
    )
    ratio = np.float32(decode.max_length_ratio)
    for source, lengths, indices in progress(batches, desc="translate"):
        first, state = engine.call("start", source, lengths, target_vocab.bos_index)
        limits = (lengths.astype(np.float32) * ratio).astype(np.int64) + 10  # (B,)
        beams = beam_search(
            functools.partial(engine.call, "search_step"),
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
    from sacrebleu.metrics import BLEU, CHRF

    bleu, chrf = BLEU(force=True), CHRF()  # force: tokenized references (tok/ files) are meant
    return {
        "bleu": bleu.corpus_score(hypotheses, [references]).score,
        "chrf": chrf.corpus_score(hypotheses, [references]).score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


@dataclass
class Hypothesis:
    text: str
    score: float  # log P(Y) / lp(Y), GNMT's length-normalised log-probability
    token_ids: list[int]


@dataclass
class AttentionMatrix:
    """``weights[i][j]``: how much target token i attended to source token j (rows sum to 1);
    both token lists end in ``<eos>``."""

    weights: list[list[float]]
    source_tokens: list[str]
    target_tokens: list[str]


@dataclass
class Translation:
    source: str
    hypotheses: list[Hypothesis]  # the n best, best first
    attention: AttentionMatrix | None = None

    @property
    def text(self) -> str:
        return self.hypotheses[0].text if self.hypotheses else ""


class TranslationGraphs:
    """An export's ``encoder`` and ``decoder_step`` graphs standing in for ``Seq2Seq``'s
    ``start``, ``search_step`` and (teacher-forced attention) ``forward``. The search state is
    the model's: the decoder state's parts batch-first, the input-feed vector, and the memory
    (keys, mask, projected keys), every array with the hypotheses at dim 0, so
    ``search.reorder_state`` follows beams as with the PyTorch model."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.names = engine.state_names("decoder_step")

    def _begin(self, source: np.ndarray, lengths: np.ndarray, bos: int) -> tuple[dict, tuple]:
        """Encode, then the first decoder step on <bos>: its outputs and the search state."""
        encoded = self.engine.run("encoder", source=source, lengths=lengths)
        parts = tuple(encoded[n].swapaxes(0, 1) for n in self.names)  # batch-first
        memory = tuple(encoded[n] for n in ("keys", "mask", "projected") if n in encoded)
        width = self.engine.state_shape("decoder_step", 1)[2]
        feed = np.zeros((source.shape[0], width), np.float32)
        tokens = np.full((source.shape[0],), bos, dtype=np.int64)
        return self._step(tokens, (parts, feed, memory))

    def _step(self, tokens: np.ndarray, search_state: tuple) -> tuple[dict[str, Any], tuple]:
        parts, feed, memory = search_state
        state = {n: p.swapaxes(0, 1) for n, p in zip(self.names, parts, strict=True)}
        memory_inputs = dict(zip(("keys", "mask", "projected"), memory, strict=False))
        out = self.engine.run("decoder_step", tokens=tokens, feed=feed, **state, **memory_inputs)
        parts = tuple(out[n + "_out"].swapaxes(0, 1) for n in self.names)
        return out, (parts, out["feed_out"], memory)

    def start(self, source: np.ndarray, lengths: np.ndarray, bos: int) -> tuple[Any, tuple]:
        out, state = self._begin(source, lengths, bos)
        return out["log_probs"], state

    def search_step(self, tokens: np.ndarray, search_state: tuple) -> tuple[Any, tuple]:
        out, state = self._step(tokens, search_state)
        return out["log_probs"], state

    def forward(self, source: np.ndarray, lengths: np.ndarray, target_in: np.ndarray):
        """Teacher-forced, as the model's forward: (no logits, the weights (B, T, S) of every
        step), step t fed target_in[:, t]."""
        out, state = self._begin(source, lengths, int(target_in[0, 0]))
        weights = [out["attention"]]
        for t in range(1, target_in.shape[1]):
            out, state = self._step(target_in[:, t], state)
            weights.append(out["attention"])
        return None, np.stack(weights, axis=1)


class TranslationRun(LoadedRun):
    """``rnnkit.load`` of a translate run."""

    graphs = TranslationGraphs

    @staticmethod
    def load_vocabularies(directory: Path) -> Tokenizers:
        return Tokenizers(*(load_tokenizer(Path(directory) / d) for d in (SOURCE_DIR, TARGET_DIR)))

    def beam(self, beam: int | None = None) -> int:
        """The beam size a translation uses: ``beam``, or the run's ``decode.beam_size``."""
        return beam or self.cfg.decode.beam_size

    @property
    def tokenizers(self):
        return self.vocabularies

    def vocabulary_sizes(self) -> dict[str, int]:
        return {
            "source": len(self.tokenizers.source.vocab),
            "target": len(self.tokenizers.target.vocab),
        }

    def translate(
        self,
        sentences: str | Sequence[str],
        *,
        beam: int | None = None,
        n_best: int = 1,
        attention: bool | Sequence[bool] = False,
        length_penalty: float | None = None,
        time_limit: float | None = None,
        name: str = "input",
    ) -> list[Translation]:
        """Translate every sentence (one batched beam search; beam 1 is greedy; defaults from
        the run's ``decode`` section). ``attention`` (one for all, or one per sentence): also
        the best hypothesis' attention. Decoding ends after ``time_limit`` seconds, with the
        best hypotheses found by then."""
        sentences = [sentences] if isinstance(sentences, str) else list(sentences)
        decode = self.cfg.decode
        beam = self.beam(beam)
        if beam < 1 or not 1 <= n_best <= beam:
            raise UserError(f"translate: n_best must be between 1 and the beam size ({beam})")
        if length_penalty is not None:
            if length_penalty < 0:
                raise UserError("translate: length_penalty must be >= 0")
            decode = dataclasses.replace(decode, length_penalty=length_penalty)
        attention = per_input(attention, len(sentences), "attention")
        deadline = deadline_after(time_limit)
        sources = encode_sources(self.tokenizers.source, sentences, decode.max_source_length, name)
        results = translate_ids(
            self.engine, self.tokenizers, sources, decode, beam, n_best, deadline
        )
        translations = []
        for sentence, source, hypotheses, wanted in zip(
            sentences, sources, results, attention, strict=True
        ):
            hyps = [
                Hypothesis(self.tokenizers.target.decode(ids), score, ids)
                for ids, score in hypotheses
            ]
            matrix = self._attention(source, hyps[0].token_ids) if wanted and hyps else None
            translations.append(Translation(sentence, hyps, matrix))
        return translations

    def _attention(self, source: list[int], output: list[int]) -> AttentionMatrix:
        """The decoder's attention (T+1, S+1) producing ``output`` then ``<eos>`` from
        ``source`` + ``<eos>``, teacher-forced on the output."""
        source_vocab, target_vocab = self.tokenizers.source.vocab, self.tokenizers.target.vocab
        src = np.array([source + [source_vocab.eos_index]])  # (1, S+1)
        target_in = np.array([[target_vocab.bos_index] + output])  # (1, T+1)
        weights = self.engine.call("forward", src, np.array([src.shape[1]]), target_in)[1][0]
        return AttentionMatrix(
            self.engine.xp.to_numpy(weights).astype(float).tolist(),
            [source_vocab.itos[i] for i in src[0].tolist()],
            [target_vocab.itos[i] for i in output] + [target_vocab.itos[target_vocab.eos_index]],
        )

    def evaluate(
        self,
        split: str = "test",
        source: str | Path | None = None,
        reference: str | Path | None = None,
        beam: int | None = None,
    ) -> dict[str, Any]:
        """BLEU and chrF (sacrebleu, with signatures) on a split, or on a source file against a
        reference file (line-aligned)."""
        if (source is None) != (reference is None):
            raise UserError("evaluate: give both --src and --ref, or neither (then --split)")
        if source is not None:
            pairs, name = read_parallel(source, reference), str(source)
        else:
            splits = self.spec.trainer_side().read_data(self.cfg)
            if split not in splits:
                raise UserError(f"{self.path}: the run has no {split} data; pass --src and --ref")
            pairs, name = splits[split], split
        translations = self.translate([s for s, _ in pairs], beam=beam, name=name)
        return corpus_scores([t.text for t in translations], [t for _, t in pairs])
