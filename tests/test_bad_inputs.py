"""The catalogue of bad inputs: every one gets a one-paragraph message naming the place (file:line or override, key
path, plugin), the documented exit code (2 usage/config, 1 run time), no traceback without -d, and config or usage
errors leave no run folder behind."""
import os
import resource
import signal
import textwrap
from dataclasses import dataclass, field

import pytest

from edcore.testing import TOY_PACKAGE

#: The toy config as text, so every key has a known line: dataset 1, iterator 2, batch_size 3, num_steps 4.
BASE = {
    "dataset": "toy.data.Data",
    "iterator": "toy.iterator.Iterator",
    "batch_size": "8",
    "num_steps": "4",
    "log_freq": "2",
    "seed": "1",
    "tensorboard": "false",
    "progress": "false",
}


def config_text(**changes) -> str:
    """BASE with ``changes`` (``None`` removes a key; new keys are appended after line 8)."""
    values = {**BASE, **changes}
    return "".join(f"{key}: {value}\n" for key, value in values.items() if value is not None)


BAD_MODULES = {
    "toy/raising.py": '''
        import numpy as np

        raise RuntimeError("the data server is unreachable")
    ''',
    "toy/syntax.py": '''
        class Data:
            def __init__(self, config)
                pass
    ''',
    "toy/needs.py": '''
        import notinstalled_dependency
    ''',
    "toy/bad.py": '''
        import numpy as np
        from edcore import TemplateIterator


        class Raises:
            def __init__(self, config, *args, **kwargs):
                raise ValueError("the constructor refuses this config")


        class Empty:
            def __init__(self, config):
                pass

            def __len__(self):
                return 0

            def __getitem__(self, index):
                raise IndexError(index)


        class Lists:
            def __init__(self, config):
                pass

            def __len__(self):
                return 16

            def __getitem__(self, index):
                return [np.zeros(3), 1.0]


        class ChangingKeys(Lists):
            def __getitem__(self, index):
                return {"x": np.zeros(3), "y": 1.0} if index % 2 else {"x": np.zeros(3), "label": 1.0}


        class ChangingShapes(Lists):
            def __getitem__(self, index):
                return {"x": np.zeros(3 + index % 2), "y": 1.0}


        class Tiny(Lists):
            def __len__(self):
                return 5

            def __getitem__(self, index):
                return {"x": np.zeros(3), "y": 1.0, "index": index}


        class NoLength:
            def __init__(self, config):
                pass


        class Failing(Lists):
            def __getitem__(self, index):
                if index == 3:
                    raise KeyError("missing file img_0003.png")
                return {"x": np.zeros(3), "y": 1.0}


        class NotAnIterator:
            def __init__(self, config, root, model, **kwargs):
                pass


        class NoConfig:
            def __init__(self):
                pass


        class WrongStep(TemplateIterator):
            def step_op(self, model, batch):
                return {}
    ''',
    "toy/torchmodel.py": '''
        import torch
        from edflow_torch import TemplateIterator


        class Model(torch.nn.Module):
            def __init__(self, config):
                super().__init__()
                self.layer = torch.nn.Linear(3, 1)

            def forward(self, x):
                return self.layer(x.reshape(-1, 4))


        class Iterator(TemplateIterator):
            def step_op(self, model, x, y, **batch):
                def train_op():
                    return model(x).mean()

                return {"train_op": train_op}
    ''',
    "toy/torchiter.py": '''
        from edflow_torch import TemplateIterator


        class Iterator(TemplateIterator):
            def step_op(self, model, **batch):
                return {"train_op": lambda: None}
    ''',
    "toy/tfiter.py": '''
        from edflow_tf import TemplateIterator


        class Iterator(TemplateIterator):
            def step_op(self, model, **batch):
                return {"train_op": lambda: None}
    ''',
    "toy/badplugin.py": '''
        from edcore import hookimpl


        @hookimpl
        def edflow_after_step(global_step):
            if global_step == 2:
                raise RuntimeError("counter overflow")
    ''',
    "toy/typoplugin.py": '''
        from edcore import hookimpl


        @hookimpl
        def edflow_after_stepp(global_step):
            pass
    ''',
    "toy/argplugin.py": '''
        from edcore import hookimpl


        class Plugin:
            @hookimpl
            def edflow_after_step(self, global_step, reslts):
                pass
    ''',
}


