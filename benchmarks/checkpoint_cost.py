"""Workload 5: saving and loading a ~100 MB model with its Adam state, edflow's atomic save next to torch.save.

edflow's save is the real one of a training process: the core's Checkpointer with the installed plugins (the torch
backend's state file, the core's RNG states), a hidden temporary folder, every file and folder fsynced, the
manifest, the atomic rename and the ``latest`` pointer. The target compares it with ``torch.save`` plus one fsync
(what a careful hand-written loop does); a bare ``torch.save`` leaves the data in the page cache.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from common import arguments, interleave, machine_state, report, summarize, table


def make_iterator(width: int, depth: int):
    """An edflow-torch iterator holding a ``depth`` x ``width``² MLP and an Adam optimizer that has taken a step."""
    import torch

    import edflow_torch

    class Iterator(edflow_torch.TemplateIterator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    layers = [torch.nn.Linear(width, width) for _ in range(depth)]
    model = torch.nn.Sequential(*layers)
    iterator = Iterator({"torch": {"device": "cpu"}}, ".", model)
    model(torch.randn(2, width)).sum().backward()
    iterator.optimizer.step()  # the Adam state (two tensors per parameter) exists from the first step on
    return iterator


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    import torch

    from edcore.checkpoint import CheckpointStore, find_checkpoint
    from edcore.config import Config
    from edcore.plugins import make_plugin_manager
    from edcore.process import Checkpointer
    from edcore.project import ProjectManager

    torch.set_num_threads(1)
    width, depth = (256, 2) if args.quick else (2048, 6)  # 6 x 2048² float32 parameters: 100 MB
    trials = args.trials or (1 if args.quick else 5)
    state = machine_state()
    iterator = make_iterator(width, depth)
    model_mb = sum(p.numel() * p.element_size() for p in iterator.model.parameters()) / 1e6
    manager = make_plugin_manager()
    with tempfile.TemporaryDirectory(prefix="edflow-bench-ckpt-", dir=os.environ.get("EDFLOW_BENCH_TMP")) as tmp:
        root = Path(tmp)
        project = ProjectManager.create(root / "logs", "ckpt")
        manager.hook.edflow_project_init(project=project, config={}, mode="train")
        store = CheckpointStore(project.checkpoints)
        checkpointer = Checkpointer(store, manager, iterator, project, Config(data={"torch": {"device": "cpu"}}))
        plain = root / "plain"
        plain.mkdir()
        step = [0]

        def state_dict() -> dict:
            return {"model": iterator.model.state_dict(), "optimizer": iterator.optimizer.state_dict()}

        def torch_save(fsync: bool):
            def run() -> dict:
                path = plain / "checkpoint.pt"
                start = time.perf_counter()
                with open(path, "wb") as stream:
                    torch.save(state_dict(), stream)
                    if fsync:
                        stream.flush()
                        os.fsync(stream.fileno())
                seconds = time.perf_counter() - start
                size = path.stat().st_size
                path.unlink()
                return {"seconds": seconds, "size_mb": round(size / 1e6, 1)}

            return run

        def edflow_save() -> dict:
            step[0] += 1
            iterator.set_global_step(step[0])
            start = time.perf_counter()
            checkpoint = checkpointer.save("periodic")
            seconds = time.perf_counter() - start
            size = sum(f.stat().st_size for f in checkpoint.path.iterdir())
            store.remove(checkpoint)
            return {"seconds": seconds, "size_mb": round(size / 1e6, 1)}

        saves = interleave({"torch.save": torch_save(False), "torch.save + fsync": torch_save(True),
                            "edflow atomic save": edflow_save}, trials)
        save_rows = summarize(saves, baseline="torch.save + fsync")

        # Loading: both from a file in the page cache, into the live model and optimizer.
        torch.save(state_dict(), plain / "checkpoint.pt")
        iterator.set_global_step(10**6)
        checkpointer.save("periodic")

        def torch_load() -> dict:
            start = time.perf_counter()
            loaded = torch.load(plain / "checkpoint.pt", map_location="cpu", weights_only=True)
            iterator.model.load_state_dict(loaded["model"])
            iterator.optimizer.load_state_dict(loaded["optimizer"])
            return {"seconds": time.perf_counter() - start}

        def edflow_load() -> dict:
            start = time.perf_counter()
            checkpointer.load(find_checkpoint(str(project.checkpoints)))
            return {"seconds": time.perf_counter() - start}

        load_rows = summarize(interleave({"torch.load + load_state_dict": torch_load, "edflow restore": edflow_load},
                                         trials))
        shutil.rmtree(plain, ignore_errors=True)
    sections = [
        (f"Save (model {model_mb:.0f} MB of parameters plus Adam state; ratio to torch.save + fsync):",
         table(save_rows, "s", columns=("size_mb",), ratio_label="ratio")),
        ("Load (from the page cache; ratio to torch.load):", table(load_rows, "s", ratio_label="ratio")),
    ]
    report("checkpoint_cost", f"Checkpoint cost ({trials} trials)", sections,
           {"save": save_rows, "load": load_rows, "model_mb": model_mb, "trials": trials}, args.out, state)


if __name__ == "__main__":
    main()
