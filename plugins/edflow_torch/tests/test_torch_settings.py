"""The ``torch:`` section: its schema fragment (through the installed entry point) and what its keys do."""
import pytest
import torch
import yaml
from torch_helpers import TINY_CONFIG
from edflow_torch.settings import DEFAULTS, SCHEMA, resolve_device, torch_settings


def write_lines(project, *torch_lines):
    """The tiny config with the ``torch:`` section given line by line (so the error's line number is known)."""
    project.tiny()
    config = {key: value for key, value in TINY_CONFIG.items() if key != "torch"}
    text = yaml.safe_dump(config, sort_keys=False) + "torch:\n" + "".join(f"  {line}\n" for line in torch_lines)
    (project.path / "train.yaml").write_text(text)
    return len(text.splitlines())


@pytest.mark.parametrize("line, message", [
    ("devcie: cpu", "key 'torch/devcie': unknown key 'devcie' in section 'torch'; did you mean 'device'?"),
    ("num_worker: 2", "key 'torch/num_worker': unknown key 'num_worker' in section 'torch'; did you mean 'num_workers'?"),
    ("amp: fp32", "key 'torch/amp': expected one of 'off', 'bf16', 'fp16', found 'fp32'"),
    ("device: gpu", "key 'torch/device': expected auto (CUDA when available), cpu, cuda or cuda:N, found 'gpu'"),
    ("num_threads: 0", "key 'torch/num_threads': expected an integer >= 1 or 'auto', found 0 (an integer)"),
    ("pin_memory: maybe", "key 'torch/pin_memory': expected true or false or 'auto', found 'maybe'"),
])
def test_a_bad_torch_section_fails_before_anything_is_written(torch_project, line, message):
    number = write_lines(torch_project, "num_workers: 0", line)
    outcome = torch_project.run("-t", "train.yaml", timeout=120).assert_failed(2)
    assert f"train.yaml:{number}, {message}" in outcome.stderr, outcome
    assert "Traceback" not in outcome.stderr
    assert not (torch_project.path / "logs").exists()


def test_a_torch_override_is_checked_the_same_way(torch_project):
    torch_project.tiny()
    outcome = torch_project.run("-t", "train.yaml", "--torch/amp", "fp8", timeout=120).assert_failed(2)
    assert "command line `--torch/amp fp8`, key 'torch/amp': expected one of 'off', 'bf16', 'fp16'" in outcome.stderr


def test_every_default_is_a_valid_value_and_documented():
    import jsonschema

    defaults = {key: value for key, value in DEFAULTS.items() if value is not None}
    jsonschema.validate(defaults, SCHEMA)
    assert set(DEFAULTS) == set(SCHEMA["properties"])
    assert torch_settings({"torch": {"ddp": {"backend": "gloo"}}})["ddp"] == {"backend": "gloo",
                                                                            "find_unused_parameters": False}


def test_devices_resolve_to_what_this_machine_has():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))
    if not torch.cuda.is_available():
        from edcore.errors import ConfigError

        with pytest.raises(ConfigError, match="torch: {device: cuda} but CUDA is not available here"):
            resolve_device("cuda")


def test_num_threads_sets_torchs_thread_count(torch_project, tmp_path):
    torch_project.tiny()
    from tiny.iterator import Iterator
    from tiny.model import Net

    before = torch.get_num_threads()
    try:
        Iterator({**TINY_CONFIG, "torch": {"num_threads": 1}}, str(tmp_path), Net({}))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
