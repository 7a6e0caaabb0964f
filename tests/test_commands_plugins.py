"""``edflow plugins`` on the really installed plugins, a config plugin and a really broken distribution, and
switching plugins off for a run."""
import json
import re
from pathlib import Path

import pytest

from edcore.plugins import BUILTIN_PLUGINS

README = Path(__file__).resolve().parents[1] / "README.md"

CONFIG_PLUGIN = {
    "stepcount.py": '''
        from edcore import hookimpl


        class StepCount:
            """Writes the number of completed steps when the training ends."""

            @hookimpl
            def edflow_after_training(self, iterator, status):
                with open("steps.txt", "w") as stream:
                    stream.write(str(iterator.get_global_step()))
    ''',
}


@pytest.fixture
def broken_distribution(edflow_project, tmp_path_factory):
    """An installed distribution (real metadata on sys.path) whose entry point fails to import."""
    site = tmp_path_factory.mktemp("site")
    info = site / "edflow_broken-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edflow-broken\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text("[edflow]\nbroken = edflow_broken:Plugin\n")
    (site / "edflow_broken.py").write_text("raise ImportError('libbroken.so: cannot open shared object file')\n")
    edflow_project.env["PYTHONPATH"] = str(site)
    return edflow_project


def listing(project, *args):
    return json.loads(project.run("plugins", *args, "--json", timeout=120).assert_success().stdout)


def test_builtin_entry_point_and_config_plugins_with_their_origins(edflow_project):
    edflow_project.write(CONFIG_PLUGIN)
    edflow_project.toy(plugins=["stepcount.StepCount"])
    report = listing(edflow_project, "train.yaml")
    rows = {row["name"]: row for row in report["plugins"]}
    assert [row["name"] for row in report["plugins"]][: len(BUILTIN_PLUGINS)] == [n for n, _m, _c in BUILTIN_PLUGINS]
    assert rows["torch"]["distribution"] == "edflow-torch" and rows["torch"]["entry_point"].startswith("torch = ")
    assert rows["csv_metrics"]["version"] == "0.1.0"
    assert rows["stepcount.StepCount"]["source"] == "config" and rows["stepcount.StepCount"]["hooks"] == \
        ["edflow_after_training"]
    # The documented order: config plugins first, then entry points (reverse name order), then the built-ins.
    # Other installed backends (edflow-tf) may sit among the entry points; this test looks at the ones it knows.
    known = {"stepcount.StepCount", "torch", "csv_metrics"} | {name for name, _m, _c in BUILTIN_PLUGINS}
    order = {hook: [p.split(" ")[0] for p in plugins if p.split(" ")[0] in known]
             for hook, plugins in report["hook_order"].items()}
    assert order["edflow_after_training"] == [
        "stepcount.StepCount", "torch", "csv_metrics", "core.media", "core.status", "core.tensorboard", "core.metrics"]
    assert order["edflow_batches"] == ["torch", "core.batching"]
    assert order["edflow_log"][0] == "csv_metrics" and order["edflow_log"][-1] == "core.metrics"

    text = edflow_project.run("plugins", "train.yaml", timeout=120).assert_success().stdout
    assert re.search(r"core\.providers +built-in\n +hooks: dataset, iterator, model\n", text)
    assert re.search(r"torch +edflow-torch [\d.]+, entry point torch = edflow_torch.plugin:TorchPlugin", text)
    assert re.search(r"stepcount\.StepCount +config plugins: stepcount\.StepCount\n +hooks: after_training", text)
    assert re.search(r"\n  edflow_batches: torch, (.+, )?core\.batching \(trylast\)\n", text)
    assert re.search(r"\n  edflow_log: (.+, )?csv_metrics, core\.media, core\.tensorboard, core\.retention, "
                     r"core\.metrics \(trylast\)\n", text)


def test_a_broken_entry_point_is_named_with_its_error_and_the_rest_load(broken_distribution):
    project = broken_distribution
    outcome = project.run("plugins", timeout=120).assert_success()
    assert "plugin 'broken' (entry point 'broken = edflow_broken:Plugin' of edflow-broken 1.2) failed to load and " \
           "is skipped: ImportError: libbroken.so: cannot open shared object file" in outcome.stderr
    assert "broken                   FAILED TO LOAD" in outcome.stdout
    assert "core.status" in outcome.stdout and "csv_metrics" in outcome.stdout
    project.toy(num_steps=3)
    training = project.run("-t", "train.yaml", timeout=120).assert_success()
    assert "plugin 'broken'" in training.stderr and "libbroken.so" in training.stderr
    assert "Traceback" not in training.stderr


def test_disable_plugin_on_the_command_line_and_in_the_config(edflow_project):
    rows = [row["name"] for row in listing(edflow_project, "--disable-plugin", "csv_metrics")["plugins"]]
    assert "csv_metrics" not in rows and "torch" in rows

    edflow_project.toy(num_steps=3, csv_metrics={})
    edflow_project.run("-t", "train.yaml", "-n", "on", timeout=120).assert_success()
    edflow_project.run("-t", "train.yaml", "-n", "off", "--disable-plugin", "csv_metrics", timeout=120).assert_success()
    edflow_project.toy(num_steps=3, csv_metrics={}, disable_plugins=["csv_metrics", "core.metrics"])
    edflow_project.run("-t", "train.yaml", "-n", "config", timeout=120).assert_success()
    runs = {run.name.split("_", 1)[1]: run for run in edflow_project.runs()}
    assert (runs["on"] / "train" / "metrics.csv").exists()
    assert not (runs["off"] / "train" / "metrics.csv").exists()
    assert not (runs["config"] / "train" / "metrics.csv").exists()
    assert not (runs["config"] / "train" / "metrics.jsonl").exists()  # a built-in can be switched off too
    recorded = json.loads((runs["config"] / "run.json").read_text())["invocations"][0]["plugins"]
    assert {"csv_metrics", "core.metrics"}.isdisjoint(row["name"] for row in recorded)
    config_listing = listing(edflow_project, "train.yaml")
    assert config_listing["disabled"] == ["csv_metrics", "core.metrics"]


def test_the_builtin_order_is_documented_in_the_readme():
    section = README.read_text().split("## Writing a plugin", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| \d+ \| `([\w.]+)` \|", section, flags=re.M)
    assert documented == [name for name, _module, _cls in BUILTIN_PLUGINS]
