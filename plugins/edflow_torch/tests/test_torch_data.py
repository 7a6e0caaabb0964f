"""edcore.data through the DataLoader: seeded augmentation is the same after a mid-epoch resume, in worker
processes and in the main process alike."""
import json

import numpy as np
import pytest
import torch

AUGMENTATION = {
    "tiny/augment.py": '''
        import json
        import os

        from edcore import hookimpl


        def jitter(example, rng):
            return {"x": example["x"] + rng.normal(size=4)}


        class Served:
            """Appends every training batch as it came from the DataLoader to $TINY_SERVED."""

            @hookimpl
            def edflow_after_step(self, global_step, batch):
                with open(os.environ["TINY_SERVED"], "a") as stream:
                    stream.write(json.dumps({"global_step": global_step, "index": batch["index"].tolist(),
                                             "x": batch["x"].tolist()}) + "\\n")
    ''',
}


def served(path):
    """``{global step: (indices, augmented x)}`` of the batches a run trained on."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["global_step"]: (r["index"], np.array(r["x"])) for r in records}


def run(project, monkeypatch, served_file, *args):
    monkeypatch.setenv("TINY_SERVED", str(served_file))
    assert project.run_in_process(*args) == 0


@pytest.mark.parametrize("workers", [0, 2])
def test_augmented_examples_are_the_same_after_a_mid_epoch_resume(torch_project, tmp_path, monkeypatch, workers):
    # 40 examples in batches of 4: 10 steps per epoch. Stop at step 7 (mid epoch 0), resume up to 13 (epoch 1).
    torch_project.tiny(num_steps=13, torch={"num_workers": workers}, dataset="edcore.data.RandomlyAugmented",
                       RandomlyAugmented={"dataset": "tiny.data.Data", "function": "tiny.augment.jitter"},
                       plugins=["tiny.augment.Served"])
    torch_project.write(AUGMENTATION)
    straight, stopped = tmp_path / "straight.jsonl", tmp_path / "stopped.jsonl"
    run(torch_project, monkeypatch, straight, "-t", "train.yaml", "-n", "straight")
    run(torch_project, monkeypatch, stopped, "-t", "train.yaml", "-n", "stopped", "--num_steps", "7")
    (stopped_run,) = [r for r in torch_project.runs() if r.name.endswith("_stopped")]
    run(torch_project, monkeypatch, stopped, "-p", str(stopped_run), "--num_steps", "13")

    expected, resumed = served(straight), served(stopped)
    assert sorted(expected) == sorted(resumed) == list(range(1, 14))
    for step in expected:
        assert expected[step][0] == resumed[step][0], step
        assert np.array_equal(expected[step][1], resumed[step][1]), step

    # What was served is the example plus the noise of (seed, epoch, index): the epoch reached the workers too,
    # so any number of workers serves the same as the main process.
    from tiny.data import Data

    original = Data({}).x
    for step, (indices, x) in expected.items():
        epoch = (step - 1) // 10
        noise = [np.random.default_rng(np.random.SeedSequence([3, epoch, i])).normal(size=4) for i in indices]
        assert np.array_equal(x, original[indices] + np.stack(noise)), step

    finals = [torch.load(r / "train" / "checkpoints" / "0000000013" / "torch_state.pt", weights_only=True)["model"]
              for r in torch_project.runs()]
    assert all(torch.equal(finals[0][key], finals[1][key]) for key in finals[0])