@dataclass
class Case:
    """One bad input: the config text, extra arguments, the exit code and what the message must contain."""

    config: str | None
    args: tuple = ()
    code: int = 2
    fragments: tuple = ()
    files: dict = field(default_factory=dict)


def _line(module: str, needle: str) -> int:
    lines = textwrap.dedent(BAD_MODULES[module]).lstrip("\n").splitlines()
    return next(number for number, line in enumerate(lines, 1) if needle in line)


CASES = {
    # --- YAML and the shape of the config
    "yaml-syntax-error": Case("dataset: toy.data.Data\nbatch_size: [8, 16\nnum_steps: 4\n",
                              fragments=("train.yaml:3", "YAML syntax error")),
    "yaml-bad-indentation": Case("dataset: toy.data.Data\n  iterator: toy.iterator.Iterator\n",
                                 fragments=("train.yaml:2", "YAML syntax error")),
    "config-is-a-list": Case("- dataset\n- iterator\n", fragments=("train.yaml:1", "must be a mapping", "a list")),
    "config-is-a-scalar": Case("just some text\n", fragments=("train.yaml:1", "must be a mapping")),
    "duplicate-key-in-file": Case(config_text() + "batch_size: 16\n",
                                  fragments=("train.yaml:9", "'batch_size' is given twice", "first at line 3")),
    # --- mandatory keys
    "missing-dataset": Case(config_text(dataset=None), fragments=("train.yaml has no key 'dataset'",)),
    "missing-iterator": Case(config_text(iterator=None), fragments=("train.yaml has no key 'iterator'",)),
    "missing-batch-size": Case(config_text(batch_size=None), fragments=("train.yaml has no key 'batch_size'",)),
    "missing-length": Case(config_text(num_steps=None), fragments=("num_steps", "num_epochs", "train.yaml")),
    # --- types and ranges
    "batch-size-not-an-integer": Case(config_text(batch_size="eight"),
                                      fragments=("train.yaml:3, key 'batch_size'", "integer", "'eight'")),
    "batch-size-zero": Case(config_text(batch_size="0"), fragments=("train.yaml:3, key 'batch_size'", ">= 1")),
    "num-steps-negative": Case(config_text(num_steps="-5"), fragments=("train.yaml:4, key 'num_steps'",)),
    "log-freq-a-string": Case(config_text(log_freq="often"), fragments=("train.yaml:5, key 'log_freq'", "'often'")),
    "shuffle-not-a-boolean": Case(config_text(shuffle="maybe"), fragments=("train.yaml:9, key 'shuffle'",)),
    "unknown-backend-key": Case(config_text(torch="{devcie: cpu}"),
                                fragments=("train.yaml:9, key 'torch/devcie'", "did you mean 'device'")),
    "backend-value-out-of-range": Case(config_text(torch="{num_workers: -1}"),
                                       fragments=("train.yaml:9, key 'torch/num_workers'",)),
    # --- settings only the framework can judge (edflow_check_config); tensorflow-cpu never sees a GPU
    "torch-fp16-on-the-cpu": Case(config_text(iterator="toy.torchiter.Iterator", torch="{device: cpu, amp: fp16}"),
                                  fragments=("train.yaml:9, key 'torch/amp'", "needs a CUDA device", "amp: bf16")),
    "tf-gpu-with-tensorflow-cpu": Case(config_text(iterator="toy.tfiter.Iterator", tf="{device: gpu}"),
                                       fragments=("train.yaml:9, key 'tf/device'", "TensorFlow sees no GPU here")),
    # --- the command line
    "override-wrong-type": Case(config_text(), ("--batch_size", "zero"),
                                fragments=("command line `--batch_size zero`", "key 'batch_size'")),
    "override-unknown-backend-key": Case(config_text(), ("--torch/devcie", "cpu"),
                                         fragments=("command line `--torch/devcie cpu`", "did you mean 'device'")),
    "override-duplicate": Case(config_text(), ("--seed", "1", "--seed", "2"),
                               fragments=("override 'seed' is given twice", "--seed 1", "--seed 2")),
    "override-value-without-key": Case(config_text(), ("5",), fragments=("unexpected argument '5'",)),
    "override-key-without-value": Case(config_text(), ("--seed",), fragments=("override '--seed' has no value",)),
    "override-empty-value": Case(config_text(), ("--seed=",), fragments=("override '--seed=' has no value",)),
    "override-malformed-key": Case(config_text(), ("--a//b", "1"), fragments=("malformed override key 'a//b'",)),
    "override-misspelled-key": Case(config_text(learning_rate="0.1"), ("--learnig_rate", "0.5"),
                                    fragments=("override '--learnig_rate 0.5'", "no config file sets (train.yaml)",
                                               "did you mean 'learning_rate' (set at train.yaml:9)?",
                                               "'--+learnig_rate 0.5'")),
    "override-misspelled-core-key": Case(config_text(), ("--num_step=3",),
                                         fragments=("'--num_step=3'", "did you mean 'num_steps'", "'--+num_step=3'")),
    "override-misspelled-nested-key": Case(config_text(net="{hidden: 4}"), ("--net/hiden", "8"),
                                           fragments=("'--net/hiden 8'", "did you mean 'net/hidden'")),
    "override-in-hydra-form": Case(config_text(), ("+extra=3",), fragments=("unexpected argument '+extra=3'",
                                                                            "write '--+extra=3'")),
    "unknown-flag": Case(config_text(), ("-x",), fragments=("unexpected argument '-x'",)),
    "nothing-to-do": Case(None, (), fragments=("nothing to do",)),
    "retrain-without-checkpoint": Case(config_text(), ("-r",), fragments=("-r/--retrain", "-c CKPT")),
    # --- dotted names
    "missing-module": Case(config_text(dataset="nomodule.data.Data"),
                           fragments=("train.yaml:1, key 'dataset'", "no module named 'nomodule'")),
    "missing-submodule": Case(config_text(dataset="toy.dat.Data"),
                              fragments=("train.yaml:1, key 'dataset'", "'dat'", "Close names: data")),
    "missing-attribute": Case(config_text(iterator="toy.iterator.Iteratr"),
                              fragments=("train.yaml:2, key 'iterator'", "'Iteratr'", "Close names: Iterator")),
    "name-of-a-module": Case(config_text(dataset="toy.data"), fragments=("train.yaml:1", "names a module")),
    "iterator-is-not-an-iterator": Case(config_text(iterator="toy.bad.NotAnIterator"),
                                        fragments=("train.yaml:2, key 'iterator'", "NotAnIterator",
                                                   "TemplateIterator")),
    "unknown-config-plugin": Case(config_text(plugins="[toy.nosuchplugin]"),
                                  fragments=("plugins", "toy.nosuchplugin", "Close names")),
    # --- paths
    "config-file-missing": Case(None, ("-t", "nothere.yaml"), fragments=("nothere.yaml", "does not exist")),
    "config-path-is-a-folder": Case(None, ("-t", "toy"), fragments=("'toy' is a directory",)),
    "config-not-utf8": Case(None, ("-t", "binary.yaml"), fragments=("binary.yaml", "cannot be read"),
                            files={"binary.yaml": None}),
    "project-missing": Case(None, ("-p", "logs/nothere"), fragments=("run folder 'logs/nothere' does not exist",)),
    "project-not-a-run": Case(None, ("-p", "toy"), fragments=("'toy' is not an edflow run folder",)),
    "project-is-a-file": Case(None, ("-p", "toy/data.py"), fragments=("'toy/data.py' is not a run folder",)),
    "checkpoint-missing": Case(config_text(), ("-c", "nothere"), fragments=("-c:", "'nothere' does not exist")),
    "checkpoint-foreign-folder": Case(config_text(), ("-c", "toy"), fragments=("-c:", "'toy' is not a checkpoint",
                                                                               "manifest.json")),
    # --- user code that fails while being imported: run time (exit 1), still before any run folder
    "module-raises-on-import": Case(config_text(dataset="toy.raising.Data"), code=1,
                                    fragments=("train.yaml:1, key 'dataset'", "the data server is unreachable",
                                               f"toy/raising.py:{_line('toy/raising.py', 'raise')}")),
    "module-syntax-error": Case(config_text(dataset="toy.syntax.Data"), code=1,
                                fragments=("train.yaml:1", "SyntaxError", f"toy/syntax.py:{_line('toy/syntax.py', 'def')}")),
    "module-missing-dependency": Case(config_text(dataset="toy.needs.Data"), code=1,
                                      fragments=("train.yaml:1", "notinstalled_dependency", "toy/needs.py:1")),
    "model-without-a-config-argument": Case(config_text(model="toy.bad.NoConfig"),
                                            fragments=("train.yaml:9, key 'model'", "as NoConfig(config)",
                                                       f"NoConfig.__init__(self) at toy/bad.py:"
                                                       f"{_line('toy/bad.py', 'def __init__(self):')}",
                                                       "def __init__(self, config)")),
    "config-plugin-misspelled-hook": Case(config_text(plugins="[toy.typoplugin]"),
                                          fragments=("plugin 'toy.typoplugin' (named in train.yaml:9, key 'plugins/0')",
                                                     "unknown hook 'edflow_after_stepp' (did you mean "
                                                     "'edflow_after_step'?) at toy/typoplugin.py:5")),
    "config-plugin-misnamed-argument": Case(config_text(plugins="[toy.argplugin.Plugin]"),
                                            fragments=("plugin 'toy.argplugin.Plugin' (named in train.yaml:9",
                                                       "hook 'edflow_after_step' at toy/argplugin.py:6",
                                                       "argument 'reslts' (did you mean 'results'?)")),
    "disable-unknown-plugin": Case(config_text(), ("--disable-plugin", "core.metric"),
                                   fragments=("--disable-plugin core.metric", "did you mean 'core.metrics'?")),
}

