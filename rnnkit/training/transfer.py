"""Transfer from a language model (Dai & Le 2015; Howard & Ruder 2018, ULMFiT).

A trained LM run's embedding and recurrent stack start a classifier's, a tagger's, or a
translator's encoder and decoder:

- ``model.init_from: RUN`` (classify, tag): the embedding and the forward direction of the
  recurrent stack; ``model.init_from_backward: RUN``, an LM trained with
  ``data.reverse_text: true``, fills the backward direction of a bidirectional stack;
- ``model.encoder_init_from`` / ``model.decoder_init_from`` (translate): the encoder from a
  source-language LM, the decoder from a target-language LM.

What is copied, for each target (an embedding and a recurrent stack, ``TransferTarget``):

- **embedding rows, matched by token string**: row i of the target's vocabulary takes the LM's
  row for the same token; tokens the LM does not know keep their own initialisation, and one
  line reports the counts;
- **recurrent layers** 0..min(L, L_lm)-1 of the direction: W_ih, W_hh, b_ih, b_hh and the
  peephole weights. Layer 0's W_ih may read more inputs than the embedding (a tagger's char
  features, a decoder's input feeding h~_{t-1}): the first E columns take the LM's W_ih, the
  others keep their own initialisation, having no counterpart in an LM.

The cell (and its variant: peephole, reset, nonlinearity), the embedding size and the hidden
size must agree; anything that does not fit is a one-line error naming the key and the run.

Training the transferred parts (``parameter_groups``): the embedding and the recurrent layers
of every target are the *encoder*, everything else the *head*. ``model.freeze_encoder`` keeps
the encoder fixed; ``train.discriminative_lr: f`` trains the top encoder layer at lr / f and
each lower one at a further / f (ULMFiT's 2.6); ``train.gradual_unfreezing`` trains only the
head in epoch 1 and unfreezes one more encoder layer, top down, in each epoch after it.

Pretraining text is unlabelled training text only: an LM run whose train or valid file is this
run's valid or test file is refused (``check_pretraining_text``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnkit.config import Config
from rnnkit.data.tokenizers import Vocabulary
from rnnkit.errors import UserError

FORWARD, BACKWARD = "forward", "backward"  # the directions of a stack an LM run can fill


@dataclasses.dataclass
class TransferTarget:
    """One embedding and recurrent stack of a task model that an LM run may fill: ``sources``
    maps a direction (forward | backward) to (config key, LM run path)."""

    name: str  # how the report names it ("encoder", "decoder", "")
    embedding: nn.Embedding
    rnn: nn.Module
    vocabulary: Vocabulary
    sources: dict[str, tuple[str, str]]


def encoder_target(cfg: Config, model: nn.Module, vocabulary: Vocabulary) -> TransferTarget:
    """A classifier's or tagger's ``embedding`` and ``rnn``, from ``model.init_from`` (and
    ``model.init_from_backward``)."""
    sources = {
        direction: (f"model.{key}", path)
        for direction, key in ((FORWARD, "init_from"), (BACKWARD, "init_from_backward"))
        if (path := getattr(cfg.model, key)) is not None
    }
    return TransferTarget("", model.embedding, model.rnn, vocabulary, sources)


@dataclasses.dataclass
class LanguageModelSource:
    """What transfer reads of an LM run: its config, vocabulary and weights (opened by the
    caller's ``open_lm(key, path)``, which reads the run through the task registry)."""

    path: Path
    cfg: Config
    vocabulary: Vocabulary
    state: dict[str, torch.Tensor]


def same_text(a: str | None, b: str | None) -> bool:
    """Whether two data files are one: the same path, or the same bytes (a copy)."""
    if a is None or b is None or not Path(a).is_file() or not Path(b).is_file():
        return False
    a_path, b_path = Path(a), Path(b)
    if a_path.resolve() == b_path.resolve():
        return True
    return (
        a_path.stat().st_size == b_path.stat().st_size
        and a_path.read_bytes() == b_path.read_bytes()
    )


def check_pretraining_text(key: str, lm: LanguageModelSource, cfg: Config) -> None:
    """Dev and test text never enter pretraining: the LM's train, valid and extra_text files must
    not be this run's valid or test file, nor a copy of one."""
    lm_data = lm.cfg.data
    pretraining = [("data.train", lm_data.train), ("data.valid", lm_data.valid)] + [
        ("data.extra_text", path) for path in lm_data.extra_text or []
    ]
    for lm_key, path in pretraining:
        for split in ("valid", "test"):
            if same_text(path, getattr(cfg.data, split)):
                raise UserError(
                    f"{key}: {lm.path} was trained on {path} (its {lm_key}), which is this "
                    f"run's data.{split}: dev and test text must never enter pretraining"
                )


# model.cell -> the variant keys that change what its weights mean
VARIANT_KEYS = {"rnn": ("nonlinearity",), "lstm": ("peephole",), "gru": ("reset", "gate")}


def check_fit(
    key: str, lm: LanguageModelSource, target: TransferTarget, direction: str, cfg: Config
) -> None:
    """The LM's cell, variant, sizes and reading direction must fit the target's stack."""
    rnn, wanted_reverse = target.rnn, direction == BACKWARD
    if lm.cfg.data.reverse_text != wanted_reverse:
        raise UserError(
            f"{key}: {lm.path} was trained with data.reverse_text "
            f"{str(lm.cfg.data.reverse_text).lower()}; the {direction} direction needs "
            f"{str(wanted_reverse).lower()}"
        )
    if wanted_reverse and not rnn.bidirectional:
        raise UserError(f"{key}: the {target.name or 'model'}'s stack is not bidirectional")
    keys = ("cell", *VARIANT_KEYS[cfg.model.cell])
    checks = [(f"model.{k}", getattr(lm.cfg.model, k), getattr(cfg.model, k)) for k in keys]
    checks += [
        ("model.embedding_size", lm.cfg.model.embedding_size, target.embedding.embedding_dim),
        ("a hidden size of", lm.cfg.model.hidden_size, rnn.hidden_size),
    ]
    for what, theirs, ours in checks:
        if theirs != ours:
            raise UserError(
                f"{key}: {lm.path} has {what} {theirs}, the {target.name or 'model'} here "
                f"{ours}; they must agree"
            )


def copy_embedding(lm: LanguageModelSource, target: TransferTarget) -> tuple[int, int]:
    """Rows of the target's embedding that the LM's vocabulary has, by token string.
    -> (matched, total)."""
    source = lm.state["embedding.weight"]  # (V_lm, E)
    weight = target.embedding.weight  # (V, E)
    rows = [(i, lm.vocabulary.stoi[t]) for i, t in enumerate(target.vocabulary.itos)
            if t in lm.vocabulary.stoi]  # fmt: skip
    if rows:
        ours, theirs = (torch.tensor(r) for r in zip(*rows, strict=True))
        weight[ours] = source[theirs].to(weight.dtype)
    return len(rows), weight.shape[0]


def copy_layers(key: str, lm: LanguageModelSource, target: TransferTarget, direction: str) -> int:
    """Layers 0..min(L, L_lm)-1 of one direction; -> how many were filled."""
    rnn = target.rnn
    layers = min(rnn.num_layers, lm.cfg.model.num_layers)
    suffix = "_reverse" if direction == BACKWARD else ""
    params = dict(rnn.named_parameters())
    for layer in range(layers):
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_ch"):
            ours = params.get(f"{kind}_l{layer}{suffix}")
            theirs = lm.state.get(f"rnn.{kind}_l{layer}")
            if ours is None and theirs is None:
                continue
            if ours is None or theirs is None:
                raise UserError(f"{key}: {lm.path}'s layer {layer} has a different cell")
            if kind == "weight_ih" and layer == 0 and ours.shape[1] > theirs.shape[1]:
                ours = ours[:, : theirs.shape[1]]  # extra inputs keep their own initialisation
            if ours.shape != theirs.shape:
                raise UserError(
                    f"{key}: layer {layer}'s {kind} is {tuple(ours.shape)} here and "
                    f"{tuple(theirs.shape)} in {lm.path} (a bidirectional stack's layers above "
                    "the first read both directions; transfer needs model.num_layers 1 there, or "
                    "a unidirectional stack)"
                )
            ours.copy_(theirs.to(ours.dtype))
    return layers


@torch.no_grad()
def transfer_from_lms(
    cfg: Config,
    targets: list[TransferTarget],
    open_lm: Callable[[str, str], LanguageModelSource],
    report: Callable[[str], Any] = print,
) -> None:
    """Fill every target from the LM runs its ``sources`` name (``open_lm(key, path)``),
    reporting each in one line. Called once, when a fresh run starts (a resumed run has its
    own weights)."""
    for target in targets:
        if FORWARD not in target.sources and BACKWARD in target.sources:
            key, _ = target.sources[BACKWARD]
            raise UserError(f"{key}: a backward LM needs a forward one too (model.init_from)")
        for direction, (key, path) in target.sources.items():
            lm = open_lm(key, path)
            check_pretraining_text(key, lm, cfg)
            check_fit(key, lm, target, direction, cfg)
            matched, total = copy_embedding(lm, target) if direction == FORWARD else (0, 0)
            layers = copy_layers(key, lm, target, direction)
            rows = (
                f"embedding rows {matched:,} of {total:,} matched by token "
                f"({total - matched:,} keep their own initialisation), "
                if direction == FORWARD
                else ""
            )
            filled = "recurrent layer 0" if layers == 1 else f"recurrent layers 0-{layers - 1}"
            report(f"{key} {path}: {rows}{filled} ({direction}) filled")
        if (
            target.rnn.bidirectional
            and FORWARD in target.sources
            and BACKWARD not in target.sources
        ):
            key, _ = target.sources[FORWARD]
            report(
                f"{key}: only the forward direction was filled; the backward one keeps its own "
                "initialisation (give a backward LM as model.init_from_backward)"
            )


def encoder_layers(targets: list[TransferTarget]) -> list[list[nn.Parameter]]:
    """The encoder's parameters, one list per depth from the top: [top recurrent layers of
    every target, ..., layer 0, embeddings]."""
    depth = max((t.rnn.num_layers for t in targets), default=0)
    groups: list[list[nn.Parameter]] = [[] for _ in range(depth + 1)]
    for target in targets:
        for name, p in target.rnn.named_parameters():
            layer = int(name.split("_l")[1].split("_")[0])
            groups[target.rnn.num_layers - 1 - layer].append(p)
        groups[depth].append(target.embedding.weight)
    return [g for g in groups if g]


def parameter_groups(
    model: nn.Module, targets: list[TransferTarget], cfg: Config
) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: the head at lr, then each encoder depth (top first)
    with its ``lr_scale`` (1 / discriminative_lr per depth) and the epoch from which it trains
    (``unfreeze_epoch``, 0-based: depth d + 1 with gradual unfreezing). A frozen encoder
    (``model.freeze_encoder``) is left out."""
    targets = [t for t in targets if t.sources]
    if not targets:
        for key, value in (
            ("model.freeze_encoder", cfg.model.freeze_encoder),
            ("train.discriminative_lr", cfg.train.discriminative_lr),
            ("train.gradual_unfreezing", cfg.train.gradual_unfreezing),
        ):
            if value:
                raise UserError(f"{key} is for a model transferred from an LM: set "
                                "model.init_from (translate: model.encoder_init_from)")  # fmt: skip
    encoder = encoder_layers(targets)
    in_encoder = {id(p) for g in encoder for p in g}
    head = [p for p in model.parameters() if p.requires_grad and id(p) not in in_encoder]
    groups = [{"params": head, "lr_scale": 1.0, "unfreeze_epoch": 0}]
    if cfg.model.freeze_encoder:
        for p in (p for g in encoder for p in g):
            p.requires_grad_(False)
        return groups
    factor = cfg.train.discriminative_lr or 1.0
    for depth, params in enumerate(encoder):
        params = [p for p in params if p.requires_grad]  # frozen embeddings stay frozen
        if params:
            groups.append({
                "params": params,
                "lr_scale": factor ** -(depth + 1),
                "unfreeze_epoch": depth + 1 if cfg.train.gradual_unfreezing else 0,
            })  # fmt: skip
    return groups
