"""Where the torch loop's few percent go: edflow with everything off next to iterators whose ``train()`` keeps only
some of ``Iterator.train``'s per-step work, interleaved with the raw loop (CPU time).

    python benchmarks/loop_ablation.py --steps 2000 --trials 10
    python benchmarks/loop_ablation.py --defaults --trials 20   # the defaults, one turned off at a time
    python benchmarks/loop_ablation.py --tf --trials 20         # the same split for edflow-tf's compiled step

Each ablated iterator runs inside the real ``edflow -t`` (same process set-up, model, optimizer, batches), so the
differences between the rows are the loop path alone. ``--defaults`` instead runs edflow with its defaults on
next to the same run with one default off (the bar, logging, TensorBoard) and with everything off. ``--tf`` splits
edflow-tf's compiled step the same way: the raw loop's own ``tf.function`` as ``train()``, the ``@step_function``
method called per batch, and ``run`` per batch; every TensorFlow variant is timed from the end of its first (tracing)
step, as in ``loop_overhead.py --tf``.
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import torch_workload
from common import arguments, interleave, machine_state, report, summarize, table


def _finish_epoch(iterator: Any, batches: Any) -> None:
    """What ``Iterator.train`` does after the epoch that the timer and the loss check rely on."""
    iterator._global_step = len(batches)
    iterator.runtime.after_epoch(iterator=iterator, epoch=0)


class RawCode(torch_workload.Iterator):
    """The raw loop's own code as ``train()``, on the model and optimizer edflow made."""

    def train(self, batches: Any) -> None:
        model, optimizer = self.model, self.optimizer
        for batch in batches.epoch(0, 0):
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(batch["x"]), batch["y"])
            loss.backward()
            optimizer.step()
        _finish_epoch(self, batches)


class RunOnly(torch_workload.Iterator):
    """Only ``self.run`` per batch: ``step_op``, its closures and ``TemplateIterator.run``."""

    copy_feeds = call_hooks = False

    def train(self, batches: Any) -> None:
        self._log_now = False
        fetches, run, make_feeds = self.step_ops(), self.run, self.make_feeds
        before_step, after_step = self.runtime.before_step, self.runtime.after_step
        step = 0
        for batch in batches.epoch(0, 0):
            feeds = make_feeds(batch) if self.copy_feeds else batch
            if self.call_hooks and before_step is not None:
                before_step(step, fetches, feeds, batch)
            results = run(fetches, feeds)
            step += 1
            if self.call_hooks and after_step is not None:
                after_step(step, fetches, feeds, batch, results)
        _finish_epoch(self, batches)


class RunAndCopy(RunOnly):
    """``run`` and the feeds copy."""

    copy_feeds = True


class RunAndHooks(RunOnly):
    """``run`` and the two per-step hook callers (``edflow_before_step``, ``edflow_after_step``)."""

    call_hooks = True


class RunCopyAndHooks(RunOnly):
    """``run``, the feeds copy and the hook callers: ``Iterator.train`` without its bookkeeping."""

    copy_feeds = call_hooks = True


#: ``--defaults``: edflow with its defaults, and with one of them turned off.
DEFAULTS_OFF = {
    "edflow, defaults on": {},
    "defaults, without the bar": {"progress": False},
    "defaults, without logging": {"log_freq": None},
    "defaults, without TensorBoard": {"tensorboard": False},
}

ABLATIONS = {
    "raw code as train()": "RawCode",
    "train(): run only": "RunOnly",
    "train(): run + feeds copy": "RunAndCopy",
    "train(): run + hooks": "RunAndHooks",
    "train(): run + feeds copy + hooks": "RunCopyAndHooks",
}


TF_ABLATIONS = {
    "raw code as train()": "TFRawCode",
    "train(): the step_function method only": "TFMethodOnly",
    "train(): run only": "TFRunOnly",
}


