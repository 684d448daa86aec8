"""Language modelling: text files -> tokenizer -> batches -> RNNLanguageModel, and back to text.

``LanguageModelTask`` is what the trainer trains (a model, a loss over numbered batches, a
validation score); ``evaluate`` scores any text; ``generate`` writes text from a prompt.
In stream mode the hidden state flows from one bptt window to the next, detached so that
the gradient stops at the window's start (truncated BPTT); that carried state is part of the
task's ``state_dict`` so that a resumed run continues exactly.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import Config
from ..distributed import SINGLE_PROCESS, Distributed
from ..embeddings import embedding_from_vectors
from ..errors import UserError
from ..lm_data import SentenceBatches, StreamBatches
from ..losses import token_cross_entropy
from ..models.language_model import RNNLanguageModel
from ..progress import progress
from ..search import beam_search, reorder_state, sample
from ..textio import read_text, split_lines
from ..tokenizers import Tokenizer, load_tokenizer, tokenizer_from_config

State = Tensor | tuple[Tensor, ...]


def detach_state(state: State | None) -> State | None:
    if state is None or isinstance(state, Tensor):
        return None if state is None else state.detach()
    return tuple(s.detach() for s in state)


def read_splits(cfg: Config) -> dict[str, str]:
    """The train/valid/test texts; without a valid file the last ``valid_fraction`` of train
    (cut at a character for char models, at a line otherwise) is held out for validation."""
    data = cfg.data
    if data.train is None:
        raise UserError("data.train: no training file given")
    if data.mode == "sentence" and data.tokenizer == "char":
        raise UserError(
            "data.mode: sentence mode needs data.tokenizer word or subword "
            "(a char vocabulary has no <bos>/<eos>; use stream mode)"
        )
    texts = {"train": read_text(data.train)}
    if data.valid is not None:
        texts["valid"] = read_text(data.valid)
    else:
        train = texts["train"]
        if data.tokenizer == "char":
            cut = int(len(train) * (1 - data.valid_fraction))
            texts["train"], texts["valid"] = train[:cut], train[cut:]
        else:
            lines = split_lines(train)
            cut = int(len(lines) * (1 - data.valid_fraction))
            texts["train"], texts["valid"] = "\n".join(lines[:cut]), "\n".join(lines[cut:])
        if not texts["valid"].strip() or not texts["train"].strip():
            raise UserError(
                f"{data.train}: too short to hold out {data.valid_fraction:.0%} for validation"
            )
    if data.test is not None:
        texts["test"] = read_text(data.test)
    return texts


def new_tokenizer(cfg: Config, train_text: str) -> Tokenizer:
    return tokenizer_from_config(cfg.data, train_text)


def new_model(cfg: Config, tokenizer: Tokenizer) -> RNNLanguageModel:
    vocab = tokenizer.vocab
    model = RNNLanguageModel(len(vocab), cfg.model, vocab.pad_index)
    # With tie_weights the output layer shares this Parameter, so it takes the vectors too.
    embedding_from_vectors(
        model.embedding, cfg.model.pretrained_embeddings, vocab, cfg.model.freeze_embeddings
    )
    return model


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
                ids = torch.tensor(self.tokenizer.encode_corpus(text), dtype=torch.long)
                rows = min(data.eval_batch_size, max(1, (ids.numel() - 1) // 2))
                self._eval_batches[text] = StreamBatches(ids, rows, data.bptt)
            else:
                vocab = self.tokenizer.vocab
                lines = [self.tokenizer.encode(line) for line in split_lines(text)]
                self._eval_batches[text] = SentenceBatches(
                    lines,
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
        was_training = self.model.training
        self.model.eval()
        batches = self.eval_batches(text)
        total, count = 0.0, 0
        state = None
        for k in progress(range(len(batches)), desc="score"):
            inputs, targets, lengths = (
                t if t is None else t.to(self.device) for t in batches.batch(0, k)
            )
            logits, state = self.model(inputs, state if lengths is None else None, lengths=lengths)
            loss, n = self.token_loss(logits, targets)
            total, count = total + loss.item(), count + n
        self.model.train(was_training)
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
            ids = torch.tensor(tokenizer.encode_corpus(texts["train"]), dtype=torch.long)
            self.train = StreamBatches(ids, data.batch_size, data.bptt, env.rank, env.world_size)
        else:
            lines = [tokenizer.encode(line) for line in split_lines(texts["train"])]
            self.train = SentenceBatches(
                lines,
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


def start_tokens(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """The prompt's ids; an empty prompt starts where a text starts: after a newline (char)
    or an end of sentence (word, subword)."""
    if prompt:
        ids = tokenizer.encode(prompt)
        if ids:
            return ids
    vocab = tokenizer.vocab
    return [vocab.index("\n")] if tokenizer.kind == "char" and "\n" in vocab else [vocab.eos_index]


@torch.no_grad()
def generate(
    model: RNNLanguageModel,
    tokenizer: Tokenizer,
    prompt: str = "",
    *,
    max_tokens: int = 200,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    beam: int = 1,
    num_samples: int = 1,
    seed: int | None = None,
    stop_at_eos: bool = False,
) -> list[str]:
    """Continue ``prompt``: the prompt is read once, then each step feeds only the new token with
    the carried state (incremental). ``beam > 1`` returns the ``num_samples`` best beams;
    otherwise ``num_samples`` samples (temperature 0: greedy)."""
    model.eval()
    device = next(model.parameters()).device
    ids = torch.tensor([start_tokens(tokenizer, prompt)], device=device)  # (1, T)
    logits, state = model(ids)

    def step(tokens: Tensor, state: State) -> tuple[Tensor, State]:
        logits, state = model(tokens.unsqueeze(1), state)  # (N, 1, V)
        return logits[:, -1], state

    eos = tokenizer.vocab.eos_index if stop_at_eos else None
    first = logits[:, -1]  # (1, V)
    if beam > 1:
        hypotheses = beam_search(
            step, first, state, beam, max_tokens, eos=eos, n_best=min(num_samples, beam)
        )[0]
        outputs = [tokens for tokens, _ in hypotheses]
    else:
        generator = torch.Generator(device=device)
        generator.manual_seed(seed if seed is not None else torch.seed())
        expand = torch.zeros(num_samples, dtype=torch.long, device=device)
        outputs = sample(
            step,
            first.expand(num_samples, -1),
            reorder_state(state, expand),
            max_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            eos=eos,
            generator=generator,
        )
    return [
        prompt + ("" if tokenizer.kind == "char" or not prompt else " ") + tokenizer.decode(out)
        for out in outputs
    ]


# -- what ``training.py`` asks of every task (``tasks/translate.py`` has the same functions) ----
read_data = read_splits
save_tokenizers = Tokenizer.save
load_tokenizers = load_tokenizer


def new_tokenizers(cfg: Config, data: dict[str, str]) -> Tokenizer:
    return new_tokenizer(cfg, data["train"])


def new_task(
    cfg: Config, tokenizer: Tokenizer, data: dict[str, str], device: torch.device, env: Distributed
) -> LanguageModelTask:
    return LanguageModelTask(cfg, tokenizer, new_model(cfg, tokenizer), data, device, env)


def test_metrics(task: LanguageModelTask, data: dict[str, str]) -> dict[str, float]:
    return task.score(data["test"])


def diagnostic_batch(
    cfg: Config, tokenizer: Tokenizer, data: dict[str, str], size: int
) -> tuple[Tensor, Tensor]:
    """The first ``size`` bptt windows of the validation text (inputs, targets), each (size, bptt):
    the batch ``rnnkit diagnose gradients`` differentiates."""
    ids = torch.tensor(tokenizer.encode_corpus(data["valid"]), dtype=torch.long)
    rows = max(1, min(size, (ids.numel() - 1) // (cfg.data.bptt + 1)))
    inputs, targets, _ = StreamBatches(ids, rows, cfg.data.bptt).batch(0, 0)
    return inputs, targets


def last_step_loss(model: RNNLanguageModel, batch: tuple[Tensor, Tensor]) -> Tensor:
    """L_T: the cross-entropy of the prediction after the window's last token."""
    inputs, targets = batch
    logits, _ = model(inputs)  # (B, T, V)
    return F.cross_entropy(logits[:, -1], targets[:, -1])
