"""The real edflow command in subprocesses: run folders, -p, -c, -r, -n, -d, overrides, exit codes."""
import json
import subprocess
import sys

import pytest
import yaml


def steps_of(run):
    return sorted(int(p.name) for p in (run / "train" / "checkpoints").iterdir() if p.name.isdigit())


def test_training_creates_the_run_folder(edflow_project):
    edflow_project.toy(tensorboard=True)
    edflow_project.run("-t", "train.yaml").assert_success()
    (run,) = edflow_project.runs()
    assert run.name.endswith("_train")  # named after the config file
    for path in ("configs", "code/toy/data.py", "code/toy/iterator.py", "train/log.txt", "train/metrics.jsonl",
                 "train/checkpoints/latest", "run.json", "eval"):
        assert (run / path).exists(), path
    assert steps_of(run) == [5, 10]
    (config_file,) = [p for p in (run / "configs").glob("train_*.yaml") if "origins" not in p.name]
    effective = yaml.safe_load(config_file.read_text())
    assert effective["batch_size"] == 8 and effective["seed"] == 1 and effective["test_mode"] is False
    origins = yaml.safe_load(config_file.with_suffix(".origins.yaml").read_text())
    assert origins["batch_size"] == "train.yaml:3" and origins["test_mode"] == "default"
    log = (run / "train" / "log.txt").read_text()
    assert "training finished at global step 10" in log
    invocation = json.loads((run / "run.json").read_text())["invocations"][0]
    assert invocation["command"][1:] == ["-t", "train.yaml"] and invocation["snapshot"]["files"] == 3

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard" / "train"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [1, 5, 10]


def test_run_name_from_flag_then_experiment_name(edflow_project):
    edflow_project.toy(experiment_name="from_config")
    edflow_project.run("-t", "train.yaml").assert_success()
    edflow_project.run("-t", "train.yaml", "-n", "from_flag").assert_success()
    names = sorted(run.name.split("_", 1)[1] for run in edflow_project.runs())
    assert names == ["from_config", "from_flag"]


def test_overrides_reach_the_config_with_their_origin(edflow_project):
    edflow_project.toy()
    edflow_project.run("-t", "train.yaml", "--num_steps", "3", "--+toy_examples=24", "--+extra/deep.key", "[1,2]").assert_success()
    (run,) = edflow_project.runs()
    (config_file,) = [p for p in (run / "configs").glob("train_*.yaml") if "origins" not in p.name]
    effective = yaml.safe_load(config_file.read_text())
    assert effective["num_steps"] == 3 and effective["toy_examples"] == 24 and effective["extra"] == {"deep": {"key": [1, 2]}}
    assert steps_of(run) == [3]


def test_base_configs_merge_under_the_train_config(edflow_project):
    edflow_project.toy()
    (edflow_project.path / "base.yaml").write_text("batch_size: 4\nnum_steps: 2\nlog_freq: 1\n")
    (edflow_project.path / "short.yaml").write_text("num_steps: 1\n")
    edflow_project.run("-b", "base.yaml", "-t", "short.yaml", "--dataset", "toy.data.Data",
                       "--iterator", "toy.iterator.Iterator").assert_success()
    (run,) = edflow_project.runs()
    assert steps_of(run) == [1]
    assert json.loads((run / "train" / "metrics.jsonl").read_text().splitlines()[0])["global_step"] == 1


def test_resume_with_p_continues_in_the_same_folder(edflow_project):
    edflow_project.toy(num_steps=4, ckpt_freq=2)
    edflow_project.run("-t", "train.yaml").assert_success()
    (run,) = edflow_project.runs()
    outcome = edflow_project.run("-p", str(run), "--num_steps", "8").assert_success()
    assert "restored checkpoint" in outcome.stderr and "global step 4" in outcome.stderr
    assert edflow_project.runs() == [run]
    assert steps_of(run) == [2, 4, 6, 8]
    assert len([p for p in (run / "configs").glob("train_*.yaml") if "origins" not in p.name]) == 2
    # a finished run continued without more steps does nothing and says so
    again = edflow_project.run("-p", str(run)).assert_success()
    assert "nothing to do" in again.stderr


def test_p_accepts_a_config_inside_the_run(edflow_project):
    edflow_project.toy(num_steps=2)
    edflow_project.run("-t", "train.yaml").assert_success()
    (run,) = edflow_project.runs()
    (config_file,) = [p for p in (run / "configs").glob("train_*.yaml") if "origins" not in p.name]
    edflow_project.run("-p", str(config_file), "--num_steps", "3").assert_success()
    assert steps_of(run) == [2, 3]


def test_c_starts_a_new_run_from_a_checkpoint_and_r_resets_the_step(edflow_project):
    edflow_project.toy(num_steps=4)
    edflow_project.run("-t", "train.yaml", "-n", "first").assert_success()
    (first,) = edflow_project.runs()
    checkpoint = first / "train" / "checkpoints" / "0000000004"
    continued = edflow_project.run("-t", "train.yaml", "-c", str(checkpoint), "--num_steps", "6", "-n", "cont")
    assert "global step 4" in continued.assert_success().stderr
    retrained = edflow_project.run("-t", "train.yaml", "-c", str(checkpoint), "-r", "--num_steps", "3", "-n", "re")
    assert "global step reset to 0" in retrained.assert_success().stderr
    runs = {run.name.split("_", 1)[1]: run for run in edflow_project.runs()}
    assert steps_of(runs["cont"]) == [5, 6] and steps_of(runs["re"]) == [3]  # 5: end of the first epoch
    import numpy as np

    # -r keeps the weights of the checkpoint: the first step of the retrained run starts from them
    assert not np.allclose(np.load(runs["re"] / "train/checkpoints/0000000003/w.npy"), 0)


