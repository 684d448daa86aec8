"""schemathesis 4 (``pip install "schemathesis<5"``) against a real ``rnnkit serve`` of one run per
task, with an API key: every endpoint of the served schema, a bounded number of generated
requests (valid and invalid), every check (no 5xx, responses that fit the schema, errors for
bad input and a missing key). The server's own log then says how many requests it answered,
that none was a 5xx and that none took longer than the time limit."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from conftest import LM_RUN, serve_process

KEY = "fuzz-key"
EXAMPLES = 100  # per operation and phase: about 750 requests, 20-60 s on 2 cores
TIME_LIMIT = 10.0
LOGGED = re.compile(r" (GET|POST) (\S+) (\d{3}) ([\d.]+) ms batch ")


def test_fuzz_the_served_schema(reverse_run, labelled_runs, tmp_path):
    classify, tag = labelled_runs
    runs = [f"lm={LM_RUN}", f"reverse={reverse_run}", f"cls={classify}", f"tag={tag}"]
    report = tmp_path / "report.json"
    args = [*runs, "--api-key", KEY, "--time-limit", str(TIME_LIMIT)]
    with serve_process(*args) as (process, url, output):
        result = subprocess.run(
            [str(Path(sys.executable).with_name("schemathesis")), "run",
             f"{url}/openapi.json", "--checks", "all", "--max-examples", str(EXAMPLES),
             "--max-response-time", str(TIME_LIMIT), "--seed", "1", "--header",
             f"Authorization: Bearer {KEY}", "--report", "json", "--report-json-path",
             str(report)],
            capture_output=True, text=True, timeout=150,
        )  # fmt: skip
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        log = output()
    assert result.returncode == 0, result.stdout[-6000:]
    cases = json.loads(report.read_text())["test_cases"]
    answered = [(m[2], int(m[3]), float(m[4])) for m in LOGGED.finditer(log)]
    statuses = sorted({status for _, status, _ in answered})
    slowest = max(ms for _, _, ms in answered)
    print(f"schemathesis: {cases['generated']} test cases, {cases['with_failures']} with "
          f"failures; the server answered {len(answered)} requests, statuses {statuses}, "
          f"slowest {slowest:.0f} ms")  # fmt: skip
    assert cases["generated"] >= 200 and cases["with_failures"] == 0
    assert len(answered) >= 0.9 * cases["generated"]  # a few cases are checked client-side
    assert all(status < 500 for status in statuses)
    assert slowest < TIME_LIMIT * 1000
    assert {path for path, _, _ in answered} >= {
        "/v1/generate", "/v1/score", "/v1/translate", "/v1/predict", "/v1/models", "/health"
    }  # fmt: skip
