"""rnnkit.config: a saved config reads back; keys and choices are checked."""

from __future__ import annotations

import pytest

from rnnkit.errors import UserError
from rnnkit.tasks import registry
from rnnkit.tasks.registry import config_from_dict, load_config

Config = registry.config_class()


def test_a_saved_config_reads_back_unchanged():
    cfg = load_config(
        None, ["task=translate", "data.synthetic=reverse", "model.attention=additive"]
    )
    assert config_from_dict(cfg.to_dict()) == cfg
    default = Config()  # optional choices left null (data.synthetic, ...) are valid
    assert config_from_dict(default.to_dict()) == default


def test_unknown_keys_and_bad_choices_are_one_line_errors():
    with pytest.raises(
        UserError, match=r"unknown key 'model.atention' \(did you mean 'model.attention'\?\)"
    ):
        load_config(None, ["model.atention=dot"])
    with pytest.raises(
        UserError, match="model.attention' must be one of none, dot, general, concat, additive"
    ):
        load_config(None, ["model.attention=luong"])
    with pytest.raises(UserError, match="data.synthetic"):
        load_config(None, ["data.synthetic=copy"])
