"""The run configuration: one YAML file, every key overridable on the command line.

A config is a tree of dataclasses (``Config`` at the root: ``data``, ``model``, ``train``,
``decode`` sections). ``load_config(path, overrides)`` reads the YAML, applies
``section.key=value`` overrides (values parsed as YAML: ``train.lr=0.5``, ``model.cell=gru``,
``data.max_size=null``), and checks the whole tree before anything is built or written:

- every key exists (with a suggestion for a mistyped one) and has its type;
- a choice key holds one of the names the code that implements it knows (``choices()``);
- a number lies in its range (``key(..., at_least=1)``: sizes and counts >= 1, probabilities in
  [0, 1), learning rates > 0, ...);
- a key that does not apply to the run's task is not set (a key left at its default is fine).

Each failure is a one-line ``UserError`` naming the file and the key::

    configs/ptb-small.yaml: unknown key 'train.lr_decya' (did you mean 'train.lr_decay'?)
    command line: key 'model.hidden_size' must be >= 1, got -3
    configs/ptb-small.yaml: key 'model.bridge' is for translate runs, not task 'lm'

A run directory stores ``run_config(cfg)``: the root keys, ``config_version`` and only the keys
that apply to the run's task.
"""

from __future__ import annotations

import dataclasses
import difflib
import operator
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

# The format of a run directory's config.yaml; a newer one than this code knows is refused.
CONFIG_VERSION = 1

ALL = ("lm", "translate", "adding", "copy", "classify", "tag")
TEXT = ("lm", "translate", "classify", "tag")  # tasks that read text files and build vocabularies
LONG_RANGE = ("adding", "copy")
TRANSLATE = ("translate",)


def key(
    default: Any,
    tasks: tuple[str, ...] = ALL,
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
) -> Any:
    """A config key: its default, the tasks it applies to, and the range a number must lie in
    (``at_least`` / ``at_most`` inclusive, ``above`` / ``below`` exclusive)."""
    bounds = {"at_least": at_least, "above": above, "at_most": at_most, "below": below}
    return field(default=default, metadata={"tasks": tasks, "bounds": bounds})


COUNT = {"at_least": 1}  # sizes, counts and lengths
NON_NEGATIVE = {"at_least": 0}
POSITIVE = {"above": 0}
DROPOUT = {"at_least": 0, "below": 1}  # a probability that must leave something
PROBABILITY = {"at_least": 0, "at_most": 1}


@dataclass
class DataConfig:
    """Where the text is and how it becomes batches."""

    train: str | None = key(None, TEXT)  # training file (or the whole corpus with valid_fraction)
    valid: str | None = key(None, TEXT)
    test: str | None = key(None, TEXT)
    # without a valid file: the last fraction of train validates
    valid_fraction: float = key(0.1, TEXT, above=0, below=1)
    tokenizer: str = key("word", TEXT)  # char | word | subword
    max_size: int | None = key(None, TEXT, **COUNT)  # vocabulary size, specials included
    min_freq: int = key(1, TEXT, **COUNT)
    lowercase: bool = key(False, TEXT)  # word
    normalize: bool = key(False, TEXT)  # word: Unicode NFKC before splitting
    vocab_size: int = key(8000, ("lm", "translate", "classify"), **COUNT)  # subword
    subword_model: str = key("unigram", ("lm", "translate", "classify"))  # unigram | bpe
    # stream: truncated BPTT over one token stream; sentence: padded lines
    mode: str = key("stream", ("lm",))
    # read every line right to left: a backward LM, for model.init_from_backward
    reverse_text: bool = key(False, ("lm",))
    # lm: more unlabelled training text, [FILE, ...]: each file's text (format auto: plain text,
    # or a .conllu or .csv file's words) joins train after the validation split is held out
    extra_text: list[str] | None = key(None, ("lm",))
    bptt: int = key(35, ("lm",), **COUNT)  # stream mode: window length
    batch_size: int = key(20, ALL, **COUNT)
    eval_batch_size: int = key(10, ("lm", "classify", "tag", "adding", "copy"), **COUNT)
    # translate: a split is the pair of files PATH.SOURCE_SUFFIX / PATH.TARGET_SUFFIX, or, without
    # suffixes, one TSV file whose first two columns are (source, target) (swapped by reverse).
    source_suffix: str | None = key(None, ("translate",))
    target_suffix: str | None = key(None, ("translate",))
    reverse: bool = key(False, ("translate",))
    # "reverse": the reverse-the-sequence task, generated (no files)
    synthetic: str | None = key(None, ("translate",))
    # translate: longer training pairs are filtered out (counted)
    max_length: int | None = key(100, ("translate",), **COUNT)
    # translate: a token budget per batch instead of batch_size
    batch_tokens: int | None = key(None, ("translate",), **COUNT)
    joint_vocabulary: bool = key(False, ("translate",))  # one vocabulary for source and target
    # adding / copy: generated sequences of length T (the copy task's are T + 20 long); each
    # epoch draws train_size fresh ones, valid_size and test_size are fixed held-out sets.
    sequence_length: int = key(100, LONG_RANGE, **COUNT)
    train_size: int = key(10000, LONG_RANGE, **COUNT)
    valid_size: int = key(1000, LONG_RANGE, **COUNT)
    test_size: int = key(1000, LONG_RANGE, **COUNT)
    # classify / tag: the file format (auto: .csv -> csv, .conllu -> conllu, otherwise label_text
    # for classify and token_tag for tag), the CSV columns and the CoNLL-U tag column.
    # lm: the text of any of these formats, its labels dropped (auto: plain text, one line each)
    # auto | text | label_text | csv | conllu | token_tag
    format: str = key("auto", ("lm", "classify", "tag"))
    label_column: str = key("label", ("classify",))  # csv
    text_column: str = key("text", ("lm", "classify"))  # csv
    tag_column: str = key("upos", ("tag",))  # conllu: upos (column 4) | xpos (column 5)


