"""The encoder-decoder of SPEC.md: a recurrent encoder, a bridge, an attention decoder.

    source (B, S) -> embedding -> encoder RNN (uni- or bidirectional, stacked)
                  -> outputs h_s (B, S, D*He) and a final state
    bridge        -> the decoder's first state: zeros, the encoder's (directions concatenated),
                     or tanh(W [h_fwd; h_bwd] + b)
    decoder step t (Luong et al. 2015), with y_{t-1} the previous target token:
        x_t   = [emb(y_{t-1}); h~_{t-1}]              input feeding (or emb(y_{t-1}) alone)
        h_t   = RNN(x_t, h_{t-1})                      (B, Hd), the top layer's output
        c_t   = sum_s a_ts h_s,  a_t = softmax_s(score(h_t, h_s)), padding masked
        h~_t  = tanh(W_c [c_t; h_t])                   the attentional vector
        p(y_t | y_<t, x) = softmax(W_s h~_t)

With ``attention="none"`` the decoder is the classic context-vector model (Sutskever et al.
2014; Cho et al. 2014): h~_t = h_t, and the encoder reaches the decoder only through the bridge.

Training feeds the gold y_{t-1} with probability ``teacher_forcing`` (drawn per step, for the
whole batch) and the model's own argmax otherwise. When every step is gold and there is no
input feeding, the decoder runs the whole target in one call of the fused RNN and attends for
all steps at once; otherwise it runs step by step.

For search (``rnnkit.search``), the decoder is one step function over a state whose every
tensor has the hypotheses at dim 0 (the RNN state is stored batch-first there).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from rnnkit.config import ModelConfig
from rnnkit.errors import UserError
from rnnkit.models.attention import Attention
from rnnkit.models.recurrent import build_recurrent, initialize, state_from_parts, state_parts
from rnnkit.nn.dropout import Dropout
from rnnkit.nn.gemm import Linear, affine, cast_once

RNNState = Tensor | tuple[Tensor, ...]


class Memory(NamedTuple):
    """What the decoder attends to: keys h_s (B, S, K), mask (B, S) True at real tokens, and
    the keys' query-independent projection (B, S, *), computed once per source."""

    keys: Tensor
    mask: Tensor
    projected: Tensor | None


class Encoder(nn.Module):
    """source (B, S), lengths (B,) -> outputs (B, S, D*He) (zeros at padding), final state
    (L*D, B, He) (a tuple (h, c) for an LSTM)."""

    def __init__(self, vocab_size: int, cfg: ModelConfig, pad_index: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_size, padding_idx=pad_index)
        self.rnn = build_recurrent(
            cfg,
            cfg.embedding_size,
            hidden_size=cfg.encoder_hidden_size or cfg.hidden_size,
            bidirectional=cfg.bidirectional,
        )
        self.dropout = Dropout(cfg.dropout)

    def forward(self, source: Tensor, lengths: Tensor) -> tuple[Tensor, RNNState]:
        return self.rnn(self.dropout(self.embedding(source)), lengths=lengths)


BRIDGES = ("zero", "last", "linear")  # model.bridge


class Bridge(nn.Module):
    """The encoder's final state (L*D, B, He) -> the decoder's first state (L, B, Hd).

    The directions of each layer are concatenated, [h_fwd; h_bwd] (L, B, D*He); then
    ``zero``: zeros; ``last``: that state as it is (needs D*He == Hd); ``linear``:
    tanh(W [h_fwd; h_bwd] + b), one W for h and, for an LSTM, another for c.
    """

    def __init__(self, kind: str, cfg: ModelConfig) -> None:
        super().__init__()
        self.kind, self.layers = kind, cfg.num_layers
        directions = 2 if cfg.bidirectional else 1
        encoder_size = directions * (cfg.encoder_hidden_size or cfg.hidden_size)
        if kind == "last" and encoder_size != cfg.hidden_size:
            raise UserError(
                f"model.bridge last: the encoder's state ({encoder_size} = directions x "
                f"encoder_hidden_size) must equal model.hidden_size ({cfg.hidden_size}); use linear"
            )
        parts = 2 if cfg.cell == "lstm" else 1
        self.linears = (
            nn.ModuleList(Linear(encoder_size, cfg.hidden_size) for _ in range(parts))
            if kind == "linear"
            else None
        )
        self.hidden_size = cfg.hidden_size

    def forward(self, final: RNNState) -> RNNState:
        out = []
        for i, s in enumerate(state_parts(final)):
            _, batch, size = s.shape
            s = (
                s.view(self.layers, -1, batch, size).transpose(1, 2).reshape(self.layers, batch, -1)
            )  # (L, B, D*He)
            if self.kind == "zero":
                s = s.new_zeros(self.layers, batch, self.hidden_size)
            elif self.kind == "linear":
                s = torch.tanh(self.linears[i](s))
            out.append(s.contiguous())
        return state_from_parts(tuple(out))


