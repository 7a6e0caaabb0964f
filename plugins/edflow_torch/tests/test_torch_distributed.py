"""Data-parallel training with torchrun on the CPU (gloo, 2 processes): one model, one run folder."""
import json
import os
import signal
import subprocess
import time

import torch
import yaml
from torch_helpers import torchrun_command
from edcore.batching import epoch_indices
from edcore.checkpoint import CheckpointStore


def rank_files(folder, rank):
    record = json.loads((folder / f"indices_{rank}.json").read_text())
    return torch.load(folder / f"weights_{rank}.pt", weights_only=True), record


def trained_examples(record, first_step, last_step):
    """The example indices a rank trained on in steps ``first_step < step <= last_step``."""
    return [i for step, batch in record["indices"] if first_step < step <= last_step for i in batch]


def test_two_gloo_processes_train_one_model_into_one_run_folder(torch_project, tmp_path):
    # No seed in the config: each process draws one, and rank 0's must win for the ranks to split the data.
    torch_project.tiny(drop=["seed"], num_steps=12, log_freq=5, plugins=["tiny.ranks.RankRecorder"])
    outcome = torch_project.torchrun(2, "-t", "train.yaml", env={"TINY_RANKS": str(tmp_path)}).assert_success()

    (run,) = torch_project.runs()  # one run folder
    checkpoints = CheckpointStore(run / "train" / "checkpoints").published()
    assert [c.step for c in checkpoints] == [5, 10, 12]  # 40 examples / (2 ranks x 4) = 5 steps per epoch
    assert sorted(p.name for p in (run / "train" / "checkpoints").iterdir()) == \
        ["0000000005", "0000000010", "0000000012", "latest"]  # one set, no leftovers of a second writer
    weights = [rank_files(tmp_path, rank)[0] for rank in (0, 1)]
    final = torch.load(checkpoints[-1].path / "torch_state.pt", weights_only=True)["model"]
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]) and torch.equal(value, final[name]), name

    records = [rank_files(tmp_path, rank)[1] for rank in (0, 1)]
    assert {r["ddp"] for r in records} == {"DistributedDataParallel"}
    for epoch, (first, last) in enumerate([(0, 5), (5, 10)]):  # each epoch: every example once, across the ranks
        seen = trained_examples(records[0], first, last) + trained_examples(records[1], first, last)
        assert sorted(seen) == list(range(40)), epoch
    (effective,) = [p for p in (run / "configs").glob("train_*.yaml") if not p.name.endswith(".origins.yaml")]
    seed = yaml.safe_load(effective.read_text())["seed"]  # the one recorded
    assert trained_examples(records[0], 0, 5) == [int(i) for i in epoch_indices(40, seed, 0, True)[0::2]]

    metrics = torch_project.metrics(run)
    assert [m["global_step"] for m in metrics] == [1, 5, 10]  # written once, by rank 0
    assert all(m["rank"] == 0.5 for m in metrics)  # the mean of rank 0's 0 and rank 1's 1
    assert outcome.stderr.count("training finished at global step 12") == 1  # the other rank does not repeat it


def test_a_checkpoint_resumes_with_a_different_number_of_processes(torch_project, tmp_path):
    torch_project.tiny(num_steps=6, plugins=["tiny.ranks.RankRecorder"])
    order = [epoch_indices(40, 3, epoch, True).tolist() for epoch in (0, 1)]
    env = {"TINY_RANKS": str(tmp_path)}

    torch_project.run("-t", "train.yaml", env=env).assert_success()  # one process: steps 1-6 use order[0][:24]
    (run,) = torch_project.runs()
    assert trained_examples(rank_files(tmp_path, 0)[1], 0, 6) == order[0][:24]

    # Two processes continue at example 24: steps 7-8 end epoch 0 (8 examples a step), step 9 starts epoch 1.
    torch_project.torchrun(2, "-p", run, "--num_steps", "9", env=env).assert_success()
    records = [rank_files(tmp_path, rank)[1] for rank in (0, 1)]
    assert sorted(trained_examples(records[0], 6, 8) + trained_examples(records[1], 6, 8)) == sorted(order[0][24:])
    assert trained_examples(records[0], 8, 9) == order[1][0:8:2]
    assert trained_examples(records[1], 8, 9) == order[1][1:8:2]
    weights = [rank_files(tmp_path, rank)[0] for rank in (0, 1)]
    assert all(torch.equal(value, weights[1][name]) for name, value in weights[0].items())

    # One process again, from the two-process checkpoint: epoch 1 goes on at example 8.
    outcome = torch_project.run("-p", run, "--num_steps", "11", env=env).assert_success()
    assert "checkpoint written by 2 processes, resumed with 1" in outcome.stderr
    assert trained_examples(rank_files(tmp_path, 0)[1], 9, 11) == order[1][8:16]
    assert [c.step for c in CheckpointStore(run / "train" / "checkpoints").published()] == [6, 8, 9, 11]


