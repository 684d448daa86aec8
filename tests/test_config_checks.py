"""The catalog of bad input: every bad config value and command-line argument gives one line,
exit status 2, and leaves no run directory behind; a run directory stores only its task's keys
and still loads; a run that died before its first checkpoint does not block the same command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

import rnnkit
from rnnkit.cli import main
from rnnkit.config import CONFIG_VERSION, run_config
from rnnkit.errors import UserError
from rnnkit.runs.rundir import RunDir
from rnnkit.tasks.registry import load_config

FIXTURE_RUN = Path(__file__).parent / "fixtures" / "lm-run-v1"

# (overrides, a fragment the one line must hold)
BAD_CONFIG = [
    (["model.hidden_size=-3"], "'model.hidden_size' must be >= 1, got -3"),
    (["model.hidden_size=0"], "'model.hidden_size' must be >= 1"),
    (["data.batch_size=0"], "'data.batch_size' must be >= 1"),
    (["data.bptt=0"], "'data.bptt' must be >= 1"),
    (["model.num_layers=0"], "'model.num_layers' must be >= 1"),
    (["model.embedding_size=-1"], "'model.embedding_size' must be >= 1"),
    (["data.eval_batch_size=0"], "'data.eval_batch_size' must be >= 1"),
    (["data.min_freq=0"], "'data.min_freq' must be >= 1"),
    (["data.max_size=0"], "'data.max_size' must be >= 1"),
    (["train.epochs=0"], "'train.epochs' must be >= 1"),
    (["train.max_steps=-1"], "'train.max_steps' must be >= 1"),
    (["model.dropout=1.0"], "'model.dropout' must be >= 0 and < 1, got 1.0"),
    (["model.dropout=-0.1"], "'model.dropout' must be >= 0 and < 1"),
    (["model.embedding_dropout=2"], "'model.embedding_dropout' must be >= 0 and < 1"),
    (["data.valid_fraction=1.5"], "'data.valid_fraction' must be > 0 and < 1"),
    (["data.valid_fraction=0"], "'data.valid_fraction' must be > 0 and < 1"),
    (["train.label_smoothing=1"], "'train.label_smoothing' must be >= 0 and < 1"),
    (["train.lr=0"], "'train.lr' must be > 0, got 0"),
    (["train.lr=-1"], "'train.lr' must be > 0"),
    (["train.lr=.nan"], "'train.lr' must be > 0, got nan"),
    (["train.clip_norm=0"], "'train.clip_norm' must be > 0"),
    (["train.momentum=1"], "'train.momentum' must be >= 0 and < 1"),
    (["train.lr_decay=0"], "'train.lr_decay' must be > 0 and <= 1"),
    (["train.weight_decay=-0.01"], "'train.weight_decay' must be >= 0"),
    (["model.init_range=-0.1"], "'model.init_range' must be > 0"),
    (["seed=-1"], "'seed' must be >= 0"),
    # another task's keys
    (["model.bridge=zero"], "'model.bridge' is for translate runs, not task 'lm'"),
    (["data.source_suffix=de"], "'data.source_suffix' is for translate runs, not task 'lm'"),
    (["train.teacher_forcing=0.5"], "'train.teacher_forcing' is for translate runs"),
    (["decode.beam_size=3"], "'decode.beam_size' is for translate runs"),
    (["model.char_features=true"], "'model.char_features' is for tag runs, not task 'lm'"),
    (["data.sequence_length=50"], "'data.sequence_length' is for adding, copy runs"),
    (["task=translate", "data.bptt=50"], "'data.bptt' is for lm runs, not task 'translate'"),
    (["model.pooling=max"], "'model.pooling' is for classify runs, not task 'lm'"),
    (["model.embedding_dropout=0.5", "task=tag"], "'data.bptt' is for lm runs, not task 'tag'"),
    # out of range in another task's section, for that task
    (["task=translate", "train.teacher_forcing=1.5"], "'train.teacher_forcing' must be >= 0"),
    (["task=translate", "decode.beam_size=0"], "'decode.beam_size' must be >= 1"),
    # wrong types and choices
    (["model.hidden_size=abc"], "'model.hidden_size': expected int, got 'abc'"),
    (["model.hidden_size=2.5"], "'model.hidden_size': expected int, got 2.5"),
    (["train.lr=[1]"], "'train.lr': expected float, got [1]"),
    (["model.peephole=maybe"], "'model.peephole': expected bool, got 'maybe'"),
    (["model.hidden_size=null"], "'model.hidden_size': must not be null"),
    (["model.cell=transformer"], "'model.cell' must be one of rnn, lstm, gru"),
    (["train.optimizer=lbfgs"], "'train.optimizer' must be one of sgd, momentum"),
    (["model.hiden_size=3"], "unknown key 'model.hiden_size' (did you mean 'model.hidden_size'?)"),
]

# (command-line arguments after the command and the run, a fragment of the one line)
BAD_ARGUMENTS = [
    (["generate", "--max-new-tokens", "-5"], "--max-new-tokens/--max-tokens: must be >= 1, got -5"),
    (["generate", "--max-tokens", "0"], "must be >= 1, got 0"),
    (["generate", "--beam", "0"], "argument --beam: must be >= 1"),
    (["generate", "--num-samples", "0"], "argument --num-samples: must be >= 1"),
    (["generate", "--num-samples", "-2"], "argument --num-samples: must be >= 1"),
    (["generate", "--temperature", "-1"], "argument --temperature: must be >= 0"),
    (["generate", "--top-k", "-1"], "argument --top-k: must be >= 0"),
    (["generate", "--top-p", "0"], "argument --top-p: must be >= 1e-09 and <= 1"),
    (["generate", "--top-p", "1.5"], "argument --top-p: must be >= 1e-09 and <= 1"),
    (["generate", "--max-new-tokens", "ten"], "expected int, got 'ten'"),
    (["translate", "--beam", "0"], "argument --beam: must be >= 1"),
    (["translate", "--n-best", "0"], "argument --n-best: must be >= 1"),
    (["evaluate", "--beam", "-2"], "argument --beam: must be >= 1"),
    (["predict", "--device"], "expected one argument"),
]


def run_main(argv: list[str]) -> int:
    """``rnnkit ARGV`` in this process; argparse's own exits become the status."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def assert_one_line(capsys, *fragments: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit: error: "), captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("to be or not to be\nthat is the question\n" * 40, encoding="utf-8")
    return path


