"""The README's first command: the digits example trains through the real ``edflow -t`` and generalizes."""
from pathlib import Path

import numpy as np
import torch
import yaml
from edcore.checkpoint import CheckpointStore
from edcore.data import split
from edcore.testing import EdflowProject

from examples.digits_torch.callbacks import accuracy
from examples.digits_torch.model import CNN

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE = REPOSITORY / "examples" / "digits_torch"


def part(config_name):
    """The dataset a config of the example names, created as edflow creates it."""
    return split(yaml.safe_load((EXAMPLE / config_name).read_text()))


def test_the_split_is_fixed_and_disjoint():
    train, held_out = part("train.yaml"), part("eval.yaml")
    assert (len(train), len(held_out)) == (1438, 359)
    assert train[0]["image"].dtype.name == "float32" and train[0]["image"].shape == (1, 8, 8)
    seen = {train[i]["image"].tobytes() for i in range(len(train))}
    assert not any(held_out[i]["image"].tobytes() in seen for i in range(len(held_out)))  # never trained on
    assert (part("eval.yaml").labels["label"] == held_out.labels["label"]).all()  # the same on every call


def test_the_example_reaches_95_percent_on_held_out_digits(tmp_path):
    # Exactly the README's command, from the repository root; only the log folder is redirected.
    outcome = EdflowProject(REPOSITORY).run("-t", "examples/digits_torch/train.yaml", "--logdir", str(tmp_path),
                                           timeout=600).assert_success()
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert f"training finished at global step 540; run folder {run}" in outcome.stderr

    metrics = EdflowProject(tmp_path).metrics(run)
    assert [m["global_step"] for m in metrics][:3] == [1, 50, 100] and {"loss", "accuracy"} <= set(metrics[-1])
    final = CheckpointStore(run / "train" / "checkpoints").latest()
    assert final.step == 540 and final.manifest["reason"] == "final"

    config = yaml.safe_load((EXAMPLE / "eval.yaml").read_text())
    model = CNN(config)
    model.load_state_dict(torch.load(final.path / "torch_state.pt", weights_only=True)["model"])
    model.eval()
    held_out = split(config)
    images = np.stack([held_out[i]["image"] for i in range(len(held_out))])
    with torch.inference_mode():
        predictions = model(torch.from_numpy(images)).argmax(1).numpy()
    # The callback eval.yaml names, fed the way an evaluation process feeds it (per-example eval op outputs).
    assert config["eval_callbacks"] == {"accuracy": "examples.digits_torch.callbacks.accuracy"}
    metrics = accuracy(str(tmp_path), held_out, {"prediction": predictions}, config)
    assert metrics["accuracy"] >= 0.95, metrics