def test_sigterm_to_torchrun_stops_every_rank_after_the_same_step(torch_project, tmp_path):
    torch_project.tiny(num_steps=10**6, log_freq=10**5, ckpt_freq=50, plugins=["tiny.ranks.RankRecorder"])
    process = subprocess.Popen(torchrun_command(2, "-t", "train.yaml"), cwd=torch_project.path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1", "TINY_RANKS": str(tmp_path)})
    try:
        deadline = time.monotonic() + 240
        while not any(torch_project.path.glob("logs/*/train/checkpoints/latest")):  # training is under way
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)  # to torchrun's PID only, as a scheduler does; it tells the ranks
        output = process.communicate(timeout=120)[0]
    finally:
        process.kill()

    (run,) = torch_project.runs()
    latest = CheckpointStore(run / "train" / "checkpoints").latest()
    assert latest.manifest["reason"] == "interrupt", output
    assert output.count(f"interrupted at global step {latest.step};") == 2  # both ranks, the same step
    assert "forcefully exiting" not in output  # no rank was left blocked until torchrun killed it
    weights = [rank_files(tmp_path, rank)[0] for rank in (0, 1)]
    saved = torch.load(latest.path / "torch_state.pt", weights_only=True)["model"]
    assert all(torch.equal(value, weights[1][name]) and torch.equal(value, saved[name])
               for name, value in weights[0].items())


def rank_pids(token, timeout=60):
    """{rank: pid} of the torchrun workers started with TINY_TOKEN=token."""
    from edcore.testing import processes_with_env

    deadline = time.monotonic() + timeout
    ranks = {}
    while time.monotonic() < deadline:
        ranks = {}
        for pid in processes_with_env("TINY_TOKEN", token):
            try:
                with open(f"/proc/{pid}/environ", "rb") as stream:
                    env = dict(item.split(b"=", 1) for item in stream.read().split(b"\0") if b"=" in item)
            except OSError:
                continue
            if b"LOCAL_RANK" in env:  # a rank, not torchrun itself
                ranks[int(env[b"RANK"])] = pid
        if len(ranks) == 2:
            return ranks
        time.sleep(0.2)
    raise AssertionError(f"the two ranks were not found: {ranks}")


def test_a_rank_whose_own_signal_comes_after_the_ranks_agreed_to_stop_still_stops_cleanly(torch_project, tmp_path):
    # torchrun signals the ranks one after the other: a rank can learn from the other that they stop before its own
    # SIGTERM arrives. That signal is its first, not a second one that aborts without the interrupt line.
    torch_project.tiny(num_steps=10**6, log_freq=10**5, ckpt_freq=50, plugins=["tiny.ranks.RankRecorder"])
    token = str(time.monotonic_ns())
    process = subprocess.Popen(torchrun_command(2, "-t", "train.yaml"), cwd=torch_project.path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1", "TINY_RANKS": str(tmp_path),
                                    "TINY_HOLD": "1", "TINY_TOKEN": token})
    try:
        deadline = time.monotonic() + 240
        while not any(torch_project.path.glob("logs/*/train/checkpoints/latest")):  # training is under way
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
            time.sleep(0.2)
        ranks = rank_pids(token)
        os.kill(ranks[0], signal.SIGTERM)  # rank 0 gets it; rank 1 stops because rank 0 does
        while not (tmp_path / "stopped_1").exists():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
            time.sleep(0.05)
        os.kill(ranks[1], signal.SIGTERM)  # rank 1's own copy, after the agreement
        for rank in (0, 1):
            (tmp_path / f"go_{rank}").touch()
        output = process.communicate(timeout=120)[0]
    finally:
        process.kill()

    assert "second signal" not in output, output
    (run,) = torch_project.runs()
    latest = CheckpointStore(run / "train" / "checkpoints").latest()
    assert latest.manifest["reason"] == "interrupt", output
    assert output.count(f"interrupted at global step {latest.step};") == 2, output  # both ranks, the same step