@dataclass
class ModelConfig:
    """Embedding -> stacked rnnkit.nn layer -> dropout -> output layer.

    Initialisation runs in one order (``models.recurrent.initialize``): every weight from
    U(-init_range, init_range) (or torch's own init when null), then the LSTM forget-gate bias,
    then ``recurrent_init`` on every W_hh; a later step never undoes an earlier one's target.
    """

    cell: str = key("lstm")  # rnn | lstm | gru
    nonlinearity: str = key("tanh")  # rnn: tanh | relu
    peephole: bool = key(False)  # lstm
    forget_bias: float | None = key(None)  # lstm
    reset: str = key("after")  # gru: after | before
    gate: str = key("sigmoid")  # gru: sigmoid | hard_sigmoid
    fused: bool | None = key(None)
    bptt: str = key("handwritten")  # the explicit path's backward: handwritten | autograd
    embedding_size: int = key(200, ("lm", "translate", "copy", "classify", "tag"), **COUNT)
    hidden_size: int = key(200, ALL, **COUNT)
    num_layers: int = key(2, ALL, **COUNT)
    dropout: float = key(0.0, ALL, **DROPOUT)  # on non-recurrent connections (Zaremba 2014)
    # drops whole word types (Gal & Ghahramani 2016)
    embedding_dropout: float = key(0.0, ("lm",), **DROPOUT)
    # classify / tag, training only: a word seen c times in training becomes <unk> with
    # probability alpha / (alpha + c) (Kiperwasser & Goldberg 2016: 0.25); 0: off
    word_dropout: float = key(0.0, ("classify", "tag"), **NON_NEGATIVE)
    tie_weights: bool = key(False, ("lm", "translate"))
    # uniform(-r, r) for every weight; null keeps torch's init
    init_range: float | None = key(0.1, ALL, **POSITIVE)
    pretrained_embeddings: str | None = key(None, ("lm", "classify", "tag"))  # word2vec/GloVe
    freeze_embeddings: bool = key(False, ("lm", "classify", "tag"))
    # translate: the encoder (hidden size per direction; null: hidden_size) and the decoder
    bidirectional: bool = key(False, ("translate", "classify", "tag"))
    encoder_hidden_size: int | None = key(None, ("translate",), **COUNT)
    # zero | last | linear (+tanh): encoder final state -> decoder's first
    bridge: str = key("linear", ("translate",))
    attention: str = key("general", ("translate",))  # none | dot | general | concat | additive
    # concat / additive; classify attention pooling (null: hidden_size)
    attention_size: int | None = key(None, ("translate", "classify"), **COUNT)
    # the attentional vector h~_{t-1} joins the next decoder input
    input_feeding: bool = key(True, ("translate",))
    # W_hh after init_range and forget_bias (each gate's block): kept as it is, a random
    # orthogonal matrix or the identity (Le et al. 2015), times recurrent_gain (its spectral radius
    # for orthogonal and identity). chrono (Tallec & Ollivier 2018) keeps W_hh and sets the gate
    # biases of an LSTM (b_f = -b_i = log U(1, chrono_t_max - 1)) or a GRU (b_z), not with
    # forget_bias; chrono_t_max: the longest dependency expected.
    recurrent_init: str = key("default")  # default | orthogonal | identity | chrono
    recurrent_gain: float = key(1.0, ALL, **POSITIVE)
    chrono_t_max: int | None = key(None, ALL, at_least=2)
    # classify: encoder outputs h_1..h_T -> one vector (attention: a_t = softmax(v . tanh(W h_t)))
    pooling: str = key("last", ("classify",))  # last | mean | max | attention
    # tag: a bidirectional char RNN per word, its final states joined to the word embedding
    char_features: bool = key(False, ("tag",))
    char_embedding_size: int = key(50, ("tag",), **COUNT)
    char_hidden_size: int = key(50, ("tag",), **COUNT)  # per direction
    # transfer from trained LM runs (rnnkit/transfer.py): the embedding and the recurrent stack
    # (classify, tag: the forward direction; a backward LM, data.reverse_text, fills the
    # backward one); translate: the encoder from a source LM, the decoder from a target LM
    init_from: str | None = key(None, ("classify", "tag"))
    init_from_backward: str | None = key(None, ("classify", "tag"))
    encoder_init_from: str | None = key(None, ("translate",))
    decoder_init_from: str | None = key(None, ("translate",))
    freeze_encoder: bool = key(False, ("classify", "tag", "translate"))  # the transferred parts


