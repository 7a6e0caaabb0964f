"""Workload 7: what a logged step with images costs the training thread, with the media writer thread and without.

The real path of a training process: ``Runtime.log`` with the installed plugins (edflow-torch's ``edflow_to_numpy``,
the built-in ``core.media`` and ``core.tensorboard``) logs a batch of torch tensors; the images go to a PNG grid in
the run folder and to TensorBoard. "all work" times the call plus waiting for the writer thread (what a logged
step would cost if everything ran on the training thread); "training thread" times the call alone (what the loop
pays with the writer thread). The issue's rule: the writing moves off the training thread if it costs more than
1 ms per logged step.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from common import arguments, interleave, machine_state, report, summarize, table

#: (name, shape NCHW): MNIST-like digits, CIFAR-like samples of a GAN, larger autoencoder reconstructions.
BATCHES = (("64 x 1 x 28 x 28", (64, 1, 28, 28)), ("64 x 3 x 32 x 32", (64, 3, 32, 32)),
           ("64 x 3 x 128 x 128", (64, 3, 128, 128)))


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    import torch

    from edcore.plugins import make_plugin_manager
    from edcore.process import Runtime
    from edcore.project import ProjectManager

    torch.set_num_threads(1)
    trials = args.trials or (1 if args.quick else 9)
    batches = BATCHES[:1] if args.quick else BATCHES
    state = machine_state()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="edflow-bench-media-", dir=os.environ.get("EDFLOW_BENCH_TMP")) as tmp:
        config = {"tensorboard": True, "log_freq": 1}
        manager = make_plugin_manager()
        project = ProjectManager.create(Path(tmp) / "logs", "media")
        manager.hook.edflow_project_init(project=project, config=config, mode="train")
        runtime = Runtime(manager, "train", config)
        media = manager.get_plugin("core.media")
        step = [0]
        for name, shape in batches:
            images = torch.rand(shape) * 2 - 1

            def logged(wait: bool):
                def run() -> dict:
                    step[0] += 1
                    start = time.perf_counter()
                    runtime.log(step[0], {"scalars": {"loss": 0.5}, "images": {"samples": images}})
                    if wait:
                        media.writer.drain()
                    seconds = time.perf_counter() - start
                    media.writer.drain()
                    return {"seconds": seconds}

                return run

            samples = interleave({"all work (on the training thread)": logged(True),
                                  "training thread (writer thread on)": logged(False)}, trials)
            rows[name] = summarize(samples, scale=1000.0)
        for plugin in ("core.media", "core.tensorboard"):
            manager.get_plugin(plugin).edflow_after_training(iterator=None, status="finished")
        png = sorted((project.train / "images" / "samples").iterdir())[-1]
        png_kb = png.stat().st_size / 1e3
    sections = [(f"Batch {name} (float32 in [-1, 1], torch tensors; one grid of 64; ms per logged step; ratio to "
                 f"all work):", table(batch_rows, "ms", ratio_label="ratio")) for name, batch_rows in rows.items()]
    sections.append(("", f"The last grid's PNG: {png_kb:.1f} kB."))
    report("media_cost", f"Media logging cost ({trials} trials)", sections,
           {"batches": rows, "trials": trials}, args.out, state)


if __name__ == "__main__":
    main()