def lm_recipe(tmp_path: Path, corpus: Path) -> Path:
    recipe = {
        "task": "lm",
        "data": {"train": str(corpus), "tokenizer": "char", "bptt": 8, "batch_size": 4},
        "model": {"embedding_size": 8, "hidden_size": 8, "num_layers": 1, "init_range": None},
        "train": {"epochs": 1, "max_steps": 2, "progress": False, "optimizer": "adam"},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def test_the_catalog_has_at_least_25_entries():
    assert len(BAD_CONFIG) + len(BAD_ARGUMENTS) >= 25


@pytest.mark.parametrize("overrides,fragment", BAD_CONFIG, ids=lambda v: str(v))
def test_a_bad_config_value_is_one_line_exit_2_and_no_run_directory(
    overrides, fragment, tmp_path, corpus, capsys
):
    run = tmp_path / "run"
    status = run_main(
        ["train", str(lm_recipe(tmp_path, corpus)), *overrides, "--run-dir", str(run)]
    )
    assert status == 2
    assert_one_line(capsys, fragment)
    assert not run.exists()


@pytest.mark.parametrize("argv,fragment", BAD_ARGUMENTS, ids=lambda v: str(v))
def test_a_bad_argument_is_one_line_exit_2(argv, fragment, capsys):
    command, *rest = argv
    assert run_main([command, str(FIXTURE_RUN), *rest]) == 2
    assert_one_line(capsys, fragment)


def test_version(capsys):
    assert run_main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("rnnkit 0.")


def test_missing_data_or_bad_embeddings_leave_no_run_directory(tmp_path, corpus, capsys):
    run = tmp_path / "run"
    recipe = str(lm_recipe(tmp_path, corpus))
    missing = tmp_path / "missing.txt"
    assert run_main(["train", recipe, f"data.train={missing}", "--run-dir", str(run)]) == 2
    assert_one_line(capsys, "missing.txt")
    assert not run.exists()
    vectors = f"model.pretrained_embeddings={missing}"
    assert run_main(["train", recipe, "data.tokenizer=word", vectors, "--run-dir", str(run)]) == 2
    assert_one_line(capsys, "missing.txt")
    assert not run.exists()


def test_a_run_killed_before_its_first_checkpoint_does_not_block_the_same_command(
    tmp_path, corpus, capsys
):
    run = tmp_path / "run"
    recipe = lm_recipe(tmp_path, corpus)
    # What a SIGKILL during the first steps leaves: the config and the tokenizer, no checkpoint.
    stillborn = RunDir.create(run)
    stillborn.save_config(run_config(load_config(recipe)))
    assert run_main(["train", str(recipe), "--run-dir", str(run)]) == 0
    assert RunDir.open(run).load_checkpoint() is not None
    # A run with a checkpoint is the user's work: the same command is now refused.
    assert run_main(["train", str(recipe), "--run-dir", str(run)]) == 2
    assert_one_line(capsys, "already a run directory")


def test_a_run_directory_stores_only_its_tasks_keys_with_a_version(tmp_path, corpus):
    run = tmp_path / "run"
    assert run_main(["train", str(lm_recipe(tmp_path, corpus)), "--run-dir", str(run)]) == 0
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert stored["config_version"] == CONFIG_VERSION
    assert "decode" not in stored or not stored["decode"]
    assert "bptt" in stored["data"] and "source_suffix" not in stored["data"]
    assert "bridge" not in stored["model"] and "char_features" not in stored["model"]
    assert "teacher_forcing" not in stored["train"] and "lr" in stored["train"]


def test_a_config_from_a_newer_rnnkit_is_refused(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE_RUN, run)
    stored = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump(stored | {"config_version": 99}))
    with pytest.raises(UserError, match="config_version 99 is newer than this rnnkit reads"):
        rnnkit.load(run)


def test_the_committed_run_directory_still_loads_and_scores_the_same():
    """tests/fixtures/lm-run-v1 was written by rnnkit's trainer (config format 1); its test loss
    was recorded then. A change that breaks reading old runs fails here."""
    run = rnnkit.load(FIXTURE_RUN)
    assert run.task == "lm" and run.describe()["parameters"] > 0
    expected = json.loads((FIXTURE_RUN / "expected.json").read_text())
    scores = run.evaluate(data=FIXTURE_RUN / "sample.txt")
    assert scores["loss"] == pytest.approx(expected["loss"], rel=1e-4)


RECIPES = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_recipe_loads_and_sets_only_keys_of_its_task(recipe):
    """A recipe key its task ignores would be a silent no-op: every key set must be stored."""
    cfg = load_config(str(recipe))
    assert cfg.run_dir.startswith("runs/")
    stored = run_config(cfg)
    for section, keys in yaml.safe_load(recipe.read_text()).items():
        if isinstance(keys, dict):
            assert set(keys) <= set(stored.get(section, {})), (section, set(keys))
