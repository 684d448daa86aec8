"""``rnnkit export RUN --format onnx --out DIR``: a trained run as ONNX graphs and a manifest.

The graphs, every tensor batch-first, B, T and S free (any batch, any length):

- lm, ``lm.onnx``: tokens (B, T) int64, lengths (B,) int64, h (L, B, H) [, c] -> logits
  (B, T, V), h [, c]. The same graph reads a prompt (T tokens) and takes single steps (T = 1).
- translate, ``encoder.onnx``: source (B, S) int64, lengths (B,) int64 -> keys (B, S, K),
  mask (B, S) bool [, projected (B, S, A): the keys' attention projection], the decoder's first
  state h (L, B, Hd) [, c]; and ``decoder_step.onnx``: tokens (B,) int64, h [, c]
  [, feed (B, Hd): h~_{t-1}, with input feeding], keys, mask [, projected] -> log_probs (B, V),
  h [, c], feed (B, Hd): h~_t, attention (B, S).
- classify, ``classifier.onnx``: tokens (B, T), lengths (B,) -> logits (B, C).
- tag, ``tagger.onnx``: words (B, T), lengths (B,) [, chars (U, W), char_lengths (U,),
  char_index (B, T): the spelling of each distinct word, with character features] -> logits
  (B, T, K).

The recurrent layers are ONNX's native RNN / LSTM / GRU ops (``onnx_recurrent``); the rest is
traced by ``torch.onnx.export`` (the TorchScript exporter: torch 2.13's dynamo exporter cannot
trace ragged packed sequences). fp32, opset 17, each graph checked by ``onnx.checker``.

``manifest.json`` (``MANIFEST_VERSION``) says what a runtime in any language needs: the task,
each graph's file, inputs and outputs (name, dtype, shape with named free dimensions), the
vocabularies (every token, the special ids) and tokenizer rules, the decode settings and the
opset. The run's own vocabulary files and config sit beside it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import Tensor, nn

from ..errors import UserError
from ..models.seq2seq import Memory, state_from_parts, state_parts
from ..tasks import TASKS
from .onnx_recurrent import OPSET, native_recurrent

MANIFEST_VERSION = 1
FORMAT = "rnnkit-onnx"


@dataclasses.dataclass
class GraphSpec:
    """One graph to export: the module, example inputs, and the names of its inputs, outputs
    and free dimensions (``{name: {axis: "B"}}``)."""

    file: str
    module: nn.Module
    inputs: dict[str, Tensor]
    outputs: list[str]
    axes: dict[str, dict[int, str]]


def state_names(lstm: bool) -> list[str]:
    return ["h", "c"] if lstm else ["h"]


class Wrapper(nn.Module):
    """A graph's forward around a model that it holds without registering it: the tracer then
    writes the weights as constants (as a registered submodule, its parameters would meet the
    native ops' symbolic function inside the trace, which torch 2.13's tracer cannot take)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.__dict__["model"] = model


