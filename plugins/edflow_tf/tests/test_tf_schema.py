"""The ``tf:`` section of the config: validated before anything is written, with the place and a suggestion."""
import pytest
from tf_helpers import tf_project


@pytest.mark.parametrize(("section", "message"), [
    ({"devcie": "cpu"}, "train.yaml:18, key 'tf/devcie': unknown key 'devcie' in section 'tf'; did you mean 'device'?"),
    ({"strategy": "tpu"}, "key 'tf/strategy': expected one of 'default', 'mirrored', 'multi_worker_mirrored', found 'tpu'"),
    ({"jit": "yes"}, "key 'tf/jit': expected true or false, found 'yes' (a string)"),
    ({"logical_cpus": 0}, "key 'tf/logical_cpus': expected an integer >= 1, found 0"),
    ({"num_parallel_calls": "many"}, "key 'tf/num_parallel_calls'"),
])
def test_invalid_tf_section_is_a_config_error_before_the_run_folder(tmp_path, section, message):
    project = tf_project(tmp_path, tf=section)
    outcome = project.run("-t", "train.yaml", timeout=120).assert_failed(2)
    assert message in outcome.stderr and "Traceback" not in outcome.stderr
    assert not (tmp_path / "logs").exists()


def test_the_fragment_is_contributed_by_the_installed_plugin():
    from edcore.plugins import make_plugin_manager
    from edflow_tf.settings import DEFAULTS, SCHEMA

    manager = make_plugin_manager()
    fragments = [f for f in manager.hook.edflow_config_schema() if f and "tf" in f]
    assert fragments == [{"tf": SCHEMA}]
    assert set(SCHEMA["properties"]) == set(DEFAULTS)  # every key has a default and is documented
