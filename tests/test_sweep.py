"""``edflow sweep``: grid and random sweeps of the numpy toy training on the local launcher, interrupted by a real
SIGTERM to the process group and continued with ``-p``; bad sweep files refused before anything starts."""
import json
import os
import signal

import pytest
import yaml

#: The toy regression with the learning rate from the config; a step pauses (until its run is told to stop) when
#: the test asks for it through SWEEP_PAUSE_DIR and SWEEP_PAUSE_LRS.
SWEEP_TOY = {
    "sweeptoy/__init__.py": "",
    "sweeptoy/iterator.py": '''
        import os
        import time

        import numpy as np
        from toy.iterator import Iterator as ToyIterator

        PAUSE_STEP = 5


        class Iterator(ToyIterator):
            def step_op(self, model, x, y, index):
                ops = super().step_op(model, x, y, index)
                lr = self.config["lr"]

                def train_op():
                    self.w -= lr * x.T @ (x @ self.w - y) / len(y)
                    if self.get_global_step() == PAUSE_STEP:
                        self.pause()

                return {**ops, "train_op": train_op}

            def pause(self):
                folder = os.environ.get("SWEEP_PAUSE_DIR")
                wanted = os.environ.get("SWEEP_PAUSE_LRS", "").split(",")
                marker = os.path.join(folder or "", f"paused-{self.config['lr']}")
                if not folder or (str(self.config["lr"]) not in wanted and wanted != ["*"]) or os.path.exists(marker):
                    return  # once per trial: not again when it resumes
                open(marker, "w").close()
                open(os.path.join(folder, "paused"), "w").close()
                deadline = time.monotonic() + 60
                while not self.runtime.stop_signal and time.monotonic() < deadline:
                    time.sleep(0.01)
    ''',
}

LRS = [0.05, 0.1, 0.2, 0.3]


def write_sweep(project, name="sweep.yaml", **sweep):
    """The toy project with ``lr`` in its config, and a sweep file (``sweep`` over a 4-trial grid of lr)."""
    project.toy(iterator="sweeptoy.iterator.Iterator", lr=0.1, num_steps=10, log_freq=5)
    project.write(SWEEP_TOY)
    values = {"train": "train.yaml", "name": "lrs", "parameters": {"lr": LRS}, "metric": "loss",
              "max_parallel": 2, **sweep}
    path = project.path / name
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def sweeps(project):
    folder = project.path / "logs" / "sweeps"
    return sorted(p for p in folder.iterdir()) if folder.is_dir() else []


def state(folder):
    return json.loads((folder / "sweep.json").read_text())


def records(run):
    """The metrics of a run by step, without the wall-clock time."""
    lines = (run / "train" / "metrics.jsonl").read_text().splitlines()
    return {record["global_step"]: {k: v for k, v in record.items() if k != "time"}
            for record in map(json.loads, lines)}