#: Failures at run time: exit 1, after the run folder exists (nothing in it is lost).
RUNTIME_CASES = {
    "dataset-constructor-raises": Case(config_text(dataset="toy.bad.Raises"), code=1,
                                       fragments=("the constructor refuses this config",
                                                  f"toy/bad.py\", line {_line('toy/bad.py', 'refuses')}")),
    "model-constructor-raises": Case(config_text(model="toy.bad.Raises"), code=1,
                                     fragments=("the constructor refuses this config", "toy/bad.py")),
    "empty-dataset": Case(config_text(dataset="toy.bad.Empty"), code=1,
                          fragments=("dataset 'toy.bad.Empty' is empty",)),
    "dataset-without-length": Case(config_text(dataset="toy.bad.NoLength"), code=1,
                                   fragments=("'toy.bad.NoLength' has no length",)),
    "examples-not-dicts": Case(config_text(dataset="toy.bad.Lists"), code=1,
                               fragments=("toy.bad.Lists", "returned list for example", "must be dicts")),
    "examples-with-changing-keys": Case(config_text(dataset="toy.bad.ChangingKeys", shuffle="false"), code=1,
                                        fragments=("different keys", "'label'")),
    "examples-with-changing-shapes": Case(config_text(dataset="toy.bad.ChangingShapes", shuffle="false"), code=1,
                                          fragments=("key 'x' has different shapes", "(3,)", "(4,)")),
    "batch-larger-than-dataset-with-drop-last": Case(config_text(dataset="toy.bad.Tiny", drop_last="true"), code=1,
                                                     fragments=("5 examples", "batch_size 8", "drop_last")),
    "getitem-raises": Case(config_text(dataset="toy.bad.Failing", shuffle="false"), code=1,
                           fragments=("raised on example 3", "img_0003.png", "toy/bad.py")),
    "step-op-with-a-wrong-signature": Case(config_text(iterator="toy.bad.WrongStep"), code=1,
                                           fragments=(f"WrongStep.step_op(self, model, batch) at toy/bad.py:"
                                                      f"{_line('toy/bad.py', 'def step_op(self, model, batch)')}",
                                                      "unexpected keyword argument", "the batch keys x, y, index",
                                                      "def step_op(self, model, **batch)")),
    "plugin-hook-raises": Case(config_text(plugins="[toy.badplugin]"), code=1,
                               fragments=("plugin 'toy.badplugin'", "edflow_after_step", "counter overflow",
                                          "--disable-plugin toy.badplugin")),
    "log-folder-through-a-file": Case(config_text(logdir="afile/logs"), code=1,
                                      fragments=("afile/logs", "Not a directory"), files={"afile": "x"}),
}


