"""What only TensorFlow can judge (devices) fails before the run folder exists: exit 2, one paragraph naming
file:line and the key, no traceback, no logs/."""
import pytest
import yaml
from edcore.testing import EdflowProject
from tf_helpers import TF_PROJECT, TRAIN_CONFIG

#: An iterator module that creates a tensor when imported: TensorFlow's devices are fixed from then on.
EAGER_MODULE = {"tfuser/eager.py": '''
    import tensorflow as tf

    from tfuser.iterator import Iterator as Base

    SCALE = tf.constant(2.0)


    class Iterator(Base):
        pass
'''}


def write_lines(path, *tf_lines, **changes):
    """The TF project with its ``tf:`` section last, one key a line; returns the project and {key: line number}."""
    project = EdflowProject(path)
    project.write({**TF_PROJECT, **EAGER_MODULE})
    config = {key: value for key, value in {**TRAIN_CONFIG, "num_steps": 2, **changes}.items() if key != "tf"}
    text = yaml.safe_dump(config, sort_keys=False)
    start = len(text.splitlines()) + 2  # the line after "tf:"
    (path / "train.yaml").write_text(text + "tf:\n" + "".join(f"  {line}\n" for line in tf_lines))
    return project, {line.split(":")[0]: start + number for number, line in enumerate(tf_lines)}


def assert_config_error(project, outcome, place, *fragments):
    assert outcome.returncode == 2, outcome
    message = outcome.stderr[outcome.stderr.index("edflow: error:"):]
    assert place in message and all(f in message for f in fragments), outcome
    assert "Traceback" not in outcome.output, outcome
    assert not (project.path / "logs").exists(), "nothing is written for a config error"


def test_a_gpu_this_machine_lacks_fails_before_the_run_folder(tmp_path):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU: device: gpu is valid here")
    project, numbers = write_lines(tmp_path, "jit: true", "device: gpu")
    outcome = project.run("-t", "train.yaml", timeout=180)
    assert_config_error(project, outcome, f"train.yaml:{numbers['device']}, key 'tf/device':",
                        "TensorFlow sees no GPU here", "use device: auto or cpu")


def test_logical_cpus_after_an_import_made_tensors_fails_before_the_run_folder(tmp_path):
    project, numbers = write_lines(tmp_path, "logical_cpus: 2", iterator="tfuser.eager.Iterator")
    outcome = project.run("-t", "train.yaml", timeout=180)
    assert_config_error(project, outcome, f"train.yaml:{numbers['logical_cpus']}, key 'tf/logical_cpus':",
                        "TensorFlow has already made its devices", "Create no tensors")


def test_logical_cpus_set_up_early_still_train_a_mirrored_strategy(tmp_path):
    project, _numbers = write_lines(tmp_path, "logical_cpus: 2", "strategy: mirrored")
    project.run("-t", "train.yaml", timeout=180).assert_success()
    replicas = [m["replicas"] for m in project.metrics(project.runs()[0])]
    assert replicas and set(replicas) == {2}, "both logical CPUs ran the steps"
