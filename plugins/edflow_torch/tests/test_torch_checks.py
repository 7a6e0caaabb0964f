"""What only torch can judge (devices, amp, compile) fails before the run folder exists: exit 2, one paragraph naming
file:line and the key, no traceback, no logs/. And torch.compile trains for real on the CPU."""
import pytest
import torch
import yaml
from torch_helpers import TINY_CONFIG

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the device exists")


def write_lines(project, *torch_lines, name="train.yaml", **changes):
    """The tiny config with its ``torch:`` section last, one key a line; returns {key: line number}."""
    project.tiny()
    config = {key: value for key, value in {**TINY_CONFIG, **changes}.items() if key != "torch"}
    text = yaml.safe_dump(config, sort_keys=False)
    start = len(text.splitlines()) + 2  # the line after "torch:"
    text += "torch:\n" + "".join(f"  {line}\n" for line in torch_lines)
    (project.path / name).write_text(text)
    return {line.split(":")[0]: start + number for number, line in enumerate(torch_lines)}


def assert_config_error(project, outcome, place, *fragments):
    assert outcome.returncode == 2, outcome
    message = outcome.stderr[outcome.stderr.index("edflow: error:"):]
    assert place in message and all(f in message for f in fragments), outcome
    assert "Traceback" not in outcome.output, outcome
    assert not (project.path / "logs").exists(), "nothing is written for a config error"


@pytest.mark.parametrize("lines, key, fragments", [
    pytest.param(("device: cuda",), "device", ("CUDA is not available here", "use device: auto or cpu"),
                 marks=NO_CUDA, id="cuda-without-cuda"),
    pytest.param(("device: cuda:1",), "device", ("torch: {device: cuda:1}",), marks=NO_CUDA, id="cuda-index"),
    pytest.param(("device: mps",), "device", ("has no MPS", "use device: auto or cpu"),
                 marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="MPS exists"), id="mps"),
    pytest.param(("device: cpu", "amp: fp16"), "amp", ("torch: {amp: fp16} needs a CUDA device", "amp: bf16"),
                 id="fp16-on-the-cpu"),
])
def test_a_setting_this_machine_cannot_run_fails_before_the_run_folder(torch_project, lines, key, fragments):
    numbers = write_lines(torch_project, "num_workers: 0", *lines)
    outcome = torch_project.run("-t", "train.yaml", timeout=120)
    assert_config_error(torch_project, outcome, f"train.yaml:{numbers[key]}, key 'torch/{key}':", *fragments)


def test_an_override_is_named_as_the_place(torch_project):
    torch_project.tiny()
    outcome = torch_project.run("-t", "train.yaml", "--torch/amp", "fp16", timeout=120)
    assert_config_error(torch_project, outcome, "command line `--torch/amp fp16`, key 'torch/amp':", "needs a CUDA")


def test_an_evaluation_config_is_checked_too(torch_project):
    torch_project.tiny()
    numbers = write_lines(torch_project, "device: cpu", "amp: fp16", name="eval.yaml")
    outcome = torch_project.run("-t", "train.yaml", "-e", "eval.yaml", timeout=120)
    assert_config_error(torch_project, outcome, f"eval.yaml:{numbers['amp']}, key 'torch/amp':", "needs a CUDA")


def test_compile_without_a_cpu_compiler_is_a_config_error(torch_project):
    numbers = write_lines(torch_project, "num_workers: 0", "device: cpu", "compile: true")
    outcome = torch_project.run("-t", "train.yaml", env={"CXX": "/nonexistent/c++"}, timeout=120)
    assert_config_error(torch_project, outcome, f"train.yaml:{numbers['compile']}, key 'torch/compile':",
                        "'/nonexistent/c++'", "compile: false")


def test_other_backends_configs_are_not_judged_by_torch(edflow_project):
    edflow_project.toy(torch={"device": "cuda", "amp": "fp16"})  # inert for a numpy iterator
    edflow_project.run("-t", "train.yaml", timeout=120).assert_success()


def test_compile_trains_the_compiled_model_on_the_cpu(torch_project, catcher):
    torch_project.tiny(num_steps=3, log_freq=1, torch={"compile": True})
    assert torch_project.run_in_process("-t", "train.yaml", plugins=[catcher]) == 0
    iterator = catcher.iterator
    assert isinstance(iterator.model, torch._dynamo.eval_frame.OptimizedModule)
    assert iterator.model._orig_mod is iterator._raw_model
    losses = [m["loss"] for m in torch_project.metrics(torch_project.runs()[0])]
    assert len(losses) == 3 and all(loss == loss for loss in losses)  # three real, finite steps
    assert (torch_project.runs()[0] / "train" / "checkpoints" / "0000000003").is_dir()


@NO_CUDA
def test_nccl_under_torchrun_without_cuda_fails_before_the_run_folder(torch_project):
    numbers = write_lines(torch_project, "num_workers: 0", "device: cpu", "ddp: {backend: nccl}")
    outcome = torch_project.torchrun(2, "-t", "train.yaml", timeout=180)
    assert outcome.returncode != 0 and "exitcode  : 2" in outcome.stderr, outcome  # torchrun reports rank 0's code
    assert f"train.yaml:{numbers['ddp']}, key 'torch/ddp/backend': torch: {{ddp: {{backend: nccl}}}} needs CUDA" \
        in outcome.stderr, outcome
    ranks_output = outcome.stderr.split("torch/distributed/elastic")[0]  # then torchrun's own traceback follows
    assert ranks_output.count("edflow: error:") >= 1 and "Traceback" not in ranks_output, outcome
    assert not (torch_project.path / "logs").exists()
