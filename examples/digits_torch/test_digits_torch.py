"""The README's first command: the digits example trains through the real ``edflow -t`` and generalizes."""
from pathlib import Path

import torch
import yaml
from edcore.checkpoint import CheckpointStore
from edcore.testing import EdflowProject

from examples.digits_torch.callbacks import accuracy
from examples.digits_torch.data import DigitsHeldOut, DigitsTrain
from examples.digits_torch.model import CNN

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE = REPOSITORY / "examples" / "digits_torch"


def test_the_split_is_fixed_and_disjoint():
    train, held_out = DigitsTrain({}), DigitsHeldOut({})
    assert (len(train), len(held_out)) == (1438, 359)
    assert train.images.dtype.name == "float32" and train.images.shape[1:] == (1, 8, 8)
    seen = {image.tobytes() for image in train.images}
    assert not any(image.tobytes() in seen for image in held_out.images)  # no held-out image was trained on
    assert (DigitsHeldOut({}).labels == held_out.labels).all()


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
    held_out = DigitsHeldOut(config)
    with torch.inference_mode():
        predictions = model(torch.from_numpy(held_out.images)).argmax(1).numpy()
    # The callback eval.yaml names, fed the way an evaluation process feeds it (per-example eval op outputs).
    assert config["eval_callbacks"] == {"accuracy": "examples.digits_torch.callbacks.accuracy"}
    metrics = accuracy(str(tmp_path), held_out, {"prediction": predictions}, config)
    assert metrics["accuracy"] >= 0.95, metrics
