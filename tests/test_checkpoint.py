"""The checkpoint protocol: what readers see, atomic publication, the latest pointer, retention."""
import json
import os

import pytest

from edcore.checkpoint import (
    MANIFEST,
    CheckpointStore,
    find_checkpoint,
    read_manifest,
    register_evaluator,
    steps_needed_by_evaluators,
)
from edcore.errors import CheckpointError


def writer(payload=b"weights"):
    def write(folder):
        (folder / "model.bin").write_bytes(payload)
        (folder / "sub").mkdir()
        (folder / "sub" / "state.json").write_text("{}")
    return write


def test_write_publishes_with_manifest_and_latest(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    checkpoint = store.write(7, writer(), {"reason": "periodic"})
    assert checkpoint.path.name == "0000000007"
    assert checkpoint.manifest["files"] == {"model.bin": 7, "sub/state.json": 2}
    assert checkpoint.manifest["reason"] == "periodic"
    assert (store.directory / "latest").read_text().strip() == "0000000007"
    assert [c.step for c in store.published()] == [7]
    assert not [p for p in store.directory.iterdir() if p.name.startswith(".")]


def test_published_is_sorted_by_step_not_by_name_or_time(tmp_path):
    store = CheckpointStore(tmp_path)
    for step in (100, 5, 20):
        store.write(step, writer())
    assert [c.step for c in store.published()] == [5, 20, 100]
    assert store.latest().step == 100


def test_rewriting_a_published_step_keeps_the_first(tmp_path):
    store = CheckpointStore(tmp_path)
    first = store.write(3, writer(b"first"))
    store.write(3, writer(b"second"))
    assert (first.path / "model.bin").read_bytes() == b"first"


@pytest.mark.parametrize("damage", ["no manifest", "bad json", "wrong format", "size mismatch", "missing file"])
def test_incomplete_checkpoints_do_not_exist_for_readers(tmp_path, damage):
    store = CheckpointStore(tmp_path)
    store.write(1, writer())
    broken = store.write(2, writer())
    manifest_path = broken.path / MANIFEST
    if damage == "no manifest":
        manifest_path.unlink()
    elif damage == "bad json":
        manifest_path.write_text("{not json")
    elif damage == "wrong format":
        manifest_path.write_text(json.dumps({"format": "other", "files": {}}))
    elif damage == "size mismatch":
        (broken.path / "model.bin").write_bytes(b"trunc")
    else:
        (broken.path / "model.bin").unlink()
    assert read_manifest(broken.path) is None
    assert [c.step for c in store.published()] == [1]


def test_a_failing_writer_leaves_nothing_behind(tmp_path):
    store = CheckpointStore(tmp_path)

    def failing(folder):
        (folder / "partial").write_text("x")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        store.write(4, failing)
    assert list(tmp_path.iterdir()) == []


def test_stale_temporary_folders_are_cleaned(tmp_path):
    (tmp_path / ".tmp-0000000009-123-abc").mkdir()
    (tmp_path / ".tmp-0000000009-123-abc" / "x").write_text("half")
    store = CheckpointStore(tmp_path)
    assert store.published() == []
    store.clean_stale()
    assert list(tmp_path.iterdir()) == []


def test_prune_keeps_newest_and_protected(tmp_path):
    store = CheckpointStore(tmp_path)
    for step in range(1, 6):
        store.write(step, writer())
    deleted = store.prune(2, keep=[1])
    assert deleted == [2, 3]
    assert [c.step for c in store.published()] == [1, 4, 5]
    assert (tmp_path / "latest").read_text().strip() == "0000000005"


def test_evaluators_protect_what_they_have_not_evaluated(tmp_path):
    store = CheckpointStore(tmp_path)
    for step in (10, 20, 30):
        store.write(step, writer())
    register_evaluator(tmp_path, "eval-a", evaluated=[10], finished=False)
    assert steps_needed_by_evaluators(tmp_path) == {20, 30}
    register_evaluator(tmp_path, "eval-a", evaluated=[10, 20, 30], finished=False)
    assert steps_needed_by_evaluators(tmp_path) == set()
    register_evaluator(tmp_path, "eval-b", evaluated=[], finished=True)
    assert steps_needed_by_evaluators(tmp_path) == set()


def test_find_checkpoint_accepts_folder_file_checkpoints_dir_and_run(tmp_path):
    run = tmp_path / "run"
    store = CheckpointStore(run / "train" / "checkpoints")
    store.write(1, writer())
    last = store.write(2, writer())
    assert find_checkpoint(last.path).step == 2
    assert find_checkpoint(last.path / "model.bin").step == 2
    assert find_checkpoint(store.directory).step == 2
    assert find_checkpoint(run).step == 2
    with pytest.raises(CheckpointError, match="does not exist"):
        find_checkpoint(tmp_path / "nothing")
    (tmp_path / "random.pt").write_text("x")
    with pytest.raises(CheckpointError, match="is not a checkpoint"):
        find_checkpoint(tmp_path / "random.pt")


def test_files_are_flushed_before_publication(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    CheckpointStore(tmp_path).write(1, writer())
    names = [os.path.basename(p) for p in synced]
    assert "model.bin" in names and "state.json" in names and MANIFEST in names
    assert names.index("model.bin") < names.index(MANIFEST)