def test_a_grid_interrupted_by_sigterm_continues_to_the_same_results(edflow_project):
    sweep_file = write_sweep(edflow_project)
    pauses = edflow_project.path / "pauses"
    pauses.mkdir()
    # Trials 0 and 1 start; 1 pauses, 0 finishes and frees its slot for trial 2, which pauses too: then trial 0 is
    # finished, 1 and 2 are running and 3 has not started.
    running = edflow_project.start("sweep", sweep_file.name,
                                   env={"SWEEP_PAUSE_DIR": str(pauses), "SWEEP_PAUSE_LRS": "0.1,0.2"})
    running.wait_for_file(pauses / "paused-0.1")
    running.wait_for_file(pauses / "paused-0.2")
    (folder,) = sweeps(edflow_project)
    second = edflow_project.run("sweep", "-p", folder)  # while it runs: refused, nothing touched
    assert second.returncode == 2 and f"is being run by process {running.pid}" in second.stderr, second
    running.send(signal.SIGTERM, group=True)  # a terminal or a scheduler: the whole group
    outcome = running.wait(timeout=120)
    assert outcome.returncode == 128 + signal.SIGTERM, outcome
    assert "Traceback" not in outcome.output, outcome
    assert outcome.stderr.count("received SIGTERM: stopping the running trials") == 1, outcome
    assert f"edflow sweep -p {folder.relative_to(edflow_project.path)}" in outcome.stderr
    trials = state(folder)["trials"]
    assert [t["status"] for t in trials] == ["finished", "interrupted", "interrupted", "pending"]
    assert [t["parameters"] for t in trials] == [{"lr": lr} for lr in LRS]
    assert trials[3]["run"] is None
    interrupted_checkpoints = {}
    for trial in trials[1:3]:
        run = folder / trial["run"]
        checkpoints = sorted(p.name for p in (run / "train" / "checkpoints").iterdir() if p.name.isdigit())
        manifest = json.loads((run / "train" / "checkpoints" / checkpoints[-1] / "manifest.json").read_text())
        assert manifest["reason"] == "interrupt"
        interrupted_checkpoints[trial["id"]] = checkpoints[-1]
    finished_run = folder / trials[0]["run"]
    finished_metrics = finished_run / "train" / "metrics.jsonl"
    before = (finished_metrics.stat().st_mtime_ns, finished_metrics.read_bytes())

    resumed = edflow_project.run("sweep", "-p", folder.relative_to(edflow_project.path), timeout=300)
    resumed.assert_success()
    assert "resuming trial 1" in resumed.stderr and "resuming trial 2" in resumed.stderr, resumed
    assert "starting trial 3" in resumed.stderr and "trial 0" not in resumed.stderr.replace("best trial 0", ""), resumed
    assert (finished_metrics.stat().st_mtime_ns, finished_metrics.read_bytes()) == before
    continued = state(folder)["trials"]
    assert [t["status"] for t in continued] == ["finished"] * 4
    assert [t["run"] for t in continued[:3]] == [t["run"] for t in trials[:3]], "resumed in their own run folders"
    for trial in continued[1:3]:
        log = (folder / trial["run"] / "train" / "log.txt").read_text()
        assert f"restored checkpoint" in log and f"global step {int(interrupted_checkpoints[trial['id']])}" in log

    reference = edflow_project.run("sweep", sweep_file.name, timeout=300).assert_success()
    assert "Traceback" not in reference.output
    _, uninterrupted = sweeps(edflow_project)
    expected = state(uninterrupted)["trials"]
    assert [t["metric"] for t in continued] == [t["metric"] for t in expected]  # bit-identical floats
    for ours, theirs in zip(continued, expected):
        mine, reference_records = records(folder / ours["run"]), records(uninterrupted / theirs["run"])
        # an interrupted run also logs the step it stopped at; every step the reference logged is the same
        assert {step: mine[step] for step in reference_records} == reference_records
        assert ours["metric"] == records(folder / ours["run"])[10]["loss"]


def test_each_trial_records_the_sweep_file_line_as_the_origin_of_its_parameters(edflow_project):
    sweep_file = write_sweep(edflow_project, parameters={"lr": [0.1], "+note": ["a"]}, max_parallel=1)
    edflow_project.run("sweep", sweep_file.name).assert_success()
    (folder,) = sweeps(edflow_project)
    (trial,) = state(folder)["trials"]
    run = folder / trial["run"]
    (origins,) = (run / "configs").glob("train_*.origins.yaml")
    table = yaml.safe_load(origins.read_text())
    lines = sweep_file.read_text().splitlines()
    assert table["lr"] == f"sweep parameter at sweep.yaml:{lines.index('  lr:') + 1}"
    assert table["note"] == f"sweep parameter at sweep.yaml:{lines.index('  +note:') + 1}"
    assert table["batch_size"] == "train.yaml:3"
    (config,) = [p for p in (run / "configs").glob("train_*.yaml") if not p.name.endswith(".origins.yaml")]
    assert yaml.safe_load(config.read_text())["note"] == "a"