@dataclass
class TrainConfig:
    """Optimisation, schedule, precision and bookkeeping; the trainer reads only this."""

    epochs: int = key(10, ALL, **COUNT)
    max_steps: int | None = key(None, ALL, **COUNT)  # stop after this many optimizer steps
    # sgd | momentum | nesterov | adagrad | adadelta | rmsprop | adam | adamw
    optimizer: str = key("sgd")
    lr: float = key(1.0, ALL, **POSITIVE)
    momentum: float = key(0.9, ALL, **DROPOUT)
    weight_decay: float = key(0.0, ALL, **NON_NEGATIVE)
    clip_norm: float | None = key(5.0, ALL, **POSITIVE)
    clip_value: float | None = key(None, ALL, **POSITIVE)
    lr_schedule: str = key("none")  # none | epoch_decay | plateau
    lr_decay: float = key(0.5, ALL, above=0, at_most=1)
    # epoch_decay: multiply by lr_decay after each epoch from this one on
    decay_start: int = key(4, ALL, **COUNT)
    plateau_patience: int = key(0, ALL, **NON_NEGATIVE)
    warmup_steps: int = key(0, ALL, **NON_NEGATIVE)
    # stop after this many epochs without a better valid loss
    early_stopping: int | None = key(None, ALL, **COUNT)
    # stop once the validation best_metric reaches this value
    target_score: float | None = key(None)
    label_smoothing: float = key(0.0, TEXT, **DROPOUT)
    # a model transferred from an LM: the top encoder layer trains at lr / f, each lower one at a
    # further / f (ULMFiT: 2.6); gradual unfreezing trains the head alone in epoch 1, then one
    # more encoder layer, top down, each epoch
    discriminative_lr: float | None = key(None, ("classify", "tag", "translate"), at_least=1)
    gradual_unfreezing: bool = key(False, ("classify", "tag", "translate"))
    # translate: the probability of feeding the gold token (drawn per step), and its decay by
    # scheduled sampling (Bengio et al. 2015) over optimizer steps i: linear max(min, k - c i),
    # exponential k^i, inverse_sigmoid k / (k + exp(i / k)).
    teacher_forcing: float = key(1.0, ("translate",), **PROBABILITY)
    # none | linear | exponential | inverse_sigmoid
    scheduled_sampling: str = key("none", ("translate",))
    sampling_k: float = key(1.0, ("translate",), **POSITIVE)
    sampling_c: float = key(1e-4, ("translate",), **NON_NEGATIVE)
    sampling_min: float = key(0.0, ("translate",), **PROBABILITY)
    # The loss a step minimises: "token", the mean over target tokens (pytorch/examples; PTB
    # there uses lr 20, clip 0.25), or "sequence", each sequence's summed loss averaged over the
    # batch (Zaremba et al. 2014's code; lr 1, clip 5). With bptt T the two differ by a factor T.
    loss_average: str = key("token")
    precision: str = key("fp32")  # fp32 | bf16 | fp16 (fp16 on CUDA only)
    device: str = key("auto")  # auto | cpu | cuda | cuda:N
    deterministic: bool = key(False)
    # optimizer steps between checkpoints; 0: at each epoch end
    checkpoint_every: int = key(0, ALL, **NON_NEGATIVE)
    log_every: int = key(100, ALL, **COUNT)
    progress: bool = key(True)
    tensorboard: bool = key(False)


