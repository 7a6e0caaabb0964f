"""The autoencoder example as the README runs it: it trains through the real ``edflow -t``, writes its inputs and
reconstructions as PNG grids and TensorBoard images, and an evaluation of the run writes its own."""
import json
from pathlib import Path

import numpy as np
import pytest
from edcore.testing import EdflowProject
from PIL import Image

REPOSITORY = Path(__file__).resolve().parents[2]
LOGGED = [1, 150, 300, 450, 600, 750, 900, 1050, 1200, 1350]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    logs = tmp_path_factory.mktemp("autoencoder")
    # Exactly the README's command, from the repository root; only the log folder is redirected.
    outcome = EdflowProject(REPOSITORY).run("-t", "examples/autoencoder_torch/train.yaml", "--logdir", str(logs),
                                           timeout=600).assert_success()
    (folder,) = [p for p in logs.iterdir() if p.is_dir()]
    assert f"training finished at global step 1350; run folder {folder}" in outcome.stderr
    assert "not logged" not in outcome.stderr and "does not write" not in outcome.stderr
    return folder


def pixels(path):
    return np.asarray(Image.open(path), dtype=np.float64)


def test_inputs_and_reconstructions_are_written_at_every_logged_step(run):
    for key in ("inputs", "reconstructions"):
        names = sorted(p.name for p in (run / "train" / "images" / key).iterdir())
        assert names == [f"{step:010d}.png" for step in LOGGED]
    # 32 images of 16x16 (max_per_grid 32): 6 columns, 6 rows, 2 white pixels between them
    image = Image.open(run / "train" / "images" / "inputs" / "0000000150.png")
    assert (image.mode, image.size) == ("L", (6 * 18 - 2, 6 * 18 - 2))


def test_the_reconstructions_come_to_look_like_the_inputs(run):
    folder = run / "train" / "images"
    first = np.abs(pixels(folder / "reconstructions" / "0000000001.png") - pixels(folder / "inputs" / "0000000001.png"))
    last = np.abs(pixels(folder / "reconstructions" / "0000001350.png") - pixels(folder / "inputs" / "0000001350.png"))
    assert last.mean() < first.mean() / 3, (first.mean(), last.mean())
    losses = [json.loads(line)["loss"] for line in (run / "train" / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0] / 10


def test_tensorboard_shows_the_grids_and_the_code_histogram(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard" / "train"), size_guidance={"images": 0, "histograms": 0})
    events.Reload()
    assert [e.step for e in events.Images("reconstructions")] == LOGGED
    assert [e.step for e in events.Histograms("code")] == LOGGED
    assert [e.step for e in events.Scalars("loss")] == LOGGED


def test_an_evaluation_of_the_run_reports_its_error_and_writes_its_images(run):
    outcome = EdflowProject(REPOSITORY).run("-e", "examples/autoencoder_torch/eval.yaml", "-p", str(run),
                                           timeout=600).assert_success()
    (folder,) = (run / "eval").iterdir()
    metrics = json.loads((folder / "0000001350" / "metrics.json").read_text())
    assert metrics["reconstruction_error/mse"] < 0.05, (metrics, outcome.stderr)
    grid = Image.open(folder / "0000001350" / "images" / "reconstructions" / "0000001350.png")
    assert grid.size == (6 * 18 - 2, 6 * 18 - 2)  # the first 32 of the first batch of 120