def one_paragraph(stderr: str) -> str:
    """The error message: from ``edflow: error:`` to the end; it must be the only one and hold no blank line."""
    assert stderr.count("edflow: error:") == 1, stderr
    message = stderr[stderr.index("edflow: error:"):].strip()
    assert "\n\n" not in message, message
    return message


def prepare(edflow_project, case: Case) -> None:
    edflow_project.write(TOY_PACKAGE)
    edflow_project.write({k: v for k, v in BAD_MODULES.items()})
    for name, text in case.files.items():
        if text is None:
            (edflow_project.path / name).write_bytes(b"batch_size: \xff\xfe\n")
        else:
            (edflow_project.path / name).write_text(text)
    if case.config is not None:
        (edflow_project.path / "train.yaml").write_text(case.config)


def invoke(edflow_project, case: Case):
    args = case.args if any(a in case.args for a in ("-t", "-p")) else ("-t", "train.yaml", *case.args)
    if case.config is None and not case.args:
        args = ()
    return edflow_project.run(*args)


def assert_reported(outcome, case: Case) -> str:
    assert outcome.returncode == case.code, outcome
    message = one_paragraph(outcome.stderr)
    for fragment in case.fragments:
        assert fragment in message, f"{fragment!r} missing from\n{message}"
    assert "Traceback (most recent call last)" not in outcome.output, outcome
    assert os.sep + "edcore" + os.sep not in message, "framework frames are trimmed"
    return message


