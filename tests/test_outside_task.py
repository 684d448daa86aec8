"""A task defined entirely in ``tests/running_sum_task.py`` joins rnnkit through the registry:
its config keys are checked, and it trains, resumes bit for bit after a SIGKILL, loads with
``rnnkit.load``, serves its own ``POST /v1/running_sum`` and exports to ONNX, decoding there
as in PyTorch, with no change to ``rnnkit/``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

import rnnkit
from rnnkit.errors import UserError
from rnnkit.export.onnx_export import export_onnx
from rnnkit.serve.app import create_app
from rnnkit.tasks import registry

sys.path.insert(0, str(Path(__file__).parent))
import running_sum_task  # noqa: E402

TESTS = Path(__file__).parent
CONFIG = {
    "task": "running_sum",
    "seed": 5,
    "data": {"digits": 6, "sequences": 1280, "batch_size": 32},
    "model": {"cell": "gru", "embedding_size": 8, "hidden_size": 64, "num_layers": 1},
    "train": {"epochs": 12, "optimizer": "adam", "lr": 0.01, "checkpoint_every": 40,
              "progress": False},
}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def registered():
    registry.register(running_sum_task.TASK)
    yield
    registry.unregister("running_sum")


def write_config(tmp: Path) -> Path:
    path = tmp / "running_sum.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("outside")
    cfg = rnnkit.load_config(write_config(tmp), [f"run_dir={tmp / 'run'}"])
    rnnkit.train(cfg)
    return tmp / "run"


def test_its_keys_join_the_config_and_are_checked(tmp_path):
    keys = registry.config_keys("running_sum")
    assert set(keys["data"]) == {"batch_size", "digits", "sequences", "eval_batch_size"}
    assert "embedding_size" in keys["model"] and keys["decode"] == []
    with pytest.raises(UserError, match="key 'data.digits' must be >= 1, got 0"):
        rnnkit.load_config(write_config(tmp_path), ["data.digits=0"])
    with pytest.raises(UserError, match="'data.digits' is for running_sum runs, not task 'lm'"):
        rnnkit.load_config(None, ["data.digits=4"])


def test_it_trains_and_loads(trained):
    run = rnnkit.load(trained)
    assert run.task == "running_sum" and len(run.running_sum(["3 5 4 9 0 1"])[0].split()) == 6
    assert run.evaluate("test")["sequence_accuracy"] > 0.9  # 0.97 on seeds and CPUs tried


def test_a_killed_run_resumes_bit_for_bit(tmp_path):
    config = write_config(tmp_path)
    script = [sys.executable, str(TESTS / "running_sum_task.py"), str(config)]
    subprocess.run([*script, str(tmp_path / "whole")], check=True, timeout=300)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*script, str(killed)], stdout=subprocess.DEVNULL)
    latest = killed / "checkpoints" / "LATEST"
    deadline = time.time() + 120
    while not latest.exists() and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "training ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rnnkit.train(None, resume=killed)
    whole = (tmp_path / "whole" / "model.safetensors").read_bytes()
    assert (killed / "model.safetensors").read_bytes() == whole


def test_it_serves_its_own_endpoint(trained):
    run = rnnkit.load(trained)
    sequences = ["3 5 4 9 0 1", "1 1 1 1 1 1"]
    with TestClient(create_app({"sums": run})) as client:
        answer = client.post("/v1/running_sum", json={"sequences": sequences})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"model": "sums", "sums": run.running_sum(sequences)}
        assert client.post("/v1/running_sum", json={"sequences": []}).status_code == 422
        assert "/v1/running_sum" in client.get("/openapi.json").json()["paths"]


def test_it_exports_and_decodes_the_same_in_onnxruntime(trained, tmp_path):
    run = rnnkit.load(trained)
    export_onnx(run, tmp_path / "export")
    exported = rnnkit.load(tmp_path / "export")
    inputs = ["3 5 4 9 0 1", "0 0 7 7 7 7", "9 9 9 9 9 9"]
    assert exported.running_sum(inputs) == run.running_sum(inputs)
