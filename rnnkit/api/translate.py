"""A loaded translation model: ``translate`` (greedy or beam search, n-best with scores, the
attention matrix if asked) and ``evaluate`` (BLEU and chrF with sacrebleu)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.parallel import read_parallel
from ..errors import UserError
from ..tasks.translate import corpus_scores, encode_sources, read_data, translate_ids
from .base import LoadedRun, deadline_after, per_input


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


class TranslationRun(LoadedRun):
    """``rnnkit.load`` of a translate run."""

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
        beam = beam or decode.beam_size
        if beam < 1 or not 1 <= n_best <= beam:
            raise UserError(f"translate: n_best must be between 1 and the beam size ({beam})")
        if length_penalty is not None:
            if length_penalty < 0:
                raise UserError("translate: length_penalty must be >= 0")
            decode = dataclasses.replace(decode, length_penalty=length_penalty)
        attention = per_input(attention, len(sentences), "attention")
        deadline = deadline_after(time_limit)
        sources = encode_sources(self.tokenizers.source, sentences, decode.max_source_length, name)
        with torch.inference_mode():
            results = translate_ids(
                self.engine, self.tokenizers, sources, decode, self.device, beam, n_best, deadline
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
        src = torch.tensor([source + [source_vocab.eos_index]], device=self.device)  # (1, S+1)
        target_in = torch.tensor([[target_vocab.bos_index] + output], device=self.device)
        lengths = torch.tensor([src.shape[1]], device=self.device)
        weights = self.engine.attention(src, lengths, target_in)[0]  # (T+1, S+1)
        return AttentionMatrix(
            weights.float().cpu().tolist(),
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
            splits = read_data(self.cfg)
            if split not in splits:
                raise UserError(f"{self.path}: the run has no {split} data; pass --src and --ref")
            pairs, name = splits[split], split
        translations = self.translate([s for s, _ in pairs], beam=beam, name=name)
        return corpus_scores([t.text for t in translations], [t for _, t in pairs])
