"""Validation against the core schema and plugin fragments: messages name file:line, the key and the fix."""
import json
from pathlib import Path

import pytest

from edcore.config import apply_overrides, load_text, parse_overrides
from edcore.errors import ConfigError
from edcore.schema import build_schema, core_schema, validate

VALID = "dataset: a.B\niterator: c.D\nbatch_size: 4\nnum_steps: 10\n"
FRAGMENT = {"torch": {"type": "object", "additionalProperties": False,
                      "properties": {"device": {"type": "string"}, "amp": {"enum": ["off", "bf16"]}}}}


def check(text, mode="train", overrides=()):
    config = apply_overrides(load_text(text, "train.yaml"), parse_overrides(list(overrides)))
    return validate(config, build_schema([FRAGMENT]), mode)


def error_of(text, mode="train", overrides=()):
    with pytest.raises(ConfigError) as info:
        check(text, mode, overrides)
    return str(info.value)


def test_a_valid_config_passes_and_user_keys_are_allowed():
    assert check(VALID + "lr: 0.1\nn_classes: 10\nmy_section: {anything: [1, 2]}\n") == []


@pytest.mark.parametrize("text, fragment", [
    (VALID.replace("batch_size: 4", "batch_size: 0"), "train.yaml:3, key 'batch_size': expected an integer >= 1, found 0"),
    (VALID.replace("batch_size: 4", "batch_size: four"), "key 'batch_size': expected an integer >= 1, found 'four'"),
    (VALID.replace("batch_size: 4", "batch_size: 4.5"), "found 4.5 (a number)"),
    (VALID.replace("num_steps: 10", "num_steps: true"), "key 'num_steps': expected an integer >= 1, found True"),
    (VALID.replace("dataset: a.B", "dataset: 3"), "key 'dataset': expected a dotted name"),
    (VALID.replace("dataset: a.B", "dataset: not a name"), "key 'dataset': expected a dotted name"),
    (VALID + "log_freq: 0\n", "train.yaml:5, key 'log_freq': expected an integer >= 1 or null, found 0"),
    (VALID + "torch: {devcie: cpu}\n", "train.yaml:5, key 'torch/devcie': unknown key 'devcie' in section 'torch'; did you mean 'device'?"),
    (VALID + "torch: {amp: fp8}\n", "key 'torch/amp': expected one of 'off', 'bf16', found 'fp8'"),
    (VALID + "torch: cpu\n", "key 'torch': expected a mapping, found 'cpu'"),
    (VALID + "tensorboard: {enabld: true}\n", "unknown key 'enabld' in section 'tensorboard'; did you mean 'enabled'?"),
    (VALID + "ckpt_best: {metric: loss, mode: lowest}\n", "key 'ckpt_best/mode': expected one of 'min', 'max'"),
    (VALID + "ckpt_best: {mode: min}\n", "train.yaml:5, key 'ckpt_best': missing key 'ckpt_best/metric'"),
    (VALID + "plugins: mypkg.plugin\n", "key 'plugins': expected a list"),
    (VALID + "seed: -1\n", "key 'seed'"),
])
def test_schema_errors_name_file_line_key_and_expectation(text, fragment):
    assert fragment in error_of(text)


def test_override_errors_name_the_override():
    message = error_of(VALID, overrides=["--batch_size", "-2"])
    assert "command line `--batch_size -2`, key 'batch_size'" in message


@pytest.mark.parametrize("missing", ["dataset", "iterator", "batch_size"])
def test_each_mandatory_key_missing(missing):
    text = "\n".join(line for line in VALID.splitlines() if not line.startswith(missing))
    message = error_of(text)
    assert f"has no key '{missing}', which training needs" in message


def test_num_steps_or_num_epochs_is_required_and_a_typo_is_pointed_out():
    message = error_of(VALID.replace("num_steps: 10", "num_step: 10"))
    assert "neither 'num_steps' nor 'num_epochs'" in message
    assert "found 'num_step' at train.yaml:4: did you mean 'num_steps'?" in message


def test_evaluation_needs_no_num_steps():
    assert check(VALID.replace("num_steps: 10\n", ""), mode="eval") == []


def test_several_problems_are_listed_together():
    message = error_of("dataset: 1\nbatch_size: 0\n")
    assert "problems" in message and "batch_size" in message and "'iterator'" in message


def test_close_top_level_typo_is_a_warning():
    warnings = check(VALID + "log_frq: 10\n")
    assert warnings == ["train.yaml:5, key 'log_frq': unknown key 'log_frq' is passed to your code as it is; did you mean 'log_freq'?"]


def test_core_schema_is_shipped_as_package_data_and_is_valid():
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(core_schema())
    source = Path(__file__).parents[1] / "schemas" / "edflow.schema.json"
    assert json.loads(source.read_text()) == core_schema()