@functools.lru_cache(maxsize=1)  # one set of classes, however often edflow resolves their names
def _tf_ablations() -> dict:
    import tf_workload

    class TFRawCode(tf_workload._iterator_class()):
        """The raw loop's own ``tf.function`` as ``train()``, on the model and optimizer edflow-tf made."""

        def train(self, batches: Any) -> None:
            step = tf_workload.raw_step(self._raw_model, self.optimizer, self.loss_fn)
            self.timed_epoch(batches, lambda batch: step(batch["x"], batch["y"]))

        def timed_epoch(self, batches: Any, call: Any) -> None:
            after_step = self.runtime.after_step
            for index, batch in enumerate(batches.epoch(0, 0)):
                call(batch)
                if index == 0:  # the tracing step: the benchmark's timer restarts after it (tf_workload)
                    after_step(1, None, batch, batch, None)
            _finish_epoch(self, batches)

    class TFMethodOnly(TFRawCode):
        """The ``@step_function`` method per batch: no ``step_op``, no ``run``."""

        def train(self, batches: Any) -> None:
            self.timed_epoch(batches, lambda batch: self.train_step(batch["x"], batch["y"]))

    class TFRunOnly(TFRawCode):
        """Only ``self.run`` per batch: ``step_op``, its closures, edflow-tf's ``run`` and the compiled method."""

        def train(self, batches: Any) -> None:
            self._log_now = False
            fetches, run = self.step_ops(), self.run
            self.timed_epoch(batches, lambda batch: run(fetches, batch))

    return {"TFRawCode": TFRawCode, "TFMethodOnly": TFMethodOnly, "TFRunOnly": TFRunOnly}


def __getattr__(name: str) -> Any:
    if name in TF_ABLATIONS.values():  # resolved by edflow from the config; needs edflow_tf
        return _tf_ablations()[name]
    raise AttributeError(name)


def tf_variants(project: Any, num_steps: int) -> dict:
    import tf_workload
    from loop_overhead import collected

    tf_workload.setup(num_steps)
    off = tf_workload.edflow_configs(num_steps)["off"]
    project.config("off.yaml", **off)
    variants = {"raw tf.function loop": tf_workload.raw_loop,
                "edflow-tf, jit, everything off": tf_workload.edflow_variant(project, "off.yaml")}
    for label, name in TF_ABLATIONS.items():
        project.config(f"{name}.yaml", **{**off, "iterator": f"loop_ablation.{name}"})
        variants[label] = tf_workload.edflow_variant(project, f"{name}.yaml")
    return {name: collected(run) for name, run in variants.items()}


def torch_variants(project: Any, num_steps: int, defaults: bool) -> dict:
    from harness import edflow_variant

    torch.set_num_threads(1)
    torch_workload.BATCHES = torch_workload.make_batches(num_steps)
    torch_workload.INITIAL_STATE = torch_workload.initial_state()
    batches = [{"x": x, "y": y} for x, y in torch_workload.BATCHES]
    loss_of = lambda iterator: torch_workload.check_loss(iterator._raw_model)  # noqa: E731
    configs = torch_workload.edflow_configs(num_steps)
    off = configs["off"]
    project.config("off.yaml", **off)
    variants = {"raw loop": torch_workload.raw_loop,
                "edflow, everything off": edflow_variant(project, "off.yaml", batches, loss_of)}
    if defaults:
        for index, (label, changes) in enumerate(DEFAULTS_OFF.items()):
            project.config(f"defaults-{index}.yaml", **{**configs["on"], **changes})
            variants[label] = edflow_variant(project, f"defaults-{index}.yaml", batches, loss_of)
    else:
        for label, name in ABLATIONS.items():
            project.config(f"{name}.yaml", **{**off, "iterator": f"loop_ablation.{name}"})
            variants[label] = edflow_variant(project, f"{name}.yaml", batches, loss_of)
    return variants


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 2000, quick 30)")
    parser.add_argument("--defaults", action="store_true", help="the defaults, one turned off at a time")
    parser.add_argument("--tf", action="store_true", help="edflow-tf's compiled step instead of torch")
    args = parser.parse_args()
    num_steps = args.steps or (30 if args.quick else 2000)
    trials = args.trials or (1 if args.quick else 10)
    from edcore.testing import EdflowProject

    state = machine_state()
    with tempfile.TemporaryDirectory(prefix="edflow-bench-") as workdir:
        project = EdflowProject(Path(workdir))
        if args.tf:
            variants = tf_variants(project, num_steps)
        else:
            variants = torch_variants(project, num_steps, args.defaults)
        samples = interleave(variants, trials, warmup=0 if args.quick else 1)
    rows = summarize(samples, key="cpu_seconds", per="steps", scale=1e6)
    name, what = (("loop_ablation_tf", "Loop path ablation, TensorFlow, compiled step") if args.tf else
                  ("loop_defaults", "Defaults one at a time, PyTorch") if args.defaults else
                  ("loop_ablation", "Loop path ablation, PyTorch"))
    report(name, f"{what} ({num_steps} pre-built batches of 64, {trials} trials)",
           [("CPU time per step:", table(rows, "µs/step", columns=("ratio_of_minimums", "final_loss"),
                                         ratio_label="ratio to raw"))],
           {"cpu": rows, "num_steps": num_steps, "trials": trials}, args.out, state)


if __name__ == "__main__":
    main()