@pytest.mark.parametrize("name", CASES)
def test_bad_input_before_the_run_folder(edflow_project, name):
    case = CASES[name]
    prepare(edflow_project, case)
    assert_reported(invoke(edflow_project, case), case)
    assert not (edflow_project.path / "logs").exists(), "nothing is written for a config or usage error"


@pytest.mark.parametrize("name", RUNTIME_CASES)
def test_bad_input_at_run_time(edflow_project, name):
    case = RUNTIME_CASES[name]
    prepare(edflow_project, case)
    assert_reported(invoke(edflow_project, case), case)
    if name != "log-folder-through-a-file":
        run = edflow_project.runs()[0]
        assert (run / "run.json").exists() and list((run / "configs").glob("train_*.yaml"))


def test_an_error_in_the_models_forward_shows_only_the_users_frames(edflow_project):
    prepare(edflow_project, Case(config_text(model="toy.torchmodel.Model", iterator="toy.torchmodel.Iterator")))
    outcome = edflow_project.run("-t", "train.yaml")
    module = "toy/torchmodel.py"
    message = assert_reported(outcome, Case(None, code=1, fragments=(
        "RuntimeError", f"(at {edflow_project.path / module}:{_line(module, 'reshape')}, in forward)",
        f'{module}", line {_line(module, "model(x)")}, in train_op',
        f'{module}", line {_line(module, "reshape")}, in forward')))
    frames = [line for line in message.splitlines() if line.lstrip().startswith('File "')]
    assert len(frames) == 2 and all(module in frame for frame in frames), message  # no edflow_torch, no torch
    outcome = edflow_project.run("-t", "train.yaml", "-d")
    assert "Traceback (most recent call last)" in outcome.stderr and "torch/nn/modules" in outcome.stderr


