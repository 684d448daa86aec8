"""The recurrent language model: shapes, tied weights, dropout placement, truncated BPTT."""

from __future__ import annotations

import pytest
import torch

from rnnkit.errors import UserError
from rnnkit.tasks import registry
from rnnkit.tasks.lm.model import RNNLanguageModel

ModelConfig = registry.section("model")

VOCAB = 11


def make_model(**options) -> RNNLanguageModel:
    torch.manual_seed(0)
    cfg = ModelConfig(**{"embedding_size": 8, "hidden_size": 8, "num_layers": 2, **options})
    return RNNLanguageModel(VOCAB, cfg)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_shapes_and_state(cell):
    model = make_model(cell=cell)
    logits, state = model(torch.randint(VOCAB, (3, 5)))
    assert logits.shape == (3, 5, VOCAB)
    h = state[0] if cell == "lstm" else state
    assert h.shape == (2, 3, 8)


def test_tied_weights_share_one_matrix_and_need_equal_sizes():
    model = make_model(tie_weights=True)
    assert model.output.weight is model.embedding.weight
    with pytest.raises(UserError, match="tie_weights"):
        make_model(tie_weights=True, hidden_size=16)


def test_init_range_bounds_every_weight():
    model = make_model(init_range=0.05)
    assert all(p.abs().max() <= 0.05 for p in model.parameters())


@pytest.mark.parametrize(
    "cell,variant", [("lstm", {}), ("gru", {"reset": "before"}), ("lstm", {"peephole": True})]
)
def test_windows_with_carried_state_equal_one_long_sequence(cell, variant):
    model = make_model(cell=cell, **variant).eval()
    tokens = torch.randint(VOCAB, (2, 12))
    whole, _ = model(tokens)
    state, parts = None, []
    for start in range(0, 12, 5):
        logits, state = model(tokens[:, start : start + 5], state)
        parts.append(logits)
    torch.testing.assert_close(torch.cat(parts, dim=1), whole)


def test_detached_state_stops_the_gradient_at_the_window():
    from rnnkit.tasks.lm.training import detach_state

    model = make_model()
    tokens = torch.randint(VOCAB, (2, 10))
    embedded = []
    model.rnn.register_forward_pre_hook(lambda module, args: embedded.append(args[0]))
    _, state = model(tokens[:, :5])
    first_window = embedded[0]  # (B, 5, E): the first window's input to the recurrent layer
    truncated = model(tokens[:, 5:], detach_state(state))[0].sum()
    full = model(tokens[:, 5:], state)[0].sum()
    assert torch.autograd.grad(truncated, first_window, allow_unused=True)[0] is None
    assert torch.autograd.grad(full, first_window)[0].abs().sum() > 0


def test_embedding_dropout_drops_whole_word_types():
    model = make_model(embedding_dropout=0.5)
    model.train()
    tokens = torch.arange(VOCAB).repeat(4, 1)  # every type, four times
    torch.manual_seed(1)
    emb = model.embed(tokens)  # (4, V, E)
    dropped = (emb == 0).all(-1)  # (4, V)
    assert dropped.any() and not dropped.all()
    assert torch.equal(dropped, dropped[0].expand_as(dropped))  # same types dropped in every row
    torch.testing.assert_close(emb[0][~dropped[0]], 2 * model.embedding.weight[~dropped[0]])
    model.eval()
    torch.testing.assert_close(model.embed(tokens)[0], model.embedding.weight)