def test_random_trials_are_drawn_from_the_sweep_seed(edflow_project):
    parameters = {"lr": {"distribution": "loguniform", "low": 0.01, "high": 0.3},
                  "batch_size": {"distribution": "int", "low": 2, "high": 8},
                  "+toy_examples": [16, 24, 32]}
    write_sweep(edflow_project, "a.yaml", method="random", trials=3, seed=5, parameters=parameters)
    write_sweep(edflow_project, "b.yaml", method="random", trials=3, seed=6, parameters=parameters)
    for name in ("a.yaml", "a.yaml", "b.yaml"):
        edflow_project.run("sweep", name).assert_success()
    folder = sweeps(edflow_project)[0]
    first, second, other = (state(folder)["trials"] for folder in sweeps(edflow_project))
    drawn = [t["parameters"] for t in first]
    assert drawn == [t["parameters"] for t in second]
    assert drawn != [t["parameters"] for t in other]
    assert all(0.01 <= p["lr"] <= 0.3 and 2 <= p["batch_size"] <= 8 and p["+toy_examples"] in (16, 24, 32)
               for p in drawn)
    assert [t["metric"] for t in first] == [t["metric"] for t in second]
    for trial in first:  # the drawn float reaches the run exactly (its YAML text reads back to the same number)
        (config,) = [p for p in (folder / trial["run"] / "configs").glob("train_*.yaml")
                     if not p.name.endswith(".origins.yaml")]
        assert yaml.safe_load(config.read_text())["lr"] == trial["parameters"]["lr"]


def line_of(path, text):
    return path.read_text().splitlines().index(text) + 1


@pytest.mark.parametrize("sweep, line, fragments", [
    ({"parameters": {"lr": LRS, "lrr": [1]}}, "  lrr:",
     ["key 'parameters/lrr'", "sets 'lrr', a key that no config file sets", "did you mean 'lr'",
      "write the parameter as '+lrr'"]),
    ({"parameters": {"lr": []}}, "  lr: []",
     ["key 'parameters/lr': expected a list that is not empty, found an empty list"]),
    ({"launcher": "kube"}, "launcher: kube",
     ["key 'launcher': expected one of 'local', 'ray', 'slurm', found 'kube'"]),
    ({"parameters": {"lr": {"distribution": "uniform", "low": 0.1, "high": 0.3}}}, "  lr:",
     ["key 'parameters/lr': method 'grid' needs a list of values"]),
    ({"method": "random"}, "method: random", ["key 'method': method 'random' needs 'trials: N'"]),
    ({"parameters": {"batch_size": [4, 0]}}, "  batch_size:",
     ["trial 1 of sweep.yaml (batch_size=0)", "sweep parameter at sweep.yaml:", "key 'batch_size': expected an "
      "integer >= 1, found 0"]),
])
def test_bad_sweep_files_are_refused_with_file_and_line_before_anything_starts(edflow_project, sweep, line,
                                                                               fragments):
    sweep_file = write_sweep(edflow_project, **sweep)
    outcome = edflow_project.run("sweep", sweep_file.name)
    assert outcome.returncode == 2, outcome
    assert "Traceback" not in outcome.output
    assert f"sweep.yaml:{line_of(sweep_file, line)}" in outcome.stderr, outcome
    for fragment in fragments:
        assert fragment in outcome.stderr, outcome
    assert sweeps(edflow_project) == [] and not (edflow_project.path / "logs").exists()


@pytest.mark.parametrize("key, value, module", [("launcher", "ray", "ray"), ("launcher", "slurm", "submitit"),
                                               ("method", "optuna", "optuna")])