def test_debug_adds_the_traceback(edflow_project):
    case = CASES["missing-attribute"]
    prepare(edflow_project, case)
    outcome = edflow_project.run("-t", "train.yaml", "-d")
    assert outcome.returncode == 2
    assert "Traceback (most recent call last)" in outcome.stderr and "Close names: Iterator" in outcome.stderr


# --- storage: disk full and paths that cannot be written ----------------------------------------------------------


def run_with_file_size_limit(edflow_project, limit: int, *args: str):
    """``edflow`` with RLIMIT_FSIZE: writes beyond ``limit`` bytes fail with EFBIG, as on a full disk (root
    ignores permissions, not this limit)."""

    def limit_writes():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return edflow_project.run(*args, preexec_fn=limit_writes)


def test_a_full_disk_while_creating_the_run_folder(edflow_project):
    edflow_project.toy()
    outcome = run_with_file_size_limit(edflow_project, 300, "-t", "train.yaml")
    message = assert_reported(outcome, Case(None, code=1, fragments=("cannot write the run folder", "File too large")))
    assert "logs/" in message


def test_a_full_disk_while_checkpointing_keeps_the_run_folder(edflow_project):
    edflow_project.toy(ckpt_freq=2)
    outcome = run_with_file_size_limit(edflow_project, 5000, "-t", "train.yaml")
    assert_reported(outcome, Case(None, code=1, fragments=("cannot write the checkpoint of global step 2",
                                                            "File too large", "intact")))
    run = edflow_project.runs()[0]
    assert list((run / "configs").glob("train_*.yaml")) and (run / "run.json").exists()
    assert not list((run / "train" / "checkpoints").glob(".tmp-*")), "the failed save cleaned up"


# --- checkpoints that cannot be used -------------------------------------------------------------------------------


def test_a_corrupt_checkpoint_given_with_c(edflow_project):
    edflow_project.toy(num_steps=4, ckpt_freq=2)
    edflow_project.run("-t", "train.yaml").assert_success()
    checkpoint = edflow_project.runs()[0] / "train" / "checkpoints" / "0000000004"
    weights = checkpoint / "w.npy"
    weights.write_bytes(b"\x93NUMPY garbage".ljust(weights.stat().st_size, b"\0"))
    outcome = edflow_project.run("-t", "train.yaml", "-c", checkpoint, "-n", "second")
    assert_reported(outcome, Case(None, code=1, fragments=("0000000004", "cannot be restored")))


def test_a_checkpoint_of_another_model_names_the_parameter(edflow_project):
    from resumable_project import write_project

    write_project(edflow_project)
    edflow_project.run("-t", "train.yaml", "--num_epochs", "1").assert_success()
    outcome = edflow_project.run("-t", "train.yaml", "--+hidden", "8", "-c", edflow_project.runs()[0], "-n", "small")
    message = assert_reported(outcome, Case(None, code=1, fragments=("layers.0.weight", "size mismatch",
                                                                      "another model")))
    assert "torch.Size([16, 4])" in message and "torch.Size([8, 4])" in message


# --- plugins installed as distributions ----------------------------------------------------------------------------


def test_an_entry_point_that_fails_to_load_is_named_and_the_rest_works(edflow_project):
    edflow_project.toy()
    edflow_project.write({
        "site/brokenplug-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: brokenplug\nVersion: 1.0\n",
        "site/brokenplug-1.0.dist-info/entry_points.txt": "[edflow]\nbroken = brokenplug_impl:plugin\n",
        "site/brokenplug_impl.py": "raise ImportError('brokenplug needs libfoo.so')\n",
    })
    outcome = edflow_project.run("-t", "train.yaml", env={"PYTHONPATH": str(edflow_project.path / "site")})
    outcome.assert_success()
    assert "plugin 'broken'" in outcome.stderr and "brokenplug 1.0" in outcome.stderr
    assert "brokenplug needs libfoo.so" in outcome.stderr and "skipped" in outcome.stderr
    assert "Traceback" not in outcome.output
    assert (edflow_project.runs()[0] / "train" / "checkpoints" / "0000000010").is_dir()