class Decoder(nn.Module):
    """The attention decoder of the module docstring; Hd = ``cfg.hidden_size``."""

    def __init__(self, vocab_size: int, cfg: ModelConfig, pad_index: int, key_size: int) -> None:
        super().__init__()
        hidden = cfg.hidden_size
        self.input_feeding = cfg.input_feeding and cfg.attention != "none"
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_size, padding_idx=pad_index)
        self.rnn = build_recurrent(cfg, cfg.embedding_size + (hidden if self.input_feeding else 0))
        self.attention = (
            None
            if cfg.attention == "none"
            else Attention(cfg.attention, hidden, key_size, cfg.attention_size)
        )
        self.combine = (
            None if self.attention is None else Linear(key_size + hidden, hidden, bias=False)
        )  # W_c
        self.output = Linear(hidden, vocab_size)  # W_s
        self.dropout = Dropout(cfg.dropout)
        if cfg.tie_weights:
            if cfg.embedding_size != hidden:
                raise UserError(
                    f"model.tie_weights needs model.embedding_size ({cfg.embedding_size}) "
                    f"== model.hidden_size ({hidden})"
                )
            self.output.weight = self.embedding.weight

    def attend(self, h: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """h (B, [T,] Hd) -> h~ = tanh(W_c [c; h]) (B, [T,] Hd) and the weights (B, [T,] S)."""
        if self.attention is None:
            return h, h.new_zeros(*h.shape[:-1], memory.keys.shape[1])
        context, weights = self.attention(h, memory.keys, memory.mask, memory.projected)
        return torch.tanh(self.combine(torch.cat([context, h], dim=-1))), weights

    def step(
        self, tokens: Tensor, state: RNNState, feed: Tensor | None, memory: Memory
    ) -> tuple[Tensor, RNNState, Tensor]:
        """One step: y_{t-1} (B,), state (L, B, Hd), h~_{t-1} (B, Hd)
        -> h~_t, state, weights (B, S)."""
        x = self.dropout(self.embedding(tokens))  # (B, E)
        if self.input_feeding:
            x = torch.cat([x, feed], dim=-1)
        out, state = self.rnn(x.unsqueeze(1), state)  # (B, 1, Hd)
        attentional, weights = self.attend(out.squeeze(1), memory)
        return attentional, state, weights

    def logits(self, attentional: Tensor) -> Tensor:
        """h~ (..., Hd) -> (..., V)."""
        return self.output(self.dropout(attentional))

    def forward(
        self, target_in: Tensor, state: RNNState, memory: Memory, gold: list[bool]
    ) -> tuple[Tensor, Tensor]:
        """target_in (B, T) = <bos> y_1 .. y_{T-1}; gold[t]: feed target_in[:, t] (else the
        model's argmax of step t-1) -> logits (B, T, V), attention weights (B, T, S)."""
        if all(gold) and not self.input_feeding:
            return self.forward_parallel(target_in, state, memory)
        return self.forward_stepwise(target_in, state, memory, gold)

    def forward_parallel(
        self, target_in: Tensor, state: RNNState, memory: Memory
    ) -> tuple[Tensor, Tensor]:
        """All gold, no input feeding: the RNN over all T steps in one call, attention for all
        at once."""
        out, _ = self.rnn(self.dropout(self.embedding(target_in)), state)  # (B, T, Hd)
        attentional, weights = self.attend(out, memory)
        return self.logits(attentional), weights

    def forward_stepwise(
        self, target_in: Tensor, state: RNNState, memory: Memory, gold: list[bool]
    ) -> tuple[Tensor, Tensor]:
        """Step by step, feeding gold or predicted tokens as ``gold`` says; each step computes
        what ``step`` computes. Layer 0's input projection is split by the two parts of x_t:

            W_ih x_t = W_ih[:, :E] emb(y_{t-1}) + W_ih[:, E:] h~_{t-1}

        The first term of every gold step is one matmul over (B, T, E), before the loop (with
        the biases that ``step.project`` adds); only the input-feeding term and the predicted
        tokens' first term are computed step by step."""
        batch, steps = target_in.shape
        feed = target_in.new_zeros(batch, self.rnn.hidden_size, dtype=memory.keys.dtype)
        w = self.rnn.cell_weights()[0][0]
        size = self.embedding.embedding_dim
        # each block copied once per batch: the products run faster on contiguous weights; the
        # input-feeding block (kH, Hd), used at every step, also cast once under autocast
        # (empty without input feeding)
        embedded = w._replace(weight_ih=w.weight_ih[:, :size].contiguous())
        feed_weight = cast_once(w.weight_ih[:, size:].contiguous())

        def embedding_term(tokens: Tensor) -> Tensor:
            """tokens (B, [T]) -> W_ih[:, :E] dropout(emb(tokens)) + biases (B, [T], kH)."""
            return self.rnn.step.project(self.dropout(self.embedding(tokens)), embedded)

        gold_terms = embedding_term(target_in).unbind(1)  # T x (B, kH)
        attentionals, weights = [], []
        term = gold_terms[0]
        for t in range(steps):
            gx = term + affine(feed, feed_weight) if self.input_feeding else term
            out, state = self.rnn.step_projected(gx, state)  # (B, Hd)
            feed, w_t = self.attend(out, memory)
            attentionals.append(feed)
            weights.append(w_t)
            if t + 1 < steps:
                term = (
                    gold_terms[t + 1]
                    if gold[t + 1]
                    else embedding_term(self.logits(feed).argmax(-1).detach())
                )
        return self.logits(torch.stack(attentionals, dim=1)), torch.stack(weights, dim=1)


class Seq2Seq(nn.Module):
    """Encoder + bridge + decoder; see the module docstring."""

    def __init__(
        self,
        source_vocab: int,
        target_vocab: int,
        cfg: ModelConfig,
        source_pad: int,
        target_pad: int,
    ) -> None:
        super().__init__()
        if cfg.attention == "none" and cfg.bridge == "zero":
            raise UserError(
                "model.attention none with model.bridge zero leaves the decoder blind to the "
                "source; use bridge last or linear"
            )
        self.encoder = Encoder(source_vocab, cfg, source_pad)
        key_size = (2 if cfg.bidirectional else 1) * (cfg.encoder_hidden_size or cfg.hidden_size)
        self.bridge = Bridge(cfg.bridge, cfg)
        self.decoder = Decoder(target_vocab, cfg, target_pad, key_size)
        initialize(self, cfg)

    def encode(self, source: Tensor, lengths: Tensor) -> tuple[Memory, RNNState]:
        """source (B, S), lengths (B,) -> the memory to attend to and the decoder's first state."""
        outputs, final = self.encoder(source, lengths)  # (B, S, K)
        mask = torch.arange(source.shape[1], device=source.device) < lengths.to(
            source.device
        ).unsqueeze(1)  # (B, S)
        attention = self.decoder.attention
        projected = None if attention is None else attention.precompute(outputs)
        return Memory(outputs, mask, projected), self.bridge(final)

    def forward(
        self, source: Tensor, lengths: Tensor, target_in: Tensor, teacher_forcing: float = 1.0
    ) -> tuple[Tensor, Tensor]:
        """-> logits (B, T, V), attention weights (B, T, S). Step t > 0 feeds the gold token
        with probability ``teacher_forcing`` (one draw per step, from torch's generator)."""
        memory, state = self.encode(source, lengths)
        steps = target_in.shape[1]
        draws = torch.rand(steps).tolist() if teacher_forcing < 1.0 else [0.0] * steps
        gold = [t == 0 or draws[t] < teacher_forcing for t in range(steps)]
        return self.decoder(target_in, state, memory, gold)

    # -- search: every tensor of the state has the hypotheses at dim 0 -------------------------
    def start(self, source: Tensor, lengths: Tensor, bos: int) -> tuple[Tensor, tuple]:
        """Encode and read <bos>: the first logits (B, V) and the search state."""
        memory, state = self.encode(source, lengths)
        feed = memory.keys.new_zeros(source.shape[0], self.decoder.rnn.hidden_size)
        tokens = torch.full((source.shape[0],), bos, dtype=torch.long, device=source.device)
        return self.search_step(
            tokens, (tuple(s.transpose(0, 1) for s in state_parts(state)), feed, memory)
        )

    def search_step(self, tokens: Tensor, search_state: tuple) -> tuple[Tensor, tuple]:
        """tokens (N,), state -> logits (N, V), the next state (``search.StepFn``)."""
        parts, feed, memory = search_state
        state = state_from_parts(tuple(s.transpose(0, 1).contiguous() for s in parts))  # (L, N, Hd)
        feed, state, _ = self.decoder.step(tokens, state, feed, memory)
        return self.decoder.logits(feed), (
            tuple(s.transpose(0, 1) for s in state_parts(state)),
            feed,
            memory,
        )
