"""Security: configs never construct objects or reach eval/exec, checkpoints never unpickle code, the snapshot
never copies secrets or ignored files, and written files follow the user's umask."""
import ast
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

import edcore
from edcore.config import _Loader as SafeLoaderOfConfigs

REPOSITORY = Path(edcore.__file__).resolve().parent.parent
SOURCE_ROOTS = [REPOSITORY / "edcore", REPOSITORY / "plugins" / "edflow_torch" / "edflow_torch"]


@pytest.mark.parametrize("where", ["train", "base", "key"])
def test_a_python_tag_in_a_config_is_an_error_and_never_runs(edflow_project, where):
    edflow_project.toy()
    marker = edflow_project.path / "pwned"
    payload = f"!!python/object/apply:os.system ['touch {marker}']"
    text = (edflow_project.path / "train.yaml").read_text()
    if where == "train":
        (edflow_project.path / "train.yaml").write_text(text + f"note: {payload}\n")
        args, name, line = ("-t", "train.yaml"), "train.yaml", text.count("\n") + 1
    elif where == "base":
        (edflow_project.path / "base.yaml").write_text(f"lr: 0.1\nnote: {payload}\n")
        args, name, line = ("-b", "base.yaml", "-t", "train.yaml"), "base.yaml", 2
    else:
        (edflow_project.path / "train.yaml").write_text(text + f"? {payload}\n: 1\n")
        args, name, line = ("-t", "train.yaml"), "train.yaml", text.count("\n") + 1
    outcome = edflow_project.run(*args)
    assert outcome.returncode == 2, outcome
    assert f"{name}:{line}" in outcome.stderr
    assert "Traceback" not in outcome.output
    assert not marker.exists(), "the tag was executed"
    assert not (edflow_project.path / "logs").exists()


def test_a_python_tag_in_an_override_is_an_error_and_never_runs(edflow_project):
    edflow_project.toy()
    marker = edflow_project.path / "pwned"
    outcome = edflow_project.run("-t", "train.yaml", "--note", f"!!python/object/apply:os.system ['touch {marker}']")
    assert outcome.returncode == 2, outcome
    assert "--note" in outcome.stderr and "Traceback" not in outcome.output
    assert not marker.exists()


def test_config_strings_that_look_like_code_are_only_strings(edflow_project):
    marker = edflow_project.path / "pwned"
    code = f"__import__('os').system('touch {marker}')"
    edflow_project.toy(note=code, experiment_name=code)
    edflow_project.run("-t", "train.yaml", "--+other", code).assert_success()
    assert not marker.exists()
    saved = next((edflow_project.runs()[0] / "configs").glob("train_*[0-9].yaml")).read_text()
    assert "__import__" in saved  # kept verbatim as data


def calls_of(names: set[str]):
    """``(file, line, name)`` of every call to a bare ``eval``/``exec``/... in the shipped sources."""
    for root in SOURCE_ROOTS:
        for path in root.rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.id if isinstance(func, ast.Name) else f"{getattr(func.value, 'id', '?')}.{func.attr}" \
                        if isinstance(func, ast.Attribute) else None
                    if name in names:
                        yield path.relative_to(REPOSITORY).as_posix(), node.lineno, name, node


def test_no_shipped_code_calls_eval_exec_or_unpickles():
    found = [(file, name) for file, _line, name, _node in calls_of(
        {"eval", "exec", "compile", "pickle.load", "pickle.loads", "yaml.unsafe_load", "yaml.full_load",
         "marshal.loads", "dill.load"})]
    # the only exec builds HookRecorder methods from the hookspecs' own signatures (edcore.testing, no config)
    assert found == [("edcore/testing.py", "exec")], found


def test_every_yaml_and_torch_load_is_safe():
    for file, line, name, node in calls_of({"yaml.load", "torch.load"}):
        keywords = {k.arg: k.value for k in node.keywords}
        if name == "yaml.load":
            assert ast.unparse(keywords["Loader"]) == "_Loader", f"{file}:{line}"
            assert issubclass(SafeLoaderOfConfigs, yaml.SafeLoader)
        else:
            assert ast.unparse(keywords["weights_only"]) == "True", f"{file}:{line}"


