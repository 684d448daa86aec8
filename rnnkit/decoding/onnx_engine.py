"""``OnnxEngine``: an export folder (``rnnkit export``) run by onnxruntime, behind the same calls
as ``engine.TorchEngine``, so that ``rnnkit.load(EXPORT_DIR)`` gives the task's usual loaded
run and every search, batching and scoring step above the engine is the one PyTorch runs.

Everything here is numpy: torch is never imported, so an export decodes where torch is not
installed. The search state of a translation is the model's (``Seq2Seq.start``): the
decoder state's parts batch-first, the input-feed vector, and the memory (keys, mask,
projected keys), every array with the hypotheses at dim 0, so ``search.reorder_state``
follows beams as with the PyTorch model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..arrays import NUMPY
from ..errors import UserError

MANIFEST = "manifest.json"


def is_export(path: str | Path) -> bool:
    manifest = Path(path) / MANIFEST
    return manifest.is_file() and json.loads(manifest.read_text()).get("format") == "rnnkit-onnx"


class OnnxEngine:
    """The graphs of an export folder in onnxruntime sessions (CPU)."""

    def __init__(self, folder: str | Path) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("onnxruntime is missing: pip install 'rnnkit[onnx]'") from None
        self.folder = Path(folder)
        self.manifest = json.loads((self.folder / MANIFEST).read_text())
        self.xp, self.device = NUMPY, "cpu"
        # The search runs numpy between graph calls: onnxruntime's threads must not spin
        # while it works (spinning, they took the cores from the search: beam 5 batch-1 at
        # 105 ms instead of 12, benchmarks/RESULTS.md).
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sessions = {
            name: ort.InferenceSession(
                str(self.folder / g["file"]), options, providers=["CPUExecutionProvider"]
            )
            for name, g in self.manifest["graphs"].items()
        }
        self.inputs = {
            n: [i["name"] for i in g["inputs"]] for n, g in self.manifest["graphs"].items()
        }
        self.outputs = {
            n: [o["name"] for o in g["outputs"]] for n, g in self.manifest["graphs"].items()
        }

    def parameters(self) -> int:
        return self.manifest["model"]["parameters"]

    def run(self, graph: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """One graph on named arrays (those it does not take are left out) -> named outputs."""
        feed = {name: np.ascontiguousarray(inputs[name]) for name in self.inputs[graph]}
        values = self.sessions[graph].run(None, feed)
        return dict(zip(self.outputs[graph], values, strict=True))

    def state_shape(self, graph: str, batch: int) -> tuple[int, int, int]:
        layers, _, hidden = next(
            i for i in self.manifest["graphs"][graph]["inputs"] if i["name"] == "h"
        )["shape"]
        return layers, batch, hidden

    def state_names(self, graph: str) -> list[str]:
        return [n for n in ("h", "c") if n in self.inputs[graph]]

    def lm(self, tokens: np.ndarray, lengths: np.ndarray | None, state: Any) -> tuple[Any, Any]:
        batch, steps = tokens.shape
        names = self.state_names("lm")
        if state is None:
            state = tuple(np.zeros(self.state_shape("lm", batch), np.float32) for _ in names)
        parts = state if isinstance(state, tuple) else (state,)
        if lengths is None:
            lengths = np.full((batch,), steps, dtype=np.int64)
        out = self.run("lm", tokens=tokens, lengths=lengths, **dict(zip(names, parts, strict=True)))
        new = tuple(out[n + "_out"] for n in names)
        return out["logits"], new if len(new) > 1 else new[0]

    def _begin(self, source: np.ndarray, lengths: np.ndarray, bos: int) -> tuple[dict, tuple]:
        """Encode, then the first decoder step on <bos>: its outputs and the search state."""
        encoded = self.run("encoder", source=source, lengths=lengths)
        names = self.state_names("decoder_step")
        parts = tuple(encoded[n].swapaxes(0, 1) for n in names)  # batch-first, as the model's
        memory = tuple(encoded[n] for n in ("keys", "mask", "projected") if n in encoded)
        feed = np.zeros((source.shape[0], self.state_shape("decoder_step", 1)[2]), np.float32)
        tokens = np.full((source.shape[0],), bos, dtype=np.int64)
        return self._step(tokens, (parts, feed, memory))

    def _step(self, tokens: np.ndarray, search_state: tuple) -> tuple[dict[str, Any], tuple]:
        parts, feed, memory = search_state
        names = self.state_names("decoder_step")
        state = {n: p.swapaxes(0, 1) for n, p in zip(names, parts, strict=True)}
        memory_inputs = dict(zip(("keys", "mask", "projected"), memory, strict=False))
        out = self.run("decoder_step", tokens=tokens, feed=feed, **state, **memory_inputs)
        parts = tuple(out[n + "_out"].swapaxes(0, 1) for n in names)
        return out, (parts, out["feed_out"], memory)

    def start(self, source: np.ndarray, lengths: np.ndarray, bos: int) -> tuple[Any, tuple]:
        out, state = self._begin(source, lengths, bos)
        return out["log_probs"], state

    def search_step(self, tokens: np.ndarray, search_state: tuple) -> tuple[Any, tuple]:
        out, state = self._step(tokens, search_state)
        return out["log_probs"], state

    def attention(self, source: np.ndarray, lengths: np.ndarray, target_in: np.ndarray) -> Any:
        """Teacher-forced, as the model's forward: the weights (B, T, S) of every step, step t
        fed target_in[:, t]."""
        out, state = self._begin(source, lengths, int(target_in[0, 0]))
        weights = [out["attention"]]
        for t in range(1, target_in.shape[1]):
            out, state = self._step(target_in[:, t], state)
            weights.append(out["attention"])
        return np.stack(weights, axis=1)

    def classify(self, tokens: np.ndarray, lengths: np.ndarray) -> Any:
        return self.run("classifier", tokens=tokens, lengths=lengths)["logits"]

    def tag(self, words: np.ndarray, lengths: np.ndarray, chars: Any) -> Any:
        extra = {} if chars is None else {"chars": chars.chars, "char_lengths": chars.lengths,
                                          "char_index": chars.index}  # fmt: skip
        return self.run("tagger", words=words, lengths=lengths, **extra)["logits"]
