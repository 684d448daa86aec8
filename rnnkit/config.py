"""The run configuration: one YAML file, every key overridable on the command line.

A config is a tree of dataclasses (``Config`` at the root: ``data``, ``model``, ``train``
sections). ``load_config(path, overrides)`` reads the YAML, applies ``section.key=value``
overrides (values parsed as YAML: ``train.lr=0.5``, ``model.cell=gru``, ``data.max_size=null``),
checks every key and type, and fails with a one-line ``UserError`` naming the file and the key,
with a suggestion for a mistyped one::

    configs/ptb-small.yaml: unknown key 'train.lr_decya' (did you mean 'train.lr_decay'?)
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError


@dataclass
class DataConfig:
    """Where the text is and how it becomes batches."""

    train: str | None = None  # training file (or the whole corpus with valid_fraction)
    valid: str | None = None
    test: str | None = None
    valid_fraction: float = 0.1  # without a valid file: the last fraction of train validates
    tokenizer: str = "word"  # char | word | subword
    max_size: int | None = None  # vocabulary size, specials included (word, char)
    min_freq: int = 1
    lowercase: bool = False  # word
    normalize: bool = False  # word: Unicode NFKC before splitting
    vocab_size: int = 8000  # subword (sentencepiece) vocabulary
    subword_model: str = "unigram"  # unigram | bpe
    mode: str = "stream"  # stream: truncated BPTT over one token stream; sentence: padded lines
    bptt: int = 35  # stream mode: window length
    batch_size: int = 20
    eval_batch_size: int = 10
    # translate: a split is the pair of files PATH.SOURCE_SUFFIX / PATH.TARGET_SUFFIX, or, without
    # suffixes, one TSV file whose first two columns are (source, target) (swapped by reverse).
    source_suffix: str | None = None
    target_suffix: str | None = None
    reverse: bool = False
    synthetic: str | None = None  # "reverse": the reverse-the-sequence task, generated (no files)
    max_length: int | None = 100  # translate: longer training pairs are filtered out (counted)
    batch_tokens: int | None = None  # translate: a token budget per batch instead of batch_size
    joint_vocabulary: bool = False  # translate: one vocabulary for source and target
    # adding / copy: generated sequences of length T (the copy task's are T + 20 long); each
    # epoch draws train_size fresh ones, valid_size and test_size are fixed held-out sets.
    sequence_length: int = 100
    train_size: int = 10000
    valid_size: int = 1000
    test_size: int = 1000
    # classify / tag: the file format (auto: .csv -> csv, .conllu -> conllu, otherwise label_text
    # for classify and token_tag for tag), the CSV columns and the CoNLL-U tag column.
    format: str = "auto"  # auto | label_text | csv | conllu | token_tag
    label_column: str = "label"  # csv
    text_column: str = "text"  # csv
    tag_column: str = "upos"  # conllu: upos (column 4) | xpos (column 5)


@dataclass
class ModelConfig:
    """Embedding -> stacked rnnkit.nn layer -> dropout -> output layer."""

    cell: str = "lstm"  # rnn | lstm | gru
    nonlinearity: str = "tanh"  # rnn: tanh | relu
    peephole: bool = False  # lstm
    forget_bias: float | None = None  # lstm
    reset: str = "after"  # gru: after | before
    gate: str = "sigmoid"  # gru: sigmoid | hard_sigmoid
    fused: bool | None = None
    embedding_size: int = 200
    hidden_size: int = 200
    num_layers: int = 2
    dropout: float = 0.0  # on non-recurrent connections (Zaremba et al. 2014)
    embedding_dropout: float = 0.0  # drops whole word types (Gal & Ghahramani 2016)
    tie_weights: bool = False
    init_range: float | None = 0.1  # uniform(-r, r) for every weight; null keeps torch's init
    pretrained_embeddings: str | None = None  # word2vec/GloVe text file
    freeze_embeddings: bool = False
    # translate: the encoder (hidden size per direction; null: hidden_size) and the decoder
    bidirectional: bool = False
    encoder_hidden_size: int | None = None
    bridge: str = "linear"  # zero | last | linear (+tanh): encoder final state -> decoder's first
    attention: str = "general"  # none | dot | general | concat | additive
    attention_size: int | None = (
        None  # concat / additive; classify attention pooling (null: hidden_size)
    )
    input_feeding: bool = True  # the attentional vector h~_{t-1} joins the next decoder input
    # adding / copy: W_hh at initialisation (each gate's block): torch's uniform, a random
    # orthogonal matrix or the identity (Le et al. 2015), times recurrent_gain (its spectral radius
    # for orthogonal and identity).
    recurrent_init: str = "default"  # default | orthogonal | identity
    recurrent_gain: float = 1.0
    # classify: encoder outputs h_1..h_T -> one vector (attention: a_t = softmax(v . tanh(W h_t)))
    pooling: str = "last"  # last | mean | max | attention
    # tag: a bidirectional char RNN per word, its final states joined to the word embedding
    char_features: bool = False
    char_embedding_size: int = 50
    char_hidden_size: int = 50  # per direction


@dataclass
class TrainConfig:
    """Optimisation, schedule, precision and bookkeeping; the trainer reads only this."""

    epochs: int = 10
    max_steps: int | None = None  # stop after this many optimizer steps
    optimizer: str = (
        "sgd"  # sgd | momentum | nesterov | adagrad | adadelta | rmsprop | adam | adamw
    )
    lr: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 0.0
    clip_norm: float | None = 5.0
    clip_value: float | None = None
    lr_schedule: str = "none"  # none | epoch_decay | plateau
    lr_decay: float = 0.5
    decay_start: int = 4  # epoch_decay: multiply by lr_decay after each epoch from this one on
    plateau_patience: int = 0
    warmup_steps: int = 0
    early_stopping: int | None = None  # stop after this many epochs without a better valid loss
    target_score: float | None = None  # stop once the validation best_metric reaches this value
    label_smoothing: float = 0.0
    # translate: the probability of feeding the gold token (drawn per step), and its decay by
    # scheduled sampling (Bengio et al. 2015) over optimizer steps i: linear max(min, k - c i),
    # exponential k^i, inverse_sigmoid k / (k + exp(i / k)).
    teacher_forcing: float = 1.0
    scheduled_sampling: str = "none"  # none | linear | exponential | inverse_sigmoid
    sampling_k: float = 1.0
    sampling_c: float = 1e-4
    sampling_min: float = 0.0
    # The loss a step minimises: "token", the mean over target tokens (pytorch/examples; PTB
    # there uses lr 20, clip 0.25), or "sequence", each sequence's summed loss averaged over the
    # batch (Zaremba et al. 2014's code; lr 1, clip 5). With bptt T the two differ by a factor T.
    loss_average: str = "token"
    precision: str = "fp32"  # fp32 | bf16 | fp16 (fp16 on CUDA only)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    deterministic: bool = False
    checkpoint_every: int = 0  # optimizer steps between checkpoints; 0: at each epoch end
    log_every: int = 100
    progress: bool = True
    tensorboard: bool = False


@dataclass
class DecodeConfig:
    """translate: how validation, ``rnnkit translate`` and ``evaluate`` decode."""

    beam_size: int = 5
    valid_beam_size: int = 1  # validation decodes greedily by default: it runs every epoch
    length_penalty: float = 1.0  # GNMT alpha
    max_length_ratio: float = 1.5  # output at most ratio x source length + 10 tokens
    block_ngram_repeat: int = 0
    batch_size: int = 50
    max_source_length: int = 400  # a longer input line is an error (memory: beam x length x hidden)


@dataclass
class Config:
    task: str = "lm"  # lm | translate | adding | copy | classify | tag
    run_dir: str = "runs/default"
    seed: int = 1234
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Keys whose value is one of a few names: checked when the config is read, not deep in training.
CHOICES: dict[str, tuple[str, ...]] = {
    "task": ("lm", "translate", "adding", "copy", "classify", "tag"),
    "model.recurrent_init": ("default", "orthogonal", "identity"),
    "data.format": ("auto", "label_text", "csv", "conllu", "token_tag"),
    "data.tag_column": ("upos", "xpos"),
    "model.pooling": ("last", "mean", "max", "attention"),
    "data.synthetic": ("reverse",),
    "model.bridge": ("zero", "last", "linear"),
    "model.attention": ("none", "dot", "general", "concat", "additive"),
    "train.scheduled_sampling": ("none", "linear", "exponential", "inverse_sigmoid"),
    "data.tokenizer": ("char", "word", "subword"),
    "data.subword_model": ("unigram", "bpe"),
    "data.mode": ("stream", "sentence"),
    "model.cell": ("rnn", "lstm", "gru"),
    "model.nonlinearity": ("tanh", "relu"),
    "model.reset": ("after", "before"),
    "model.gate": ("sigmoid", "hard_sigmoid"),
    "train.optimizer": (
        "sgd",
        "momentum",
        "nesterov",
        "adagrad",
        "adadelta",
        "rmsprop",
        "adam",
        "adamw",
    ),
    "train.lr_schedule": ("none", "epoch_decay", "plateau"),
    "train.precision": ("fp32", "bf16", "fp16"),
    "train.loss_average": ("token", "sequence"),
}


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Return value as the annotated type (int -> float allowed), or raise UserError."""
    options = (
        typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    )
    if value is None:
        if type(None) in options:
            return None
        raise UserError(f"{where}: must not be null")
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, str):
            return value
    names = " or ".join("null" if o is type(None) else o.__name__ for o in options)
    raise UserError(f"{where}: expected {names}, got {value!r}")