def test_a_launcher_or_method_whose_extra_is_not_installed_is_named_with_its_extra(edflow_project, tmp_path, key,
                                                                                   value, module):
    hidden = tmp_path / "hidden"  # a site that makes the package unimportable, installed or not
    hidden.mkdir()
    (hidden / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    sweep_file = write_sweep(edflow_project, **{key: value}, **({"trials": 2} if key == "method" else {}))
    outcome = edflow_project.run("sweep", sweep_file.name, env={"PYTHONPATH": str(hidden)})
    assert outcome.returncode == 2, outcome
    extra = {"ray": "ray", "submitit": "slurm", "optuna": "optuna"}[module]
    assert (f"sweep.yaml:{line_of(sweep_file, f'{key}: {value}')}, key '{key}': {key} '{value}' needs the package "
            f"'{module}', which is not installed" in outcome.stderr), outcome
    assert f"pip install 'edcore[{extra}]'" in outcome.stderr and "Traceback" not in outcome.output
    assert sweeps(edflow_project) == []


def test_a_metric_never_logged_is_reported_when_the_first_trial_ends(edflow_project):
    sweep_file = write_sweep(edflow_project, metric="accuracy", max_parallel=1)
    outcome = edflow_project.run("sweep", sweep_file.name)
    assert outcome.returncode == 2, outcome
    assert "Traceback" not in outcome.output
    assert (f"sweep.yaml:{line_of(sweep_file, 'metric: accuracy')}, key 'metric': trial 0 finished but never "
            f"logged the metric 'accuracy'" in outcome.stderr), outcome
    assert "logged: loss" in outcome.stderr
    (folder,) = sweeps(edflow_project)
    assert [t["status"] for t in state(folder)["trials"]] == ["finished", "pending", "pending", "pending"]


def test_a_continued_sweep_refuses_a_changed_sweep_file(edflow_project):
    sweep_file = write_sweep(edflow_project, parameters={"lr": [0.1]})
    edflow_project.run("sweep", sweep_file.name).assert_success()
    (folder,) = sweeps(edflow_project)
    write_sweep(edflow_project, parameters={"lr": [0.2]})
    outcome = edflow_project.run("sweep", "-p", folder)
    assert outcome.returncode == 2, outcome
    assert "has changed since the sweep" in outcome.stderr and "keys: parameters" in outcome.stderr


@pytest.mark.parametrize("mode", ["min", "max"])
def test_runs_lists_the_trials_by_the_metric_and_plot_draws_their_runs(edflow_project, mode):
    sweep_file = write_sweep(edflow_project, parameters={"lr": [0.01, 0.2, 0.05]}, mode=mode)
    edflow_project.run("sweep", sweep_file.name).assert_success()
    (folder,) = sweeps(edflow_project)
    metrics = {t["id"]: t["metric"] for t in state(folder)["trials"]}
    best_first = sorted(metrics, key=metrics.get, reverse=mode == "max")
    rows = json.loads(edflow_project.run("runs", folder, "--json").assert_success().stdout)
    assert [row["trial"] for row in rows] == best_first
    assert [row["metric"] for row in rows] == [metrics[i] for i in best_first]
    assert rows[0]["metric_name"] == "loss" and rows[0]["status"] == "finished"
    assert (edflow_project.path / rows[0]["run"] / "train" / "metrics.jsonl").is_file()
    table = edflow_project.run("runs", folder).assert_success().stdout.splitlines()
    assert table[0].split() == ["TRIAL", "STATUS", "LOSS", "RUN", "PARAMETERS"]
    assert [int(line.split()[0]) for line in table[1:]] == best_first
    assert table[1].endswith(f"lr={rows[0]['parameters']['lr']}")
    pytest.importorskip("matplotlib")
    plotted = edflow_project.run("plot", folder, "-o", "sweep.png").assert_success()
    assert "(1 metric, 3 runs)" in plotted.stdout
    assert (edflow_project.path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_optuna_study_lives_in_the_sweep_folder_and_continues_with_p(edflow_project):
    optuna = pytest.importorskip("optuna")
    sweep_file = write_sweep(edflow_project, method="optuna", trials=4, seed=3, max_parallel=1,
                             parameters={"lr": {"distribution": "loguniform", "low": 0.01, "high": 0.3},
                                         "batch_size": [4, 8]})
    pauses = edflow_project.path / "pauses"
    pauses.mkdir()
    running = edflow_project.start("sweep", sweep_file.name,
                                   env={"SWEEP_PAUSE_DIR": str(pauses), "SWEEP_PAUSE_LRS": "*"})
    running.wait_for_file(pauses / "paused")  # the first trial runs
    running.send(signal.SIGINT, group=True)
    assert running.wait(timeout=120).returncode == 130, running.output()
    (folder,) = sweeps(edflow_project)
    (first,) = state(folder)["trials"]
    assert first["status"] == "interrupted" and first["optuna_number"] == 0
    edflow_project.run("sweep", "-p", folder, timeout=300).assert_success()
    trials = state(folder)["trials"]
    assert [t["status"] for t in trials] == ["finished"] * 4 and trials[0]["run"] == first["run"]
    assert trials[0]["parameters"] == first["parameters"]
    study = optuna.load_study(study_name="lrs", storage=f"sqlite:///{folder / 'optuna.db'}")
    told = {t.number: (t.params, t.value, t.state.name) for t in study.trials}
    assert told == {t["optuna_number"]: (t["parameters"], t["metric"], "COMPLETE") for t in trials}


@pytest.mark.parametrize("launcher, package", [("ray", "ray"), ("slurm", "submitit")])
def test_the_ray_and_submitit_launchers_train_the_same_trials_as_the_local_one(edflow_project, launcher, package):
    pytest.importorskip(package)
    write_sweep(edflow_project, "local.yaml", parameters={"lr": [0.05, 0.2], "batch_size": [4, 8]})
    write_sweep(edflow_project, "engine.yaml", parameters={"lr": [0.05, 0.2], "batch_size": [4, 8]},
                launcher=launcher)
    edflow_project.run("sweep", "local.yaml").assert_success()
    outcome = edflow_project.run("sweep", "engine.yaml", timeout=300).assert_success()
    assert f"launcher {launcher}" in outcome.stderr
    local, engine = (state(folder)["trials"] for folder in sweeps(edflow_project))
    assert [t["status"] for t in engine] == ["finished"] * 4
    assert [(t["parameters"], t["metric"]) for t in engine] == [(t["parameters"], t["metric"]) for t in local]
    if launcher == "slurm":
        assert (sweeps(edflow_project)[1] / "submitit").is_dir()


@pytest.mark.parametrize("launcher, package", [("ray", "ray"), ("slurm", "submitit")])
def test_a_sweep_on_ray_or_submitit_stopped_by_sigterm_continues_with_p(edflow_project, launcher, package):
    pytest.importorskip(package)
    sweep_file = write_sweep(edflow_project, parameters={"lr": [0.1, 0.2]}, launcher=launcher)
    pauses = edflow_project.path / "pauses"
    pauses.mkdir()
    running = edflow_project.start("sweep", sweep_file.name,
                                   env={"SWEEP_PAUSE_DIR": str(pauses), "SWEEP_PAUSE_LRS": "*"})
    running.wait_for_file(pauses / "paused-0.1")
    running.wait_for_file(pauses / "paused-0.2")
    running.send(signal.SIGTERM, group=True)
    outcome = running.wait(timeout=120)
    assert outcome.returncode == 128 + signal.SIGTERM, outcome
    (folder,) = sweeps(edflow_project)
    trials = state(folder)["trials"]
    assert [t["status"] for t in trials] == ["interrupted"] * 2, outcome
    for trial in trials:
        run = folder / trial["run"]
        latest = max(p for p in (run / "train" / "checkpoints").iterdir() if p.name.isdigit())
        assert json.loads((latest / "manifest.json").read_text())["reason"] == "interrupt"
    edflow_project.run("sweep", "-p", folder, timeout=300).assert_success()
    assert [t["status"] for t in state(folder)["trials"]] == ["finished"] * 2


def test_a_trial_preempted_by_slurms_signal_is_requeued_by_submitit_and_resumes_exactly(edflow_project):
    pytest.importorskip("submitit")
    parameters = {"lr": [0.1, 0.2]}
    write_sweep(edflow_project, "local.yaml", parameters=parameters)
    sweep_file = write_sweep(edflow_project, "slurm.yaml", parameters=parameters, launcher="slurm")
    edflow_project.run("sweep", "local.yaml", timeout=300).assert_success()
    (reference,) = sweeps(edflow_project)
    pauses = edflow_project.path / "pauses"
    pauses.mkdir()
    running = edflow_project.start("sweep", sweep_file.name,
                                   env={"SWEEP_PAUSE_DIR": str(pauses), "SWEEP_PAUSE_LRS": "0.1"})
    running.wait_for_file(pauses / "paused-0.1")
    (folder,) = [path for path in sweeps(edflow_project) if path != reference]
    pid_file = folder / "output" / "trial000.txt.pid"
    running.wait_for_file(pid_file)
    holder = json.loads(pid_file.read_text())
    # SLURM announces a preemption with submitit's signal to every process of the job: the task and the training
    for pid in (holder["task"], holder["pid"]):
        os.kill(pid, signal.SIGUSR2)
    outcome = running.wait(timeout=300)
    outcome.assert_success()
    assert "Traceback" not in outcome.output, outcome
    trials = state(folder)["trials"]
    assert [t["status"] for t in trials] == ["finished"] * 2, outcome
    run = folder / trials[0]["run"]
    checkpoints = sorted(p for p in (run / "train" / "checkpoints").iterdir() if p.name.isdigit())
    reasons = {p.name: json.loads((p / "manifest.json").read_text())["reason"] for p in checkpoints}
    assert "interrupt" in reasons.values(), reasons
    assert "restored checkpoint" in (run / "train" / "log.txt").read_text()
    task_logs = "".join(path.read_text() for path in (folder / "submitit").glob("*_log.*"))
    assert "this job is preempted" in task_logs and "Requeued job" in task_logs, task_logs
    expected = state(reference)["trials"]
    assert [t["metric"] for t in trials] == [t["metric"] for t in expected]  # bit-identical floats
    for ours, theirs in zip(trials, expected):
        mine, reference_records = records(folder / ours["run"]), records(reference / theirs["run"])
        assert {step: mine[step] for step in reference_records} == reference_records


def test_a_trial_stopped_from_outside_the_sweep_is_interrupted_not_failed(edflow_project):
    sweep_file = write_sweep(edflow_project, parameters={"lr": [0.1]})
    pauses = edflow_project.path / "pauses"
    pauses.mkdir()
    running = edflow_project.start("sweep", sweep_file.name,
                                   env={"SWEEP_PAUSE_DIR": str(pauses), "SWEEP_PAUSE_LRS": "*"})
    running.wait_for_file(pauses / "paused-0.1")
    (folder,) = sweeps(edflow_project)
    run = folder / "runs"
    (run,) = run.iterdir()
    training = int(json.loads((run / "status.json").read_text())["pid"])
    os.killpg(os.getpgid(training), signal.SIGTERM)  # a scheduler stopping the trial's process group, not the sweep
    outcome = running.wait(timeout=120)
    assert outcome.returncode == 1, outcome
    assert "trial 0 was stopped by SIGTERM from outside the sweep" in outcome.stderr, outcome
    assert "failed" not in outcome.stderr, outcome
    assert [t["status"] for t in state(folder)["trials"]] == ["interrupted"]
    edflow_project.run("sweep", "-p", folder, timeout=300).assert_success()
    assert [t["status"] for t in state(folder)["trials"]] == ["finished"]


def test_a_failed_trial_is_reported_with_its_error_and_the_others_still_train(edflow_project):
    sweep_file = write_sweep(edflow_project, parameters={"+toy_examples": [0, 16]}, max_parallel=1)
    outcome = edflow_project.run("sweep", sweep_file.name)
    assert outcome.returncode == 1, outcome
    assert outcome.stderr.count("trial 0 failed") == 1, outcome
    assert "trial 0 failed with exit code 1 (edflow: error: dataset 'toy.data.Data' is empty" in outcome.stderr
    assert "output/trial000.txt" in outcome.stderr and "Traceback" not in outcome.output
    (folder,) = sweeps(edflow_project)
    assert [t["status"] for t in state(folder)["trials"]] == ["failed", "finished"]


@pytest.mark.parametrize("value", [0.1, 1e-5, 0.12345678901234568, 3, True, None, "adam", "1e-4", "wait...",
                                   [1, 2], {"a": 1}])
def test_a_parameter_value_reaches_the_trial_as_the_same_value(value):
    from edcore.config import parse_overrides
    from edcore.sweep import Parameter

    (override,) = parse_overrides([Parameter("key", [value], None, "", "").token(value)])
    assert override.value == value and type(override.value) is type(value)