@dataclass
class DecodeConfig:
    """translate: how validation, ``rnnkit translate`` and ``evaluate`` decode."""

    beam_size: int = key(5, TRANSLATE, **COUNT)
    # validation decodes greedily by default: it runs every epoch
    valid_beam_size: int = key(1, TRANSLATE, **COUNT)
    length_penalty: float = key(1.0, TRANSLATE, **NON_NEGATIVE)  # GNMT alpha
    # output at most ratio x source length + 10 tokens
    max_length_ratio: float = key(1.5, TRANSLATE, **POSITIVE)
    block_ngram_repeat: int = key(0, TRANSLATE, **NON_NEGATIVE)
    batch_size: int = key(50, TRANSLATE, **COUNT)
    # a longer input line is an error (memory: beam x length x hidden)
    max_source_length: int = key(400, TRANSLATE, **COUNT)


@dataclass
class Config:
    task: str = "lm"  # lm | translate | adding | copy | classify | tag
    run_dir: str = "runs/default"
    seed: int = key(1234, ALL, **NON_NEGATIVE)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS = ("data", "model", "train", "decode")


def choices() -> dict[str, tuple[str, ...]]:
    """The values each choice key may take, read from the code that implements it, so that
    there is one list of each. (Imported here, when a config is checked: those modules import
    this one for their section types.)"""
    from .data.labelled import FORMATS, TAG_COLUMNS
    from .data.lm_batches import MODES
    from .data.tokenizers import TOKENIZER_KINDS, SubwordTokenizer
    from .models.attention import SCORES
    from .models.pooling import POOLINGS
    from .models.recurrent import CELLS, RECURRENT_INITS
    from .models.seq2seq import BRIDGES
    from .nn.cells import GATE_ACTIVATIONS, GRU_RESETS, RNN_NONLINEARITIES
    from .nn.layers import BPTT_MODES
    from .tasks import TASKS
    from .tasks.translate import SAMPLING_SCHEDULES, SYNTHETIC_TASKS
    from .training.trainer import LOSS_AVERAGES, LR_SCHEDULES, OPTIMIZERS, PRECISIONS

    return {
        "task": tuple(TASKS),
        "data.tokenizer": tuple(TOKENIZER_KINDS),
        "data.subword_model": SubwordTokenizer.MODEL_TYPES,
        "data.mode": MODES,
        "data.synthetic": tuple(SYNTHETIC_TASKS),
        "data.format": FORMATS,
        "data.tag_column": tuple(TAG_COLUMNS),
        "model.cell": tuple(CELLS),
        "model.nonlinearity": tuple(RNN_NONLINEARITIES),
        "model.reset": GRU_RESETS,
        "model.gate": tuple(GATE_ACTIVATIONS),
        "model.bridge": BRIDGES,
        "model.attention": ("none", *SCORES),
        "model.recurrent_init": RECURRENT_INITS,
        "model.bptt": BPTT_MODES,
        "model.pooling": POOLINGS,
        "train.optimizer": tuple(OPTIMIZERS),
        "train.lr_schedule": LR_SCHEDULES,
        "train.scheduled_sampling": SAMPLING_SCHEDULES,
        "train.loss_average": LOSS_AVERAGES,
        "train.precision": PRECISIONS,
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
        if typing.get_origin(option) is list and isinstance(value, list):
            (item,) = typing.get_args(option)
            return [_check_type(v, item, f"{where}, item {i + 1}") for i, v in enumerate(value)]
    names = " or ".join("null" if o is type(None) else o.__name__ for o in options)
    raise UserError(f"{where}: expected {names}, got {value!r}")


# bound name -> (the test a value must pass, how the message writes it)
_BOUNDS = {
    "at_least": (operator.ge, ">="),
    "above": (operator.gt, ">"),
    "at_most": (operator.le, "<="),
    "below": (operator.lt, "<"),
}


def _check_range(value: Any, bounds: dict[str, float | None], where: str) -> None:
    """Raise UserError unless a number lies within all of its bounds (null passes, NaN fails)."""
    if value is None or isinstance(value, (bool, str)):
        return
    rules = [(name, bound) for name, bound in bounds.items() if bound is not None]
    if value != value or not all(_BOUNDS[name][0](value, bound) for name, bound in rules):
        wanted = " and ".join(f"{_BOUNDS[name][1]} {bound}" for name, bound in rules)
        raise UserError(f"{where} must be {wanted}, got {value!r}")


def _build(
    cls: type, values: Any, source: str, allowed: dict[str, tuple[str, ...]], prefix: str = ""
) -> Any:
    if not isinstance(values, dict):
        where = prefix.rstrip(".") or "the file"
        raise UserError(f"{source}: '{where}' must be a mapping of keys")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name_in_file, value in values.items():
        name = f"{prefix}{name_in_file}"
        if name_in_file not in fields:
            known = [f"{prefix}{k}" for k in fields]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"{source}: unknown key '{name}'{hint}")
        where = f"{source}: key '{name}'"
        if dataclasses.is_dataclass(hints[name_in_file]):
            kwargs[name_in_file] = _build(
                hints[name_in_file], value or {}, source, allowed, f"{name}."
            )
            continue
        checked = _check_type(value, hints[name_in_file], where)
        if name in allowed and checked is not None and checked not in allowed[name]:
            raise UserError(f"{where} must be one of {', '.join(allowed[name])}, got {value!r}")
        _check_range(checked, fields[name_in_file].metadata.get("bounds", {}), where)
        kwargs[name_in_file] = checked
    return cls(**kwargs)


