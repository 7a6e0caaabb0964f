"""Exact resume: a run interrupted by real signals and resumed with `edflow -p` ends bit-identical to the same run
left alone, with dropout, shuffling and DataLoader workers, and without loading the skipped examples again."""
import signal
from collections import Counter

import numpy as np
import pytest
from resumable_project import (
    BATCHES_PER_EPOCH,
    NUM_EXAMPLES,
    TOTAL_STEPS,
    assert_same_training,
    marker_env,
    served,
    write_project,
)

from edcore.batching import epoch_indices

SEED = 7


def example_order() -> list[int]:
    """Every example index the uninterrupted run loads, in order (three shuffled epochs)."""
    return np.concatenate([epoch_indices(NUM_EXAMPLES, SEED, epoch, True) for epoch in range(3)]).tolist()


def offset(step: int) -> int:
    """Position in :func:`example_order` of the first example of ``step`` (batch_size 5, last batch of 1)."""
    return (step // BATCHES_PER_EPOCH) * NUM_EXAMPLES + (step % BATCHES_PER_EPOCH) * 5


def test_the_reference_loads_every_example_once_per_epoch_in_the_seeded_order(torch_reference):
    run, loads = torch_reference(0)
    assert [index for index, _ in loads] == example_order()


def interrupt(project, args, step, signum, group, served_file):
    """Run until ``step`` is executing, send ``signum``, and return the outcome (the run checkpoints and exits)."""
    env = marker_env(project.path / f"markers-{step}", pause_at=step, served=served_file)
    running = project.start(*args, env=env)
    running.wait_for_file(project.path / f"markers-{step}" / f"paused-{step}")
    running.send(signum, group=group)
    return running.wait(timeout=60)


# (step the signal arrives in, signal, sent to the process group)
PLANS = {
    0: [(3, signal.SIGINT, False), (7, signal.SIGTERM, False), (13, signal.SIGINT, False)],
    2: [(5, signal.SIGTERM, False), (17, signal.SIGINT, True)],
}


@pytest.mark.parametrize("workers", [0, 2])
def test_interrupted_and_resumed_run_is_bit_identical(edflow_project, torch_reference, workers):
    write_project(edflow_project, torch={"num_workers": workers})
    reference_run, _ = torch_reference(workers)
    invocations = []  # (first step, served file)
    start = 0
    for number, (step, signum, group) in enumerate(PLANS[workers]):
        served_file = edflow_project.path / f"served-{number}.txt"
        args = ("-t", "train.yaml") if number == 0 else ("-p", edflow_project.runs()[0])
        outcome = interrupt(edflow_project, args, step, signum, group, served_file)
        assert outcome.returncode == 128 + signum, outcome
        assert "resume with: edflow -p" in outcome.stderr.lower(), outcome
        assert len(edflow_project.runs()) == 1  # a resume continues in the same folder
        checkpoint = edflow_project.runs()[0] / "train" / "checkpoints" / f"{step + 1:010d}"
        assert (checkpoint / "manifest.json").exists(), "the interrupted step was finished and checkpointed"
        invocations.append((start, step + 1, served_file))
        start = step + 1
    served_file = edflow_project.path / "served-last.txt"
    outcome = edflow_project.run("-p", edflow_project.runs()[0], env=marker_env(edflow_project.path / "m",
                                                                                  served=served_file))
    outcome.assert_success()
    invocations.append((start, TOTAL_STEPS, served_file))

    assert_same_training(edflow_project.runs()[0], reference_run)

    order = example_order()
    for first, last, file in invocations:
        loaded = [index for index, _ in served(file)]
        if workers == 0:
            # exactly the examples of the steps this invocation ran: none before its start was loaded again
            assert loaded == order[offset(first):offset(last)], (first, last)
        elif last == TOTAL_STEPS:
            assert Counter(loaded) == Counter(order[offset(first):]), (first, last)
        else:
            # workers prefetch up to 2 batches each beyond the last step; nothing before the start is loaded
            assert Counter(loaded) <= Counter(order[offset(first):offset(last) + 4 * 5]), (first, last)


def test_resume_at_the_end_does_nothing_and_changes_nothing(edflow_project, torch_reference):
    write_project(edflow_project)
    edflow_project.run("-t", "train.yaml").assert_success()
    run = edflow_project.runs()[0]
    served_file = edflow_project.path / "served.txt"
    outcome = edflow_project.run("-p", run, env=marker_env(edflow_project.path / "m", served=served_file))
    outcome.assert_success()
    assert "training already complete" in outcome.stderr
    assert served(served_file) == []
    assert_same_training(run, torch_reference(0)[0])
