"""The CSV metrics plugin, tested the way a plugin author would: with edcore.testing's fixtures."""
import csv

from edcore import hookimpl

def rows(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_writes_one_row_per_logged_step_as_installed(edflow_train):
    # No plugins= here: the plugin comes in through its installed entry point, as in a user's run.
    training = edflow_train(config={"num_steps": 10, "log_freq": 5, "csv_metrics": {}})
    assert training.returncode == 0
    table = rows(training.run / "train" / "metrics.csv")
    logged = training.calls.arguments("edflow_log")
    assert [int(row["global_step"]) for row in table] == [args["global_step"] for args in logged] == [1, 5, 10]
    assert [float(row["loss"]) for row in table] == [args["logs"]["scalars"]["loss"] for args in logged]
    assert [int(r["global_step"]) for r in table] == [m["global_step"] for m in training.metrics()]


def test_only_acts_when_the_config_has_its_section(edflow_train):
    training = edflow_train(config={"num_steps": 3})
    assert training.returncode == 0
    assert not (training.run / "train" / "metrics.csv").exists()


def test_every_and_a_metric_that_appears_later(edflow_train):
    class LateMetric:
        """Adds a scalar from the second logged step on; runs before the CSV plugin (registered later)."""

        @hookimpl(tryfirst=True)
        def edflow_log(self, global_step, logs):
            if global_step > 1:
                logs["scalars"]["late"] = float(global_step)

    # autoload=False: the entry point stays out, the config names the plugin instead (one instance only).
    training = edflow_train(plugins=[LateMetric()], autoload=False,
                            config={"num_steps": 8, "log_freq": 2, "plugins": ["edflow_csv_metrics.CsvMetrics"],
                                    "csv_metrics": {"file": "scalars.csv", "every": 2}})
    assert training.returncode == 0
    table = rows(training.run / "train" / "scalars.csv")
    assert list(table[0]) == ["global_step", "loss", "late"]
    assert [(r["global_step"], r["late"]) for r in table] == [("1", ""), ("4", "4.0"), ("8", "8.0")]


def test_reopened_run_appends(edflow_project):
    edflow_project.toy(num_steps=4, log_freq=2, csv_metrics={})
    edflow_project.run("-t", "train.yaml", timeout=120).assert_success()
    run = edflow_project.runs()[-1]
    edflow_project.run("-p", str(run), "--num_steps", "8", timeout=120).assert_success()
    assert [r["global_step"] for r in rows(run / "train" / "metrics.csv")] == ["1", "2", "4", "5", "6", "8"]


def test_a_typo_in_its_section_is_a_config_error_naming_the_line(edflow_project):
    edflow_project.toy(csv_metrics={"evry": 2})
    outcome = edflow_project.run("-t", "train.yaml", timeout=120).assert_failed(2)
    assert "train.yaml:" in outcome.stderr and "csv_metrics/evry" in outcome.stderr and "every" in outcome.stderr
    assert "Traceback" not in outcome.stderr and not edflow_project.runs()


def test_edflow_plugins_names_its_distribution_and_entry_point(edflow_project):
    outcome = edflow_project.run("plugins", timeout=120).assert_success()
    assert "edflow-csv-metrics 0.1.0, entry point csv_metrics = edflow_csv_metrics:CsvMetrics" in outcome.stdout