def _task_keys(cfg: Config) -> dict[str, dict[str, Any]]:
    """Every section's keys that apply to ``cfg.task``, with their values."""
    return {
        section: {
            f.name: getattr(getattr(cfg, section), f.name)
            for f in dataclasses.fields(getattr(cfg, section))
            if cfg.task in f.metadata.get("tasks", ALL)
        }
        for section in SECTIONS
    }


def _check_task_keys(cfg: Config, source: str) -> None:
    """A key set away from its default must apply to the run's task."""
    for section in SECTIONS:
        values, defaults = getattr(cfg, section), type(getattr(cfg, section))()
        for f in dataclasses.fields(values):
            tasks = f.metadata.get("tasks", ALL)
            if cfg.task not in tasks and getattr(values, f.name) != getattr(defaults, f.name):
                raise UserError(
                    f"{source}: key '{section}.{f.name}' is for {', '.join(tasks)} runs, "
                    f"not task {cfg.task!r}"
                )


def run_config(cfg: Config) -> dict[str, Any]:
    """What a run directory's config.yaml holds: the version, the root keys, and each section's
    keys that apply to the task."""
    root = {"config_version": CONFIG_VERSION, "task": cfg.task, "run_dir": cfg.run_dir}
    sections = {name: keys for name, keys in _task_keys(cfg).items() if keys}
    return root | {"seed": cfg.seed} | sections


def _apply_override(tree: dict[str, Any], override: str) -> None:
    if "=" not in override:
        raise UserError(f"override {override!r}: expected section.key=value")
    name, text = override.split("=", 1)
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    *parents, leaf = name.strip().split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"override {override!r}: '{part}' is not a section")
    node[leaf] = value


def config_from_dict(
    tree: dict[str, Any], source: str = "config", check_choices: bool = True
) -> Config:
    """The checked ``Config`` of a YAML tree (a recipe, or a run directory's ``run_config``).

    ``check_choices=False`` skips the choice keys' lists (``choices()``), which live in the
    modules that implement them, and so import torch: an ONNX export's config, checked when it
    was exported, is read so where torch is not installed."""
    if not isinstance(tree, dict):
        raise UserError(f"{source}: the file must be a mapping of keys")
    tree = dict(tree)
    version = tree.pop("config_version", CONFIG_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version > CONFIG_VERSION:
        raise UserError(
            f"{source}: config_version {version!r} is newer than this rnnkit reads "
            f"({CONFIG_VERSION}); upgrade rnnkit"
        )
    cfg = _build(Config, tree, source, choices() if check_choices else {})
    _check_task_keys(cfg, source)
    return cfg


def override_config(cfg: Config, overrides: list[str]) -> Config:
    """``cfg`` with ``section.key=value`` overrides applied (and checked)."""
    tree = cfg.to_dict()
    for override in overrides:
        _apply_override(tree, override)
    return config_from_dict(tree, "command line")


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or start from the defaults when path is None) and apply overrides."""
    tree: Any = {}
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
        if not isinstance(tree, dict):
            raise UserError(f"{path}: the file must be a mapping of keys")
    for override in overrides:
        _apply_override(tree, override)
    return config_from_dict(tree, source)
