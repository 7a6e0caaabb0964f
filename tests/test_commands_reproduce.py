"""``edflow reproduce``: a real toy run trained again from its snapshot, identical; a changed line in a copy's snapshot
found at the right step; runs that cannot be reproduced refused with nothing written into them."""
import json
import shutil

import yaml

from edcore.testing import EdflowProject

#: From global step 6 on (the seventh step: counted from 0 during a step) the learning rate halves.
CHANGED_LINE = ("self.w -= 0.1 * x.T", "self.w -= (0.1 if self.get_global_step() < 6 else 0.05) * x.T")


def tree(folder):
    """Every file and folder under ``folder`` with its bytes: to show that nothing was written into a run."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def toy_run(project: EdflowProject, *args):
    project.toy(num_steps=10, log_freq=2)
    project.run("-t", "train.yaml", "-n", "original", *args, timeout=120).assert_success()
    (run,) = project.runs()
    return run


def test_a_run_reproduces_identically_from_its_snapshot_not_the_working_tree(edflow_project):
    run = toy_run(edflow_project)
    before = tree(run)
    iterator = edflow_project.path / "toy" / "iterator.py"  # the working tree moves on; the snapshot does not
    iterator.write_text(iterator.read_text().replace(*CHANGED_LINE))

    outcome = edflow_project.run("reproduce", "_original", timeout=120).assert_success()
    assert f"reproducing logs/{run.name} from its code snapshot" in outcome.stdout
    assert "environment: as recorded" in outcome.stdout
    new = [r for r in edflow_project.runs() if r != run]
    assert len(new) == 1 and new[0].name.endswith("_original-reproduce")
    assert f"identical: 6 logged steps (up to global step 10) of {run.name} and {new[0].name}" in outcome.stdout
    assert edflow_project.metrics(new[0]) and [m["loss"] for m in edflow_project.metrics(new[0])] == \
        [m["loss"] for m in edflow_project.metrics(run)]
    assert tree(run) == before  # no __pycache__, no lock, no config written into the original

    (config_path,) = (new[0] / "configs").glob("train_*[0-9].yaml")
    assert yaml.safe_load(config_path.read_text())["reproduces"] == f"logs/{run.name}"
    record = json.loads((new[0] / "run.json").read_text())
    assert record["reproduction"]["of"] == f"logs/{run.name}" and record["reproduction"]["identical"] is True
    assert record["reproduction"]["compared_steps"] == [1, 2, 4, 6, 8, 10]  # the first step is always logged
    assert (new[0] / "code" / "toy" / "iterator.py").read_bytes() == (run / "code" / "toy" / "iterator.py").read_bytes()


def test_a_changed_line_in_the_snapshot_is_found_at_the_first_logged_step_it_changes(edflow_project):
    run = toy_run(edflow_project)
    copy = run.parent / f"{run.name}-copy"
    shutil.copytree(run, copy)
    snapshot = copy / "code" / "toy" / "iterator.py"
    snapshot.write_text(snapshot.read_text().replace(*CHANGED_LINE))
    before = tree(copy)

    outcome = edflow_project.run("reproduce", str(copy), timeout=120).assert_failed(1)
    # steps 1-6 use 0.1 as before; the loss logged at global step 8 is the first one after the halved steps
    assert "differs: global step 8, key 'loss': original " in outcome.stdout, outcome
    original_loss = {m["global_step"]: m["loss"] for m in edflow_project.metrics(run)}
    assert f"original {original_loss[8]!r}, reproduction " in outcome.stdout
    assert tree(copy) == before
    (new,) = [r for r in edflow_project.runs() if r not in (run, copy)]
    assert json.loads((new / "run.json").read_text())["reproduction"]["first_difference"]["global_step"] == 8

    shorter = edflow_project.run("reproduce", str(copy), "--steps", "6", timeout=120).assert_success()
    assert "identical: 4 logged steps (up to global step 6)" in shorter.stdout
    newest = sorted(edflow_project.runs(), key=lambda r: r.name)[-1]
    assert [m["global_step"] for m in edflow_project.metrics(newest)] == [1, 2, 4, 6]  # trained 6 steps only


def test_an_interrupted_run_is_trained_again_as_far_as_it_logged(edflow_project):
    run = toy_run(edflow_project)
    metrics = run / "train" / "metrics.jsonl"  # as if stopped after global step 4 of 10
    metrics.write_text("".join(line + "\n" for line in metrics.read_text().splitlines()[:3]))
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "status": "interrupted"}))

    outcome = edflow_project.run("reproduce", str(run), timeout=120).assert_success()
    assert f"run {run} is interrupted: training again up to its last logged global step, 4" in outcome.stdout
    assert "identical: 3 logged steps (up to global step 4)" in outcome.stdout
    (new,) = [r for r in edflow_project.runs() if r != run]
    assert [m["global_step"] for m in edflow_project.metrics(new)] == [1, 2, 4]


def test_a_run_without_a_snapshot_is_refused(edflow_project):
    run = toy_run(edflow_project, "--code_root", "null")
    before = tree(run)
    outcome = edflow_project.run("reproduce", str(run), timeout=60).assert_failed(2)
    assert f"run '{run}' has no code snapshot" in outcome.stderr and "Traceback" not in outcome.stderr
    assert tree(run) == before and edflow_project.runs() == [run]


def test_a_snapshot_without_the_iterators_package_is_refused(edflow_project):
    run = toy_run(edflow_project)
    (run / "code" / "toy").rename(run / "code" / "other")
    outcome = edflow_project.run("reproduce", str(run), timeout=60).assert_failed(2)
    assert (f"the code snapshot of run '{run}' has no module 'toy' for the config key iterator "
            f"('toy.iterator.Iterator'); the snapshot in {run / 'code'} holds other.") in outcome.stderr
    assert edflow_project.runs() == [run]


def test_a_snapshot_that_no_longer_imports_is_an_error_and_nothing_is_written(edflow_project):
    run = toy_run(edflow_project)
    snapshot = run / "code" / "toy" / "iterator.py"
    snapshot.write_text("import toy.helpers_that_were_never_snapshotted\n" + snapshot.read_text())
    before = tree(run)
    outcome = edflow_project.run("reproduce", str(run), timeout=60).assert_failed(1)
    assert f"the code snapshot of run '{run}' could not be trained again:" in outcome.stderr
    assert "helpers_that_were_never_snapshotted" in outcome.stderr.split("could not be trained again")[1]
    assert f"Nothing was written into '{run}'." in outcome.stderr and "Traceback" not in outcome.stderr
    assert outcome.stderr.count("edflow: error:") == 1  # the child's error inside ours, not shown twice
    assert tree(run) == before and edflow_project.runs() == [run]
    edflow_project.run("reproduce", str(run), "--steps", "0", timeout=60).assert_failed(2)


def test_what_differs_in_the_environment_is_reported_before_the_training(edflow_project):
    run = toy_run(edflow_project)
    record = json.loads((run / "run.json").read_text())
    (invocation,) = record["invocations"]
    assert invocation["python"] and invocation["packages"]["numpy"] and "devices" in invocation
    # the run as if it had been trained elsewhere: another Python and numpy, a GPU, a commit of its code
    invocation.update(python="3.10.1", devices={"CUDA_VISIBLE_DEVICES": "0"})
    invocation["packages"]["numpy"] = "1.0.0"
    invocation["packages"]["somelib"] = "2.0"
    invocation["snapshot"]["git"] = {"commit": "0123abc", "branch": "main", "dirty": False}
    (run / "run.json").write_text(json.dumps(record))

    outcome = edflow_project.run("reproduce", str(run), "--steps", "2", env={"CUDA_VISIBLE_DEVICES": ""},
                                 timeout=120).assert_success()
    environment = outcome.stdout.split("environment: differs from the original run:\n", 1)[1].split("identical")[0]
    import numpy
    import platform

    assert f"  python: 3.10.1 -> {platform.python_version()}\n" in environment
    assert f"  package numpy: 1.0.0 -> {numpy.__version__}\n" in environment
    assert "  package somelib: 2.0 -> (not installed)\n" in environment
    assert "  git commit (working tree; the snapshot is used): 0123abc -> (none)\n" in environment
    assert "  devices CUDA_VISIBLE_DEVICES: 0 -> \n" in environment
    assert "platform" not in environment and "host" not in environment  # the same machine
    assert outcome.stdout.index("environment:") < outcome.stdout.index("identical: 2 logged steps")