def _build(cls: type, values: dict[str, Any], source: str, prefix: str = "") -> Any:
    if not isinstance(values, dict):
        raise UserError(f"{source}: '{prefix.rstrip('.') or 'the file'}' must be a mapping of keys")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in fields:
            known = [f"{prefix}{k}" for k in fields]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"{source}: unknown key '{name}'{hint}")
        if dataclasses.is_dataclass(hints[key]):
            kwargs[key] = _build(hints[key], value or {}, source, f"{name}.")
        else:
            kwargs[key] = _check_type(value, hints[key], f"{source}: key '{name}'")
            if name in CHOICES and kwargs[key] is not None and kwargs[key] not in CHOICES[name]:
                raise UserError(
                    f"{source}: key '{name}' must be one of {', '.join(CHOICES[name])}, "
                    f"got {value!r}"
                )
    return cls(**kwargs)


def _apply_override(tree: dict[str, Any], override: str) -> None:
    if "=" not in override:
        raise UserError(f"override {override!r}: expected section.key=value")
    key, text = override.split("=", 1)
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    *parents, leaf = key.strip().split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"override {override!r}: '{part}' is not a section")
    node[leaf] = value


def config_from_dict(tree: dict[str, Any], source: str = "config") -> Config:
    return _build(Config, tree, source)


def override_config(cfg: Config, overrides: list[str]) -> Config:
    """``cfg`` with ``section.key=value`` overrides applied (and checked)."""
    tree = cfg.to_dict()
    for override in overrides:
        _apply_override(tree, override)
    return config_from_dict(tree, "command line")


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or start from the defaults when path is None) and apply overrides."""
    tree: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"{path}: no such config file") from None
        except (IsADirectoryError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: not a readable YAML file ({e.__class__.__name__})") from None
        try:
            tree = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise UserError(f"{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
    for override in overrides:
        _apply_override(tree, override)
    return config_from_dict(tree, source)
