"""edcore.testing, the helper for plugin authors: the edflow_train fixture and its record of hook calls."""
import json

from edcore import hookimpl


class Doubler:
    """Changes the logged scalars after the recorder saw them (registered before it: called after it)."""

    @hookimpl
    def edflow_log(self, global_step, logs):
        logs["scalars"]["loss"] *= 2


def test_training_returns_the_run_folder_and_every_hook_call_with_arguments(edflow_train):
    training = edflow_train(config={"num_steps": 4, "log_freq": 2})
    assert training.returncode == 0
    assert training.run.parent == training.project.path / "logs" and (training.run / "train" / "checkpoints").is_dir()
    names = training.calls.names()
    assert names[:10] == ["edflow_config_schema", "edflow_check_config", "edflow_distributed", "edflow_project_init",
                          "edflow_seed", "edflow_dataset", "edflow_batches", "edflow_model", "edflow_iterator",
                          "edflow_before_training"]
    (check,) = training.calls.arguments("edflow_check_config")
    assert check["mode"] == "train" and check["where"]("batch_size") == "train.yaml:3, key 'batch_size'"
    assert names[-1] == "edflow_after_training"
    (dataset_call,) = training.calls.arguments("edflow_dataset")
    assert dataset_call["mode"] == "train" and dataset_call["config"]["dataset"] == "toy.data.Data"
    (init,) = training.calls.arguments("edflow_project_init")
    assert init["mode"] == "train" and init["project"].root.name == training.run.name and init["config"]["num_steps"] == 4
    assert [args["global_step"] for args in training.calls.arguments("edflow_after_step")] == [1, 2, 3, 4]
    logged = training.calls.arguments("edflow_log")
    assert [(a["global_step"], a["logs"]["scalars"]["loss"]) for a in logged] == \
        [(m["global_step"], m["loss"]) for m in training.metrics()]
    (after,) = training.calls.arguments("edflow_after_training")
    assert after["status"] == "finished" and after["iterator"].get_global_step() == 4
    feeds = training.calls.arguments("edflow_before_step")[0]["feeds"]
    assert sorted(feeds) == ["index", "x", "y"] and feeds["x"].shape == (8, 3)


def test_recorded_arguments_are_copies_taken_at_the_call(edflow_train):
    training = edflow_train(plugins=[Doubler()], config={"num_steps": 1})
    (logged,) = training.calls.arguments("edflow_log")
    (written,) = training.metrics()
    assert written["loss"] == 2 * logged["logs"]["scalars"]["loss"]


def test_given_plugins_and_autoload(edflow_train):
    training = edflow_train(config={"num_steps": 1}, autoload=False)
    plugins = json.loads((training.run / "run.json").read_text())["invocations"][0]["plugins"]
    names = [row["name"] for row in plugins]
    assert "torch" not in names and "csv_metrics" not in names and names[-1] == "test-0"  # the recorder
    training = edflow_train(plugins=[Doubler()], config={"num_steps": 1})
    names = [row["name"] for row in json.loads((training.run / "run.json").read_text())["invocations"][0]["plugins"]]
    assert "torch" in names and names[-2:] == ["test-0", "test-1"]


def test_own_files_and_a_failing_training(edflow_train):
    files = {"failing/__init__.py": "", "failing/data.py": '''
        class Data:
            def __init__(self, config):
                raise ValueError("no data here")
    '''}
    training = edflow_train(files=files, config={"dataset": "failing.data.Data", "iterator": "edcore.Iterator",
                                                 "batch_size": 2, "num_steps": 1, "code_root": None})
    assert training.returncode == 1
    assert training.calls.names()[-4:] == ["edflow_project_init", "edflow_seed", "edflow_dataset", "edflow_exception"]
    assert json.loads((training.run / "status.json").read_text())["status"] == "failed"  # crashed before the loop
