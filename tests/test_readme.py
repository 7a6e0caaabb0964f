"""The README's toy project runs as written: its files are taken from the README's code blocks (each starts with a
``# <path>`` comment), written into an empty folder, trained with ``edflow -t train.yaml`` and evaluated with
``edflow -e eval.yaml -p RUN``, as a reader who copies them would; the Data section's ``augmented.yaml`` trains on
them too."""
import re
from pathlib import Path

from edcore.testing import EdflowProject

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(?:python|yaml)\n# (?P<path>[\w/.]+)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def toy_project_files() -> dict[str, str]:
    """``{path: text}`` of the README's toy project: the blocks of files in ``toy/`` and the configs naming it."""
    files = {}
    for block in BLOCK.finditer(README.read_text(encoding="utf-8")):
        path, body = block["path"], block["body"]
        if path.startswith("toy/") or (path.endswith(".yaml") and "toy." in body):
            assert path not in files, f"the README shows {path} twice"
            files[path] = body
    return files


def test_the_readme_toy_project_trains_and_evaluates_as_written(tmp_path):
    files = toy_project_files()
    assert sorted(files) == ["augmented.yaml", "eval.yaml", "toy/augment.py", "toy/data.py", "toy/iterator.py",
                             "toy/metrics.py", "train.yaml"]
    project = EdflowProject(tmp_path)
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text, encoding="utf-8")

    trained = project.run("-t", "train.yaml", timeout=300).assert_success()
    (run,) = project.runs()
    assert f"training finished at global step 10; run folder {run.relative_to(tmp_path)}" in trained.stderr
    assert (run / "code" / "toy" / "data.py").exists()
    evaluated = project.run("-e", "eval.yaml", "-p", str(run), "--progress", "false", timeout=300).assert_success()
    assert re.search(r"step 10  error/mse \d", evaluated.output), evaluated

    # the Data section: the same project, trained on an augmented part of its dataset named in the config
    augmented = project.run("-t", "augmented.yaml", "--progress", "false", timeout=300).assert_success()
    assert "training Iterator from global step 0: 32 examples, 4 batches per epoch" in augmented.stderr


def test_ci_runs_exactly_the_readmes_test_command():
    """``.ci/run`` runs the command the README gives for the whole test suite, character for character."""
    commands = re.findall(r"^```bash\n(.*?)\n```$", README.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    (readme_command,) = [command for command in commands if "-m pytest" in command]
    ci_command = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()[-1]
    assert ci_command == readme_command
    assert "apt-get install -y --no-install-recommends chromium" in ci_command  # the browser tests need it