@pytest.mark.parametrize("hook, fragments", [
    ("def edflow_after_stp(self, global_step):", ("unknown hook 'edflow_after_stp' (did you mean "
                                                  "'edflow_after_step'?) at site/typoplug_impl.py:6",)),
    ("def edflow_after_step(self, global_stp):", ("hook 'edflow_after_step' at site/typoplug_impl.py:6",
                                                  "argument 'global_stp' (did you mean 'global_step'?)")),
])
def test_an_installed_plugin_that_breaks_the_hook_contract_is_a_usage_error(edflow_project, hook, fragments):
    edflow_project.toy()
    edflow_project.write({
        "site/typoplug-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: typoplug\nVersion: 1.0\n",
        "site/typoplug-1.0.dist-info/entry_points.txt": "[edflow]\ntypo = typoplug_impl:Plugin\n",
        "site/typoplug_impl.py": f"from edcore import hookimpl\n\n\nclass Plugin:\n    @hookimpl\n    {hook}\n        pass\n",
    })
    outcome = edflow_project.run("-t", "train.yaml", env={"PYTHONPATH": str(edflow_project.path / "site")})
    where = "plugin 'typo' (entry point 'typo = typoplug_impl:Plugin' of typoplug 1.0)"
    message = assert_reported(outcome, Case(None, code=2, fragments=(where, *fragments)))
    assert "pluggy" not in message.lower()
    assert not (edflow_project.path / "logs").exists()


def test_edflow_plugins_with_an_unknown_disabled_plugin_suggests_the_name(edflow_project):
    outcome = edflow_project.run("plugins", "--disable-plugin", "core.seeds")
    assert_reported(outcome, Case(None, code=2, fragments=("--disable-plugin core.seeds", "did you mean 'core.seed'?")))


# --- an existing run folder is never overwritten or truncated -------------------------------------------------------


def snapshot_tree(root):
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_nothing_lost(before: dict, root) -> None:
    """Every file that existed is still there with its old content (append-only files may have grown)."""
    import json

    after = snapshot_tree(root)
    for path, content in before.items():
        assert path in after, f"{path} was removed"
        if path.name == "run.json":
            old, new = json.loads(content)["invocations"], json.loads(after[path])["invocations"]
            assert new[: len(old)] == old, "earlier invocations are kept"
        elif path.name == "status.json":  # the one record that is meant to change: how the last invocation ended
            assert json.loads(after[path])["status"] in ("finished", "failed")
        elif path.name == "train.lock":  # names the process that trains (or trained last): rewritten by each one
            assert set(json.loads(after[path])) == {"pid", "host"}
        else:
            assert after[path].startswith(content), f"{path} was overwritten"


@pytest.mark.parametrize("args, code", [
    (("--batch_size", "0"), 2),                       # a config error in the resumed config
    (("--dataset", "toy.bad.Empty"), 1),              # a failure at run time
    (("--num_steps", "12", "--nonsense"), 2),         # a usage error
])
def test_a_failed_resume_loses_nothing(edflow_project, args, code):
    edflow_project.toy()
    edflow_project.write(BAD_MODULES)
    edflow_project.run("-t", "train.yaml").assert_success()
    run = edflow_project.runs()[0]
    before = snapshot_tree(run)
    assert edflow_project.run("-p", run, *args).returncode == code
    assert_nothing_lost(before, run)


def test_a_new_run_or_an_evaluation_never_writes_over_an_existing_run(edflow_project):
    edflow_project.toy()
    edflow_project.config("eval.yaml", dataset="toy.data.Data", iterator="toy.iterator.Iterator", batch_size=8)
    edflow_project.run("-t", "train.yaml", "-n", "same").assert_success()
    first = edflow_project.runs()[0]
    before = snapshot_tree(first)
    edflow_project.run("-t", "train.yaml", "-n", "same").assert_success()
    assert len(edflow_project.runs()) == 2
    edflow_project.run("-e", "eval.yaml", "-p", first).assert_success()
    assert_nothing_lost(before, first)
