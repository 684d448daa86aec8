"""rnnkit.models.seq2seq: bridge, decoder paths, teacher forcing, padding, incremental search."""

from __future__ import annotations

import pytest
import torch

from rnnkit.decoding.search import beam_search, greedy
from rnnkit.errors import UserError
from rnnkit.tasks import registry
from rnnkit.tasks.translate.model import Seq2Seq

ModelConfig = registry.section("model")

V_SRC, V_TGT, PAD, BOS, EOS = 13, 11, 0, 3, 2


def model(**overrides) -> Seq2Seq:
    options = dict(
        cell="gru",
        embedding_size=8,
        hidden_size=12,
        num_layers=2,
        bidirectional=True,
        encoder_hidden_size=6,
        bridge="linear",
        attention="general",
        input_feeding=True,
        dropout=0.0,
        init_range=None,
    )
    options.update(overrides)
    torch.manual_seed(0)
    return Seq2Seq(V_SRC, V_TGT, ModelConfig(**options), PAD, PAD).double().eval()


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    lengths = torch.tensor([5, 3, 1])
    source = torch.randint(4, V_SRC, (3, 5))
    source[torch.arange(5) >= lengths.unsqueeze(1)] = PAD
    target_in = torch.randint(4, V_TGT, (3, 6))
    target_in[:, 0] = BOS
    return source, lengths, target_in


VARIANTS = [
    dict(),
    dict(cell="lstm"),
    dict(cell="rnn", bidirectional=False, encoder_hidden_size=None),
    dict(attention="dot", encoder_hidden_size=6),
    dict(attention="concat"),
    dict(attention="additive"),
    dict(attention="none", input_feeding=False),
    dict(bridge="zero"),
    dict(bridge="last"),
    dict(input_feeding=False),
]


@pytest.mark.parametrize("options", VARIANTS, ids=str)
def test_padded_source_positions_get_zero_attention_and_do_not_matter(options):
    m = model(**options)
    source, lengths, target_in = batch()
    logits, weights = m(source, lengths, target_in)
    assert logits.shape == (3, 6, V_TGT) and weights.shape == (3, 6, 5)
    if options.get("attention") != "none":
        for b, n in enumerate(lengths.tolist()):
            assert (weights[b, :, n:] == 0).all()
            torch.testing.assert_close(
                weights[b, :, :n].sum(-1), torch.ones(6, dtype=torch.float64)
            )
    # each sentence alone, unpadded, gives what it gives in the padded batch
    for b, n in enumerate(lengths.tolist()):
        alone, _ = m(source[b : b + 1, :n], lengths[b : b + 1], target_in[b : b + 1])
        torch.testing.assert_close(alone[0], logits[b], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "options", [dict(input_feeding=False), dict(attention="none", input_feeding=False)], ids=str
)
def test_parallel_and_stepwise_decoders_agree(options):
    m = model(**options)
    source, lengths, target_in = batch()
    memory, state = m.encode(source, lengths)
    fast = m.decoder.forward_parallel(target_in, state, memory)
    slow = m.decoder.forward_stepwise(target_in, state, memory, [True] * 6)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def stepwise_by_step(m: Seq2Seq, source, lengths, target_in, gold: list[bool]) -> torch.Tensor:
    """The oracle of ``forward_stepwise``: ``Decoder.step`` (the whole x_t through the layer's
    own forward, torch's kernel) position by position -> logits (B, T, V)."""
    memory, state = m.encode(source, lengths)
    feed = memory.keys.new_zeros(source.shape[0], m.decoder.rnn.hidden_size)
    tokens, logits = target_in[:, 0], []
    for t in range(target_in.shape[1]):
        feed, state, _ = m.decoder.step(tokens, state, feed, memory)
        logits.append(m.decoder.logits(feed))
        if t + 1 < target_in.shape[1]:
            tokens = target_in[:, t + 1] if gold[t + 1] else logits[-1].argmax(-1)
    return torch.stack(logits, dim=1)


@pytest.mark.parametrize("options", VARIANTS, ids=str)
@pytest.mark.parametrize("gold", [[True] * 6, [True, False, True, True, False, False]], ids=str)
def test_split_input_projection_equals_the_step_by_step_decoder(options, gold):
    """forward_stepwise projects the gold embeddings for all steps at once and runs the cells;
    its logits and every gradient equal those of ``step`` run position by position."""
    m = model(**options)
    source, lengths, target_in = batch()
    memory, state = m.encode(source, lengths)
    fast, _ = m.decoder.forward_stepwise(target_in, state, memory, gold)
    slow = stepwise_by_step(m, source, lengths, target_in, gold)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)
    upstream = torch.randn(fast.shape, dtype=fast.dtype)
    grads = []
    for logits in (fast, slow):
        m.zero_grad()
        (logits * upstream).sum().backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-9, atol=1e-10)


def test_teacher_forcing_one_feeds_gold_and_zero_feeds_the_models_own_tokens():
    m = model()
    source, lengths, target_in = batch()
    other = target_in.clone()
    other[:, 1:] = (target_in[:, 1:] + 1) % V_TGT
    forced, _ = m(source, lengths, target_in, teacher_forcing=1.0)
    forced_other, _ = m(source, lengths, other, teacher_forcing=1.0)
    assert not torch.allclose(forced[:, 1:], forced_other[:, 1:])  # the gold tokens are read
    free, _ = m(source, lengths, target_in, teacher_forcing=0.0)
    free_other, _ = m(source, lengths, other, teacher_forcing=0.0)
    torch.testing.assert_close(free, free_other)  # only <bos> is read
    torch.testing.assert_close(free[:, 0], forced[:, 0])
    # free running feeds back its own argmax: equal to teacher forcing on its own greedy output
    own = torch.cat([target_in[:, :1], free.argmax(-1)[:, :-1]], dim=1)
    replayed, _ = m(source, lengths, own, teacher_forcing=1.0)
    torch.testing.assert_close(replayed, free)


def test_incremental_search_steps_equal_the_teacher_forced_forward():
    m = model(cell="lstm")
    source, lengths, target_in = batch()
    logits, _ = m(source, lengths, target_in)
    step_logits, state = m.start(source, lengths, BOS)
    torch.testing.assert_close(step_logits, logits[:, 0])
    for t in range(1, 6):
        step_logits, state = m.search_step(target_in[:, t], state)
        torch.testing.assert_close(step_logits, logits[:, t], rtol=1e-10, atol=1e-10)


def test_beam_one_equals_greedy():
    m = model()
    source, lengths, _ = batch()
    first, state = m.start(source, lengths, BOS)
    expected = greedy(m.search_step, first, state, 8, eos=EOS, batch_dim=0)
    beams = beam_search(m.search_step, first, state, 1, 8, eos=EOS, batch_dim=0)
    assert [b[0][0] for b in beams] == expected


def test_configuration_errors_are_user_errors():
    with pytest.raises(UserError, match="bridge last"):
        model(bridge="last", encoder_hidden_size=4)
    with pytest.raises(UserError, match="blind"):
        model(attention="none", bridge="zero")
    with pytest.raises(UserError, match="tie_weights"):
        model(tie_weights=True)
    tied = model(tie_weights=True, embedding_size=12)
    assert tied.decoder.output.weight is tied.decoder.embedding.weight