class Payload:
    """Unpickling this runs a shell command: what a malicious checkpoint would hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def plant_payload(checkpoint: Path, marker: Path) -> None:
    """Replace the checkpoint's torch state by a pickle payload and fix the manifest so it looks complete."""
    import torch

    torch.save({"format": 1, "model": Payload(marker)}, checkpoint / "torch_state.pt")
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["files"]["torch_state.pt"] = (checkpoint / "torch_state.pt").stat().st_size
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))


def test_a_pickle_payload_in_a_torch_checkpoint_never_executes(edflow_project):
    from resumable_project import write_project

    write_project(edflow_project, ckpt_freq=4)
    edflow_project.run("-t", "train.yaml", "--num_epochs", "1").assert_success()
    run = edflow_project.runs()[0]
    marker = edflow_project.path / "pwned"
    plant_payload(run / "train" / "checkpoints" / "0000000008", marker)

    explicit = edflow_project.run("-t", "train.yaml", "-c", run / "train" / "checkpoints" / "0000000008", "-n", "c")
    assert explicit.returncode == 1, explicit
    assert "torch_state.pt" in explicit.stderr and "cannot be read" in explicit.stderr
    resumed = edflow_project.run("-p", run, "--num_epochs", "2").assert_success()
    assert "falling back to the previous checkpoint" in resumed.stderr
    assert not marker.exists(), "the checkpoint's pickle payload was executed"


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, timeout=60,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"})


SECRETS = ["toy/.env", "toy/.env.local", "toy/id_rsa", "toy/id_ed25519.pub", "toy/server.pem", "toy/tls.key",
           "toy/credentials.json", "toy/.netrc", "toy/.git-credentials"]


@pytest.mark.parametrize("inside_git", [True, False])
def test_the_code_snapshot_never_copies_secrets_or_ignored_files(edflow_project, inside_git):
    edflow_project.toy()
    edflow_project.write({name: "SECRET=1\n" for name in SECRETS})
    edflow_project.write({"toy/notes.txt": "plain notes\n", "toy/new_module.py": "X = 1\n"})
    if inside_git:
        edflow_project.write({".gitignore": "logs/\n*.log\ntoy/private/\n", "toy/private/tokens.py": "T = 1\n",
                              "toy/run.log": "ignored\n"})
        git(edflow_project.path, "init", "-q")
        git(edflow_project.path, "add", "toy/data.py", "toy/iterator.py", "toy/__init__.py", ".gitignore")
        git(edflow_project.path, "commit", "-qm", "start")
        # untracked but not ignored: toy/new_module.py, toy/notes.txt and the secrets (git would track them)
    edflow_project.run("-t", "train.yaml").assert_success()
    code = edflow_project.runs()[0] / "code"
    copied = {p.relative_to(code).as_posix() for p in code.rglob("*") if p.is_file()}
    assert {"toy/data.py", "toy/iterator.py", "toy/new_module.py", "toy/notes.txt"} <= copied
    assert not copied & set(SECRETS), copied & set(SECRETS)
    assert not {"toy/private/tokens.py", "toy/run.log"} & copied
    for path in code.rglob("*"):
        assert "SECRET=1" not in (path.read_text() if path.is_file() else "")


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_follow_the_umask_and_none_is_world_writable(edflow_project, umask):
    edflow_project.toy(ckpt_freq=5, tensorboard=True)
    os.chmod(edflow_project.path / "toy" / "data.py", 0o666)  # a world-writable source file
    edflow_project.run("-t", "train.yaml", preexec_fn=lambda: os.umask(umask)).assert_success()
    run = edflow_project.runs()[0]
    entries = [run, *run.rglob("*")]
    assert any(p.name == "torch_state.pt" or p.name == "w.npy" for p in entries)
    for path in entries:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & umask == 0, f"{path.relative_to(run)} has mode {oct(mode)} despite umask {oct(umask)}"
        assert not mode & stat.S_IWOTH
