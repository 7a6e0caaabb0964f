"""Training through the real ``edflow`` with the installed edflow-tf: the template contract, feeds as tf.Tensor,
the checkpoint contents, the Keras config case, and evaluation with training=False."""
import json

import numpy as np
import yaml
from edcore.batching import epoch_indices
from tf_helpers import probe_records, saved_config, tf_project


def test_template_contract_trains_and_logs(reference_run):
    project, run = reference_run
    metrics = project.metrics(run)
    assert [m["global_step"] for m in metrics] == [1, 5, 10, 15, 20]
    # get_global_step() inside the ops is the step being run, counted from 0
    assert [m["step_in_op"] for m in metrics] == [0, 4, 9, 14, 19]
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    assert all(m["replicas"] == 1 for m in metrics)
    assert (run / "tensorboard" / "train").is_dir() and any((run / "tensorboard" / "train").iterdir())


def test_feeds_arrive_as_tensors_in_epoch_order(reference_run):
    project, _run = reference_run
    records = probe_records(project.path / "probe.jsonl")
    assert [r["step"] for r in records] == list(range(20))
    assert all(r["types"] == ["EagerTensor"] for r in records)  # every feed, including the index
    assert all(r["x_dtype"] == "float32" and r["device"].endswith("CPU:0") for r in records)  # float64 cast
    expected = np.concatenate([epoch_indices(64, 3, epoch, True) for epoch in range(3)])[:160].reshape(20, 8)
    assert [r["index"] for r in records] == expected.tolist()


def test_checkpoint_holds_model_optimizer_and_generators(reference_run):
    _project, run = reference_run
    checkpoints = run / "train" / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == "0000000020"
    final = checkpoints / "0000000020"
    objects = json.loads((final / "tf_objects.json").read_text())["objects"]
    # 3 kernels, 3 biases, the dropout seed; and the input shapes it was built for (a resume builds it from them)
    assert objects["model"] == {"kind": "module", "variables": 7, "build": {"input_shape": [None, 4]}}
    assert objects["optimizer"]["kind"] == "optimizer" and objects["optimizer"]["variables"] == 2 + 2 * 6
    assert objects["noise"]["kind"] == objects["global_generator"]["kind"] == "generator"
    manifest = json.loads((final / "manifest.json").read_text())
    assert {"tf_state.index", "tf_state.data-00000-of-00001", "tf_objects.json"} <= set(manifest["files"])
    assert json.loads((final / "edcore.json").read_text())["state"] == {"global_step": 20, "epoch": 2, "position": 4}


def test_config_dump_survives_a_keras_model_that_stores_it(reference_run):
    """EDFlow's bug: the model's ``self.config = config`` turned the config's lists into wrappers YAML cannot dump.
    The project's model holds the config in a tf.Module, which wraps it in place before the checkpointer and the
    evaluation dump it."""
    _project, run = reference_run
    config = saved_config(run)
    assert config["layers"] == [16, 8] and config["net"] == {"dropout": 0.3, "activation": "relu"}
    for path in (run / "configs").glob("*.yaml"):
        text = path.read_text()
        assert "!!python" not in text and "Wrapper" not in text and "Tracked" not in text
        yaml.safe_load(text)


def test_evaluation_calls_the_model_with_training_false(reference_run):
    project, run = reference_run
    flags = project.path / "flags.jsonl"
    project.run("-e", "eval.yaml", "-p", str(run), "--+flags_file", str(flags), timeout=300).assert_success()
    assert set(flags.read_text().split()) == {"false"}  # every call, 4 batches, nothing in training mode
    (eval_dir,) = (run / "eval").iterdir()
    records = probe_records(eval_dir / "eval.jsonl")  # written into the evaluation folder, its root
    assert [r["step"] for r in records] == [20] * 4 and all(r["type"] == "EagerTensor" for r in records)
    assert sum((r["index"] for r in records), []) == list(range(64))  # evaluation never shuffles


def test_tensorflow_start_up_chatter_is_quiet_by_default_and_shown_with_debug(reference_run, tmp_path):
    from edflow_tf.settings import _CHATTER

    def chatter(text):
        return [line for line in text.splitlines() if _CHATTER.match(line.encode())]

    project, _run = reference_run
    quiet = (project.path / "output.txt").read_text()
    assert not chatter(quiet) and "oneDNN" not in quiet and "[train] step 20" in quiet
    debug = tf_project(tmp_path).run("-t", "train.yaml", "-d", "--progress", "false", timeout=300).assert_success()
    assert chatter(debug.output), debug.output  # TensorFlow's own info lines, as it prints them
    assert (tmp_path / "logs" / "debug").is_dir()