def test_debug_mode_runs_a_few_steps_into_a_separate_folder(edflow_project):
    edflow_project.toy(num_steps=1000, toy_examples=200)
    outcome = edflow_project.run("-t", "train.yaml", "-d").assert_success()
    assert edflow_project.runs() == []
    (run,) = (edflow_project.path / "logs" / "debug").iterdir()
    # debug/max_examples defaults to 5 * batch_size: 40 of the 200 examples, 5 batches per epoch; max_steps 10
    assert "40 examples, 5 batches per epoch" in outcome.stderr
    assert steps_of(run) == [5, 10]


def test_debug_mode_is_in_the_environment_before_plugins_load(edflow_project):
    """Backends read EDFLOW_DEBUG when they are imported, to decide what their frameworks print at import."""
    edflow_project.toy(plugins=["debugprobe"])
    edflow_project.write({"debugprobe.py": """
        import os

        with open("debug-env.txt", "a") as stream:
            stream.write(os.environ.get("EDFLOW_DEBUG", "unset") + "\\n")
    """})
    edflow_project.run("-t", "train.yaml", "-d", env={"EDFLOW_DEBUG": ""}).assert_success()
    edflow_project.run("-t", "train.yaml", env={"EDFLOW_DEBUG": ""}).assert_success()
    assert (edflow_project.path / "debug-env.txt").read_text().split("\n")[:2] == ["1", ""]


def test_config_errors_exit_2_without_traceback_or_run_folder(edflow_project):
    edflow_project.toy(batch_size=0)
    outcome = edflow_project.run("-t", "train.yaml").assert_failed(2)
    assert outcome.stderr.startswith("edflow: error: invalid config: train.yaml:3, key 'batch_size'")
    assert "Traceback" not in outcome.stderr
    assert not (edflow_project.path / "logs").exists()
    with_debug = edflow_project.run("-t", "train.yaml", "-d").assert_failed(2)
    assert "Traceback" in with_debug.stderr


def test_user_code_errors_exit_1_with_the_users_file_and_line(edflow_project):
    edflow_project.toy(num_steps=3)
    edflow_project.write({"toy/broken.py": '''
        from toy.iterator import Iterator


        class Broken(Iterator):
            def step_op(self, model, **batch):
                if self.get_global_step() == 2:
                    raise ValueError("diverged")
                return super().step_op(model, **batch)
    '''})
    outcome = edflow_project.run("-t", "train.yaml", "--iterator", "toy.broken.Broken").assert_failed(1)
    assert "training failed at global step 2: ValueError: diverged" in outcome.stderr
    assert "toy/broken.py" in outcome.stderr and "edcore/" not in outcome.stderr
    (run,) = edflow_project.runs()
    assert steps_of(run) == [2]  # the last completed step was checkpointed


def test_reference_errors_are_config_errors(edflow_project):
    edflow_project.toy()
    outcome = edflow_project.run("-t", "train.yaml", "--dataset", "toy.data.Dta").assert_failed(2)
    assert "command line `--dataset toy.data.Dta`, key 'dataset'" in outcome.stderr and "Close names: Data" in outcome.stderr
    assert not (edflow_project.path / "logs").exists()


@pytest.mark.parametrize("args, fragment", [
    ([], "nothing to do"),
    (["-t", "missing.yaml"], "config file 'missing.yaml' does not exist"),
    (["-p", "no/such/run"], "run folder 'no/such/run' does not exist"),
    (["-e", "train.yaml"], "give its folder with -p RUN_DIR"),
    (["-t", "train.yaml", "-r"], "-r/--retrain resets the global step"),
    (["-t", "train.yaml", "-c", "nope"], "-c: checkpoint 'nope' does not exist"),
    (["-t", "train.yaml", "--lr"], "override '--lr' has no value"),
])
def test_usage_errors_exit_2(edflow_project, args, fragment):
    edflow_project.toy()
    outcome = edflow_project.run(*args).assert_failed(2)
    assert fragment in outcome.stderr and "Traceback" not in outcome.stderr


def test_help_and_version(edflow_project):
    help_text = edflow_project.run("--help").assert_success().stdout
    for flag in ("-t", "-e", "-b", "-p", "-c", "-r", "-n", "-d", "--version", "exit codes"):
        assert flag in help_text
    version = edflow_project.run("--version").assert_success().stdout
    assert version.startswith("edcore ") and "edflow-torch" in version


def test_edflow_help_imports_no_framework():
    code = ("import sys; from edcore.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "import edcore\nassert 'torch' not in sys.modules and 'tensorflow' not in sys.modules, 'framework imported'\n"
            "assert 'jsonschema' not in sys.modules and 'tqdm' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_a_run_without_torch_iterators_never_imports_torch(edflow_project):
    edflow_project.toy(num_steps=2, plugins=["probe"])
    edflow_project.write({"probe.py": '''
        import json
        import sys

        from edcore import hookimpl


        @hookimpl
        def edflow_after_training(iterator, status):
            frameworks = sorted(m for m in ("torch", "tensorflow") if m in sys.modules)
            with open("frameworks.json", "w") as stream:
                json.dump(frameworks, stream)
    '''})
    edflow_project.run("-t", "train.yaml").assert_success()
    assert json.loads((edflow_project.path / "frameworks.json").read_text()) == []
