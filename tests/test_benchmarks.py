"""The benchmark scripts run (tiny sizes, one trial) and their loop variants train the same model alike.

No timing is asserted here: speed is measured in benchmarks/, whose README holds the figures.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_every_benchmark_runs_at_tiny_size(tmp_path):
    result = subprocess.run([sys.executable, str(BENCHMARKS / "run_all.py"), "--quick", "--no-install", "--out",
                             str(tmp_path)], capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    names = {path.stem for path in tmp_path.glob("*.json")}
    assert names == {"loop_overhead_torch", "loop_overhead_tf", "data_throughput", "startup", "resume",
                     "checkpoint_cost", "hook_dispatch", "media_cost", "user_path", "user_path_tf",
                     "sweep_overhead"}
    torch_loop = json.loads((tmp_path / "loop_overhead_torch.json").read_text())
    variants = {row["variant"]: row for row in torch_loop["cpu"]}
    assert {"raw loop", "edflow, defaults on", "edflow, everything off"} <= set(variants)
    # Same initial weights, same batches, same steps: the same model, whoever ran the loop.
    assert agree([row["final_loss"] for row in torch_loop["cpu"]]), variants
    tf_loop = json.loads((tmp_path / "loop_overhead_tf.json").read_text())
    tf_variants = {row["variant"] for row in tf_loop["cpu"]}
    # edflow-tf is a dev requirement: its compiled step runs next to the raw tf.function loop and Keras fit.
    assert {"raw tf.function loop", "edflow-tf, jit, defaults on", "edflow-tf, jit, everything off",
            "Keras fit, verbose 0"} <= tf_variants, tf_variants
    assert agree([row["final_loss"] for row in tf_loop["cpu"]]), tf_loop["cpu"]
    no_op = {row["variant"]: row for row in tf_loop["no_op"]}
    assert {"raw loop, no-op step", "edflow-tf, everything off, no-op step"} <= set(no_op), no_op
    assert all(row["median"] > 0 for row in tf_loop["cpu"]), tf_loop["cpu"]
    user_path = json.loads((tmp_path / "user_path.json").read_text())
    for workers in (0, 2):  # edflow's own batching and a raw DataLoader fed the same examples in the same order
        rows = user_path[f"cpu_{workers}_workers"]
        assert {row["variant"] for row in rows} == {f"raw DataLoader loop, {workers} workers",
                                                     f"edflow, defaults on, {workers} workers",
                                                     f"edflow, everything off, {workers} workers"}
        assert agree([row["final_loss"] for row in rows]), rows
    user_path_tf = json.loads((tmp_path / "user_path_tf.json").read_text())
    assert agree([row["final_loss"] for row in user_path_tf["cpu"]]), user_path_tf["cpu"]
    assert "| raw loop |" in (tmp_path / "RESULTS.md").read_text()


def agree(losses: list) -> bool:
    """Equal up to float rounding (Keras and a raw loop may order a sum differently)."""
    return max(losses) - min(losses) <= 1e-4 * max(abs(value) for value in losses)


@pytest.mark.parametrize("mode, expected", [
    ([], {"raw loop", "edflow, everything off", "train(): run only"}),
    (["--defaults"], {"raw loop", "edflow, everything off", "defaults, without TensorBoard"}),
    (["--tf"], {"raw tf.function loop", "raw code as train()", "train(): the step_function method only",
                "train(): run only"}),
], ids=["loop path", "defaults one at a time", "tf"])
def test_loop_ablation_runs_at_tiny_size(tmp_path, mode, expected):
    """Not part of run_all.py; run here so that it cannot rot either. Every ablated loop trains the same model."""
    out = tmp_path / "loop_ablation.json"
    result = subprocess.run([sys.executable, str(BENCHMARKS / "loop_ablation.py"), "--quick", "--out", str(out),
                             *mode], cwd=BENCHMARKS, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads(out.read_text())["cpu"]
    assert expected <= {row["variant"] for row in rows}
    assert agree([row["final_loss"] for row in rows]), rows


def test_step_anatomy_runs_at_tiny_size(tmp_path):
    """Not part of run_all.py either; every way of writing the step trains the same model."""
    out = tmp_path / "step_anatomy.json"
    result = subprocess.run([sys.executable, str(BENCHMARKS / "step_anatomy.py"), "--quick", "--out", str(out)],
                            cwd=BENCHMARKS, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = result["cpu"]
    assert result["hidden"] == 64 and len(rows) == 8 and rows[4]["variant"] == "TemplateIterator.run", rows
    assert all(row["own_us"] > 0 for row in rows[5:]) and all("added_us" in row for row in rows[1:]), rows
    assert agree([row["final_loss"] for row in rows]), rows


def test_log_period_runs_at_tiny_size(tmp_path):
    """Not part of run_all.py either: the step intervals by their offset in the log period, both variants."""
    out = tmp_path / "log_period.json"
    result = subprocess.run([sys.executable, str(BENCHMARKS / "log_period.py"), "--quick", "--out", str(out)],
                            cwd=BENCHMARKS, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = json.loads(out.read_text())
    assert [row["variant"] for row in found["rows"]] == ["edflow, defaults on", "defaults, logging off"]
    assert all(len(row["extra_us_by_offset"]) == 9 and row["ordinary_step_us"] > 0 for row in found["rows"])
