"""A loaded language model: ``generate`` (sampling or beam search), ``generate_stream`` (the
same tokens, step by step), ``score`` (loss and perplexity of texts) and ``evaluate``.

Many prompts run as one batch: each prompt is read once (padded, with its length), then
``num_samples`` rows per prompt continue it one token per step with the carried state. The
sampling settings and the seed may be given per prompt; each row draws from its own
generator, seeded from (seed, sample index), so a seeded row writes the same text alone as in
any batch.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.data.padding import pad_array
from rnnkit.data.tokenizers import Tokenizer, load_tokenizer
from rnnkit.decoding.arrays import Array
from rnnkit.decoding.search import Sampling, beam_search, past, reorder_state, sample_stream
from rnnkit.errors import UserError
from rnnkit.progress import progress
from rnnkit.tasks.loaded import LoadedRun, deadline_after, per_input
from rnnkit.textio import read_text

FINISH_REASONS = {
    "length": "max_new_tokens reached",
    "eos": "the model ended the text (stop_at_eos)",
    "time": "the time limit passed",
    "stop": "the caller stopped the row (generate_stream's stop)",
}


@dataclass
class Generation:
    """One generated text: ``text`` is the prompt and its continuation ``completion``, as
    ``rnnkit generate`` prints it; ``score`` is the beam's length-normalised log-probability."""

    prompt: str
    text: str
    completion: str
    token_ids: list[int]
    finish_reason: str  # see FINISH_REASONS
    prompt_index: int = 0
    sample_index: int = 0
    score: float | None = None


@dataclass
class GenerationStep:
    """One step of ``generate_stream``, for every row (prompt-major: prompt i, sample j is row
    i * num_samples + j): the token each row drew (None once the row has ended), the text it
    adds, and the finish reason of the rows that end at this step."""

    step: int
    token_ids: list[int | None]
    texts: list[str]
    finish_reasons: list[str | None]


@dataclass
class TextScore:
    """A text's mean loss per token (nats) under the model, its perplexity, its token count."""

    text: str
    loss: float
    ppl: float
    tokens: int


def row_generator(seed: int | None, sample: int) -> np.random.Generator:
    """The generator of sample ``sample`` of a prompt: numpy's, seeded with the seed itself for
    sample 0 and with the SeedSequence of (seed, sample) for the others; unseeded: fresh."""
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng(seed if sample == 0 else [seed, sample])