class LanguageModelGraph(Wrapper):
    def forward(self, tokens: Tensor, lengths: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        logits, state = self.model(tokens, state_from_parts(state), lengths=lengths)
        return (logits, *state_parts(state))


class EncoderGraph(Wrapper):
    def forward(self, source: Tensor, lengths: Tensor) -> tuple[Tensor, ...]:
        memory, state = self.model.encode(source, lengths)
        projected = () if memory.projected is None else (memory.projected,)
        return (memory.keys, memory.mask, *projected, *state_parts(state))


class DecoderStepGraph(Wrapper):
    """One decoder step; the inputs are flat: tokens, the state's parts, [feed], keys, mask,
    [projected], as ``decoder_inputs`` names them."""

    def __init__(self, model: nn.Module, parts: int, feeding: bool, projected: bool) -> None:
        super().__init__(model)
        self.parts, self.feeding, self.projected = parts, feeding, projected

    def forward(self, tokens: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        state, rest = rest[: self.parts], rest[self.parts :]
        feed, rest = (rest[0], rest[1:]) if self.feeding else (None, rest)
        keys, mask = rest[0], rest[1]
        memory = Memory(keys, mask, rest[2] if self.projected else None)
        decoder = self.model.decoder
        feed, state, weights = decoder.step(tokens, state_from_parts(state), feed, memory)
        log_probs = torch.log_softmax(decoder.logits(feed), dim=-1)
        return (log_probs, *state_parts(state), feed, weights)


class ClassifierGraph(Wrapper):
    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        return self.model(tokens, lengths)


class TaggerGraph(Wrapper):
    def forward(self, words: Tensor, lengths: Tensor, *chars: Tensor) -> Tensor:
        from ..models.tagger import CharBatch

        return self.model(words, lengths, CharBatch(*chars) if chars else None)


def example_tokens(batch: int = 2, steps: int = 3) -> tuple[Tensor, Tensor]:
    """Ids (B, T) and ragged lengths (B,): any values; the graphs take any B and T."""
    return torch.full((batch, steps), 3, dtype=torch.long), torch.tensor([steps, steps - 1])


def is_lstm(layer: nn.Module) -> bool:
    return isinstance(layer, nn.LSTM)


def graph_specs(run: Any) -> list[GraphSpec]:
    """What to export for a loaded run, by task."""
    model, task = run.engine.model, run.task
    tokens, lengths = example_tokens()
    bt = {0: "B", 1: "T"}
    if task == "lm":
        layer = model.rnn
        names = state_names(is_lstm(layer))
        states = {n: torch.zeros(layer.num_layers, 2, layer.hidden_size) for n in names}
        return [GraphSpec(
            "lm.onnx", LanguageModelGraph(model), {"tokens": tokens, "lengths": lengths, **states},
            ["logits", *[n + "_out" for n in names]],
            {"tokens": bt, "lengths": {0: "B"}, "logits": bt, **{n: {1: "B"} for n in names + [
                n + "_out" for n in names]}},
        )]  # fmt: skip
    if task == "translate":
        return translate_specs(model, tokens, lengths)
    if task == "classify":
        return [GraphSpec("classifier.onnx", ClassifierGraph(model),
                          {"tokens": tokens, "lengths": lengths}, ["logits"],
                          {"tokens": bt, "lengths": {0: "B"}, "logits": {0: "B"}})]  # fmt: skip
    if task == "tag":
        inputs = {"words": tokens, "lengths": lengths}
        axes = {"words": bt, "lengths": {0: "B"}, "logits": bt}
        if model.char_features:
            inputs |= {"chars": torch.full((4, 5), 3), "char_lengths": torch.tensor([5, 1, 2, 3]),
                       "char_index": torch.tensor([[0, 1, 2], [3, 0, 1]])}  # fmt: skip
            axes |= {"chars": {0: "U", 1: "W"}, "char_lengths": {0: "U"}, "char_index": bt}
        return [GraphSpec("tagger.onnx", TaggerGraph(model), inputs, ["logits"], axes)]
    raise UserError(f"export: task {task!r} has no ONNX export (lm, translate, classify, tag)")


def translate_specs(model: nn.Module, source: Tensor, lengths: Tensor) -> list[GraphSpec]:
    decoder = model.decoder
    names = state_names(is_lstm(decoder.rnn))
    with torch.no_grad():
        memory, state = model.encode(source, lengths)
    projected = memory.projected is not None
    memory_names = ["keys", "mask"] + (["projected"] if projected else [])
    bs = {0: "B", 1: "S"}
    encoder = GraphSpec(
        "encoder.onnx", EncoderGraph(model), {"source": source, "lengths": lengths},
        [*memory_names, *names],
        {"source": bs, "lengths": {0: "B"}, **{n: bs for n in memory_names},
         **{n: {1: "B"} for n in names}},
    )  # fmt: skip
    step_inputs: dict[str, Tensor] = {"tokens": source[:, 0]}
    step_inputs |= dict(zip(names, state_parts(state), strict=True))
    if decoder.input_feeding:
        step_inputs["feed"] = torch.zeros(source.shape[0], decoder.rnn.hidden_size)
    step_inputs |= dict(zip(memory_names, [t for t in memory if t is not None], strict=True))
    outputs = ["log_probs", *[n + "_out" for n in names], "feed_out", "attention"]
    axes = {"tokens": {0: "B"}, **{n: {1: "B"} for n in names + [n + "_out" for n in names]},
            "feed": {0: "B"}, "feed_out": {0: "B"}, **{n: bs for n in memory_names},
            "log_probs": {0: "B"}, "attention": bs}  # fmt: skip
    step = GraphSpec(
        "decoder_step.onnx",
        DecoderStepGraph(model, len(names), decoder.input_feeding, projected),
        step_inputs,
        outputs,
        axes,
    )
    return [encoder, step]


DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT64: "int64",
          onnx.TensorProto.BOOL: "bool", onnx.TensorProto.INT32: "int32"}  # fmt: skip


def value_info(values: Any) -> list[dict[str, Any]]:
    """Name, dtype and shape (free dimensions by name) of a graph's inputs or outputs."""
    described = []
    for v in values:
        dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        dtype = DTYPES.get(v.type.tensor_type.elem_type, str(v.type.tensor_type.elem_type))
        described.append({"name": v.name, "dtype": dtype, "shape": dims})
    return described


def export_graph(spec: GraphSpec, path: Path) -> dict[str, Any]:
    """Trace ``spec`` to ``path`` and check it: -> its manifest entry."""
    names, outputs = list(spec.inputs), spec.outputs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it freezes
        torch.onnx.export(
            spec.module, tuple(spec.inputs.values()), str(path), dynamo=False,
            input_names=names, output_names=outputs, opset_version=OPSET,
            dynamic_axes={k: v for k, v in spec.axes.items() if k in names + outputs},
        )  # fmt: skip
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    return {
        "file": spec.file,
        "inputs": value_info(model.graph.input),
        "outputs": value_info(model.graph.output),
    }


def vocabularies(run: Any, directory: Path) -> dict[str, Any]:
    """Every vocabulary file of the run (tokens, special ids, tokenizer kind and rules), as
    JSON, by its path in the export folder."""
    found = {}
    for path in sorted(directory.rglob("*.json")):
        if path.name != "manifest.json":
            found[str(path.relative_to(directory))] = json.loads(path.read_text())
    return found


def export_onnx(run: Any, out: str | Path, overwrite: bool = False) -> Path:
    """Export a loaded run (``rnnkit.load``) to the folder ``out``, written whole or not at all
    (a temporary folder, renamed at the end). The run's model is left on the CPU in fp32."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"{out}: exists; pass --overwrite to replace it")
    model = run.engine.model.float().cpu().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    specs = graph_specs(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        folder = Path(tmp) / "export"
        folder.mkdir()
        for name in (*TASKS[run.task].run_files, "config.yaml"):
            source = run.path / name
            if source.is_dir():
                shutil.copytree(source, folder / name)
            elif source.exists():
                shutil.copy2(source, folder / name)
        with native_recurrent(model), torch.no_grad():
            graphs = {s.file.removesuffix(".onnx"): export_graph(s, folder / s.file)
                      for s in specs}  # fmt: skip
        manifest = {
            "format": FORMAT,
            "version": MANIFEST_VERSION,
            "task": run.task,
            "opset": OPSET,
            "dtype": "float32",
            "model": run.describe(),
            "graphs": graphs,
            "vocabularies": vocabularies(run, folder),
            "decode": dataclasses.asdict(run.cfg.decode),
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        folder.rename(out)
    return out