def start_tokens(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """The prompt's ids; an empty prompt starts where a text starts: after a newline (char)
    or an end of sentence (word, subword)."""
    if prompt:
        ids = tokenizer.encode(prompt)
        if ids:
            return ids
    vocab = tokenizer.vocab
    return [vocab.index("\n")] if tokenizer.kind == "char" and "\n" in vocab else [vocab.eos_index]


class LanguageModelGraphs:
    """An export's ``lm`` graph standing in for ``RNNLanguageModel.forward``: tokens (B, T),
    the state (zeros when None) and lengths (B,) (all T when None) -> logits (B, T, V), state."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def forward(self, tokens: np.ndarray, state: Any, lengths: np.ndarray | None = None):
        batch, steps = tokens.shape
        names = self.engine.state_names("lm")
        if state is None:
            shape = self.engine.state_shape("lm", batch)
            state = tuple(np.zeros(shape, np.float32) for _ in names)
        parts = state if isinstance(state, tuple) else (state,)
        if lengths is None:
            lengths = np.full((batch,), steps, dtype=np.int64)
        out = self.engine.run(
            "lm", tokens=tokens, lengths=lengths, **dict(zip(names, parts, strict=True))
        )
        new = tuple(out[n + "_out"] for n in names)
        return out["logits"], new if len(new) > 1 else new[0]


class LanguageModelRun(LoadedRun):
    """``rnnkit.load`` of an lm run."""

    graphs = LanguageModelGraphs

    @staticmethod
    def load_vocabularies(directory: Path) -> Tokenizer:
        return load_tokenizer(directory)

    @property
    def tokenizer(self):
        return self.vocabularies

    def vocabulary_sizes(self) -> dict[str, int]:
        return {"tokens": len(self.tokenizer.vocab)}

    def join(self, prompt: str, completion: str) -> str:
        """The text a prompt and its completion make (a space between words, none for chars)."""
        space = "" if self.tokenizer.kind == "char" or not prompt or not completion else " "
        return prompt + space + completion

    def _read_prompts(self, prompts: Sequence[str]) -> tuple[Array, Any]:
        """Every prompt read once, as one padded batch: the logits after each prompt's last
        token (P, V) and the state there (P rows)."""
        ids = [start_tokens(self.tokenizer, p) for p in prompts]
        lengths = np.array([len(x) for x in ids])
        tokens = pad_array(ids, self.tokenizer.vocab.pad_index)
        logits, state = self.engine.call("forward", tokens, None, lengths=lengths)  # (P, T, V)
        xp = self.engine.xp
        return logits[xp.arange(len(ids)), xp.asarray(lengths - 1)], state

    def _step(self, tokens: Array, state: Any) -> tuple[Array, Any]:
        logits, state = self.engine.call("forward", tokens[:, None], state)  # (N, 1, V)
        return logits[:, -1], state

    def _check(self, prompts: Sequence[str], num_samples: int, beam: int) -> list[str]:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise UserError("generate: no prompt given")
        if num_samples < 1 or beam < 1:
            raise UserError("generate: num_samples and beam must be >= 1")
        return prompts

    def generate_stream(
        self,
        prompts: str | Sequence[str],
        *,
        max_new_tokens: int | Sequence[int] = 200,
        temperature: float | Sequence[float] = 1.0,
        top_k: int | Sequence[int] = 0,
        top_p: float | Sequence[float] = 1.0,
        seed: int | None | Sequence[int | None] = None,
        num_samples: int = 1,
        stop_at_eos: bool = False,
        time_limit: float | None = None,
        stop: Container[int] = (),
    ) -> Iterator[GenerationStep]:
        """Sample ``num_samples`` continuations of every prompt, yielding each step's new
        tokens for every row (see ``GenerationStep``). Settings are one value or one per
        prompt; temperature 0 is greedy. Every row ends after ``time_limit`` seconds; a row
        whose index the caller adds to ``stop`` ends at the next step and leaves the batch."""
        prompts = self._check(prompts, num_samples, 1)
        settings = {
            name: per_input(value, len(prompts), name)
            for name, value in (
                ("max_new_tokens", max_new_tokens),
                ("temperature", temperature),
                ("top_k", top_k),
                ("top_p", top_p),
                ("seed", seed),
            )
        }
        try:
            rows = [
                Sampling(
                    settings["temperature"][i],
                    settings["top_k"][i],
                    settings["top_p"][i],
                    row_generator(settings["seed"][i], j),
                )
                for i in range(len(prompts))
                for j in range(num_samples)
            ]
        except (TypeError, ValueError) as e:  # a seed numpy cannot take
            raise UserError(f"seed: {e}") from None
        limits = [m for m in settings["max_new_tokens"] for _ in range(num_samples)]
        if min(limits) < 1:
            raise UserError("max_new_tokens: must be >= 1")
        eos = self.tokenizer.vocab.eos_index if stop_at_eos else None
        deadline = deadline_after(time_limit)
        xp = self.engine.xp
        first, state = self._read_prompts(prompts)
        expand = xp.repeat(xp.arange(len(prompts)), num_samples)
        first, state = first[expand], reorder_state(state, expand)
        ids: list[list[int]] = [[] for _ in rows]
        texts = ["" for _ in rows]
        # decode(ids) = done[r] + decode(ids[r][start[r]:]): only the text after the last
        # place where it splits (decode_splits_after) is decoded again at each step.
        done, start = ["" for _ in rows], [0 for _ in rows]
        try:
            steps = sample_stream(
                self._step, first, state, limits, rows, eos, stop=stop, deadline=deadline
            )
            for t, (tokens, alive, ended) in enumerate(steps):
                step = GenerationStep(t, [None] * len(rows), [""] * len(rows), [None] * len(rows))
                for r in xp.nonzero(alive).tolist():
                    token = int(tokens[r])
                    step.token_ids[r] = token
                    if token == eos:
                        step.finish_reasons[r] = "eos"
                        continue
                    ids[r].append(token)
                    text = done[r] + self.tokenizer.decode(ids[r][start[r] :])
                    if self.tokenizer.decode_splits_after(token):
                        done[r], start[r] = text, len(ids[r])
                    step.texts[r], texts[r] = text[len(texts[r]) :], text
                    if ended[r]:
                        early = "stop" if r in stop else "time"
                        step.finish_reasons[r] = "length" if len(ids[r]) >= limits[r] else early
                yield step
        except ValueError as e:  # a sampling setting out of range
            raise UserError(f"generate: {e}") from None

    def generate(
        self,
        prompts: str | Sequence[str],
        *,
        max_new_tokens: int | Sequence[int] = 200,
        temperature: float | Sequence[float] = 1.0,
        top_k: int | Sequence[int] = 0,
        top_p: float | Sequence[float] = 1.0,
        seed: int | None | Sequence[int | None] = None,
        num_samples: int = 1,
        beam: int = 1,
        stop_at_eos: bool = False,
        time_limit: float | None = None,
    ) -> list[Generation]:
        """Continue every prompt: ``num_samples`` samples each, or with ``beam > 1`` the
        ``num_samples`` best beams (beam search ignores the sampling settings). Returns one
        ``Generation`` per row, prompt-major. Decoding stops after ``time_limit`` seconds
        (finish reason "time")."""
        prompts = self._check(prompts, num_samples, beam)
        if beam > 1:
            return self._beam(prompts, max_new_tokens, num_samples, beam, stop_at_eos, time_limit)
        finish: dict[int, str] = {}
        ids: dict[int, list[int]] = {}
        steps = self.generate_stream(
            prompts,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            num_samples=num_samples,
            stop_at_eos=stop_at_eos,
            time_limit=time_limit,
        )
        longest = max(per_input(max_new_tokens, len(prompts), "max_new_tokens"))
        for step in progress(steps, total=longest, desc="generate"):
            for r, token in enumerate(step.token_ids):
                if token is not None and step.finish_reasons[r] != "eos":
                    ids.setdefault(r, []).append(token)
                if step.finish_reasons[r]:
                    finish[r] = step.finish_reasons[r]
        return [
            self._generation(prompts, r, num_samples, ids.get(r, []), finish.get(r, "length"))
            for r in range(len(prompts) * num_samples)
        ]

    def _generation(
        self,
        prompts: list[str],
        row: int,
        num_samples: int,
        ids: list[int],
        finish_reason: str,
        score: float | None = None,
    ) -> Generation:
        prompt = prompts[row // num_samples]
        completion = self.tokenizer.decode(ids)
        return Generation(
            prompt,
            self.join(prompt, completion),
            completion,
            ids,
            finish_reason,
            row // num_samples,
            row % num_samples,
            score,
        )

    def _beam(
        self,
        prompts: list[str],
        max_new_tokens: int | Sequence[int],
        num_samples: int,
        beam: int,
        stop_at_eos: bool,
        time_limit: float | None,
    ) -> list[Generation]:
        limits = per_input(max_new_tokens, len(prompts), "max_new_tokens")
        n_best = min(num_samples, beam)
        eos = self.tokenizer.vocab.eos_index if stop_at_eos else None
        deadline = deadline_after(time_limit)
        first, state = self._read_prompts(prompts)
        beams = beam_search(
            self._step, first, state, beam, limits, eos=eos, n_best=n_best, deadline=deadline
        )
        ended_early = "eos" if eos is not None and not past(deadline) else "time"
        results = []
        for i, hypotheses in enumerate(beams):
            for j, (ids, score) in enumerate(hypotheses):
                reason = "length" if len(ids) >= limits[i] else ended_early
                results.append(
                    self._generation(prompts, i * n_best + j, n_best, ids, reason, score)
                )
        return results

    def score(self, texts: str | Sequence[str]) -> list[TextScore]:
        """Each text's loss and perplexity: -1/N sum_t log p(x_t | x_<t) over its N tokens,
        read from where a text starts (``start_tokens``), one padded batch."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        vocab = self.tokenizer.vocab
        ids = [start_tokens(self.tokenizer, "") + self.tokenizer.encode_corpus(t) for t in texts]
        if any(len(x) < 2 for x in ids):
            raise UserError("score: a text has no token to score")
        lengths = np.array([len(x) - 1 for x in ids])
        inputs = pad_array([x[:-1] for x in ids], vocab.pad_index)  # (B, T)
        targets = pad_array([x[1:] for x in ids], vocab.pad_index)  # (B, T)
        real = np.arange(targets.shape[1]) < lengths[:, None]  # (B, T): not padding
        logits, _ = self.engine.call("forward", inputs, None, lengths=lengths)  # (B, T, V)
        xp = self.engine.xp
        picked = xp.take_along(xp.log_softmax(logits), xp.asarray(targets)[..., None])[..., 0]
        losses = -xp.where(xp.asarray(~real, "bool"), 0.0, picked).sum(1)  # (B,)
        scores = []
        for text, total, n in zip(texts, losses.tolist(), lengths.tolist(), strict=True):
            scores.append(TextScore(text, total / n, math.exp(min(total / n, 50)), n))
        return scores

    def evaluate(self, split: str = "test", data: str | None = None) -> dict[str, float]:
        """Loss, perplexity (and bits per character) on a split of the run's data or a file."""
        if data is not None:
            text = read_text(data)
        elif split == "valid":
            text = self.spec.trainer_side().read_data(self.cfg)["valid"]
        elif self.cfg.data.test is None:
            raise UserError(f"{self.path}: the run has no test file; pass --data FILE")
        else:
            text = read_text(self.cfg.data.test)
        if not hasattr(self.engine, "model"):
            raise UserError(f"{self.path}: evaluate reads a corpus with the PyTorch run; an "
                            "export scores texts (score) and generates")  # fmt: skip
        scorer = self.spec.trainer_side().scorer(self.cfg, self.tokenizer, self.engine.model)
        return scorer.score(text)
