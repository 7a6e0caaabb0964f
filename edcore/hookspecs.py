"""The hook specifications: the contract between edcore, its backends and third-party plugins.

Every hook is named ``edflow_<what>`` and grouped below by the phase of a run in which it is called. A plugin is a
module or an object with functions of these names decorated with :data:`hookimpl`; it may implement any subset
and may take any subset of a hook's arguments (by name).

Call order (pluggy's rules, documented here because plugins rely on it): implementations marked ``tryfirst`` run
first, then the others in reverse registration order, then those marked ``trylast``. Registration order is:
built-in plugins (all ``trylast`` where they provide defaults), then installed plugins found through the entry-point
group ``edflow`` (sorted by name), then the plugins named in the config key ``plugins:``. So an installed or config
plugin overrides a built-in default, and a config plugin runs before an installed one. ``wrapper=True``
implementations wrap all others. ``edflow plugins`` prints the order actually in effect.

Hooks marked *firstresult* stop at the first implementation that returns something other than ``None`` and return
that value. The others are called on every implementation and return the list of non-``None`` results.

Compatibility: hooks are added, never changed. A plugin that implements a hook this version does not know fails
at start-up (``check_pending``) with the plugin's name, before any step runs.
"""
from __future__ import annotations

import pluggy

#: The marker for hook specifications (this module).
hookspec = pluggy.HookspecMarker("edflow")
#: The marker plugins use for their hook implementations; exported as ``edcore.hookimpl``.
hookimpl = pluggy.HookimplMarker("edflow")


# ---------------------------------------------------------------------------------------------------------------
# Configuration: before any user code is imported and before the run folder exists


@hookspec
def edflow_config_schema():
    """Contribute JSON Schema fragments for the config sections this plugin owns.

    Called once per process, before the config is validated. Return a mapping from a top-level section name to the
    JSON Schema (draft 2020-12) of that section, e.g. ``{"torch": {"type": "object", "additionalProperties": false,
    "properties": {...}}}``, or ``None``. Sections with ``"additionalProperties": false`` get "did you mean"
    suggestions for typos. All fragments are combined with the core schema (``schemas/edflow.schema.json``); two
    plugins must not contribute the same section.
    """


@hookspec
def edflow_check_config(config, mode, where):
    """Check the settings that only this plugin's framework can judge (devices, precision, compilers).

    Called once per process for every training and evaluation config, after schema validation, after the
    defaults are filled in and the config's dotted names (dataset, model, iterator) are imported, and before the
    run folder is created or reopened; so a failure here writes nothing. ``config`` is the effective config (a
    dict), ``mode`` is ``"train"`` or ``"eval"``, and ``where(keypath)`` returns the place an error names for a
    key path such as ``"torch/device"`` (``train.yaml:9, key 'torch/device'``, or the command-line override).

    Return values are ignored. To reject the config raise :class:`edcore.ConfigError` with a message that starts
    with ``where(keypath)`` and says how to fix it: edflow prints it as one paragraph and exits with code 2. Check
    only configs your plugin acts on (e.g. whose iterator derives from your backend's TemplateIterator, see
    :func:`edcore.references.iterator_derives_from`) and import your framework only for those.
    """


# ---------------------------------------------------------------------------------------------------------------
# Process set-up: in each training or evaluation process, after the run folder exists


@hookspec(firstresult=True)
def edflow_distributed(config):
    """Describe the process group this process belongs to. *firstresult*

    Called once per process, first of all, with the validated config (a dict). Return an object with the attributes
    ``rank`` and ``world_size`` and the methods ``broadcast(obj)`` (returns rank 0's ``obj`` on every rank),
    ``barrier()`` and ``all_reduce_mean(scalars: dict) -> dict``, or ``None`` for a single process (the built-in
    default). Only rank 0 creates the run folder and writes logs, metrics and checkpoints.
    """


@hookspec
def edflow_project_init(project, config, mode):
    """The run folder has been created (new run) or reopened (``-p``).

    ``project`` is the :class:`edcore.project.ProjectManager` (``project.root``, ``project.train``,
    ``project.checkpoints``, ``project.eval``, ``project.configs``, ``project.code``); ``config`` is the effective
    config (a dict); ``mode`` is ``"train"`` or ``"eval"``. Called once per process on rank 0, before the dataset is
    made. Return values are ignored.
    """


@hookspec
def edflow_seed(seed, config):
    """Seed the random number generators this plugin is responsible for.

    Called once per process, before the dataset, model and iterator are made, with the integer ``seed`` (the
    config's ``seed``, drawn at random and recorded in the effective config when absent; offset by the rank in
    distributed runs). The core seeds Python's ``random`` and NumPy; a backend seeds its framework.
    """


# ---------------------------------------------------------------------------------------------------------------
# Providers: what the training process is made of (the seed's order: dataset, batches, model, iterator)


@hookspec(firstresult=True)
def edflow_dataset(config, mode):
    """Make the dataset. *firstresult*

    ``mode`` is ``"train"`` or ``"eval"``. Return an object with ``__len__`` and ``__getitem__(index)`` returning a
    dict (of numpy arrays, numbers, strings or tensors), or ``None`` to leave it to the next plugin. The built-in
    implementation (``trylast``) resolves ``config["dataset"]`` and calls it with the config.
    """


@hookspec(firstresult=True)
def edflow_batches(dataset, config, mode):
    """Make the batches of a dataset. *firstresult*

    Return an object with ``__len__()`` (batches per epoch), ``epoch(epoch, start=0)`` returning an iterator over
    the batches of that epoch beginning at batch ``start``, and optionally ``close()``. The order of an epoch must be
    a function of ``(config["seed"], epoch)`` alone, so that a resumed run continues at the exact next batch without
    loading the skipped ones (see ``edcore.batching.epoch_indices``). Shuffling is on in training unless
    ``shuffle: false`` and always off in evaluation. Before loading the examples of an epoch, call the dataset's
    ``set_epoch(epoch)`` when it has one, in every process that loads examples (``edcore.batching.announce_epoch``;
    ``edcore.data.RandomlyAugmented`` draws from it). Backends return their own (DataLoader, tf.data); the built-in
    fallback (``trylast``) stacks numpy arrays.
    """


@hookspec(firstresult=True)
def edflow_model(config):
    """Make the model. *firstresult*

    The built-in implementation (``trylast``) resolves ``config["model"]`` and calls it with the config, or returns a
    :class:`edcore.DummyModel` that only holds the config when there is no ``model`` key.
    """


@hookspec(firstresult=True)
def edflow_iterator(config, root, model, project):
    """Make the iterator. *firstresult*

    ``root`` is the folder of this process (``project.train`` in training, the evaluation folder in evaluation).
    The built-in implementation (``trylast``) resolves ``config["iterator"]`` and calls ``Iterator(config, root,
    model)``; the result must be an :class:`edcore.Iterator`.
    """


# ---------------------------------------------------------------------------------------------------------------
# Lifecycle around the loop


@hookspec
def edflow_before_training(iterator):
    """Called once before the first training step, after a checkpoint (if any) has been restored.

    ``iterator.get_global_step()`` is the step the loop starts from.
    """


@hookspec
def edflow_after_training(iterator, status):
    """Called once when the training loop has ended, after the final checkpoint is written.

    ``status`` is ``"finished"``, ``"interrupted"`` or ``"failed"``. Called on rank 0 and the other ranks alike.
    """


@hookspec
def edflow_before_epoch(iterator, epoch):
    """Called at the start of every epoch (training) or pass (evaluation); ``epoch`` counts from 0."""


@hookspec
def edflow_after_epoch(iterator, epoch):
    """Called when an epoch (training) or pass (evaluation) has ended, before the end-of-epoch checkpoint."""


@hookspec
def edflow_before_evaluation(iterator, global_step, eval_dir):
    """Called in an evaluation process before one pass over the evaluation data for the checkpoint of
    ``global_step``; ``eval_dir`` is the folder that pass writes into (``eval/<timestamp>_<name>/<global_step>/``).
    """


@hookspec
def edflow_after_evaluation(iterator, global_step, eval_dir, metrics):
    """Called after one evaluation pass and its callbacks; ``metrics`` is the dict of scalars they returned."""


# ---------------------------------------------------------------------------------------------------------------
# Per step. Bound once before the loop; a hook nobody implements is not called at all.


@hookspec
def edflow_before_step(global_step, fetches, feeds, batch):
    """Called before every step.

    ``global_step`` is the number of steps completed so far (the step about to run). ``fetches`` is the nested dict
    of callables the step will run, ``feeds`` a copy of ``batch`` (the dict from the batches) that the step
    receives: plugins may add to or replace entries of ``fetches`` and ``feeds`` (e.g. turn numpy arrays into
    tensors on a device) but must not mutate ``batch``. Return values are ignored.
    """


@hookspec
def edflow_after_step(global_step, fetches, feeds, batch, results):
    """Called after every step, once the global step has been incremented.

    ``global_step`` is the number of steps completed, including this one, so a plugin sees ``n`` in
    ``before_step`` and ``n + 1`` in ``after_step`` for the same step. ``results`` has the shape of ``fetches``
    with each callable replaced by what it returned (for template iterators: ``train_op``, and on logged steps
    ``log_op``). Do no work here that forces a device sync on steps that are not logged. In evaluation processes
    the global step is the checkpoint's and does not change.
    """


@hookspec
def edflow_log(global_step, logs, mode):
    """Record what the log op returned; called every ``log_freq`` steps only.

    ``logs`` is what the log op returned, e.g. ``{"scalars": {...}, "images": {...}, "histograms": {...}}``, with
    ``logs["scalars"]`` flattened (nested names joined with ``/``) and turned into Python floats, and
    ``logs["images"]`` and ``logs["histograms"]`` flattened the same way with their values turned into numpy arrays
    (:func:`edflow_to_numpy`), by the core, once, on logged steps only; other entries are passed as the op returned
    them (they may be framework tensors). ``global_step`` is the number of completed steps, as in
    ``edflow_after_step``. ``mode`` is ``"train"`` or ``"eval"``. In evaluation processes it is called with the
    checkpoint's global step, for the log op of the first batch of each pass and once more with the metrics of the
    eval callbacks. The built-in loggers write the scalars to the console, ``train/metrics.jsonl`` and TensorBoard,
    and the images and histograms to the run folder and TensorBoard (the evaluation writes its metrics to its own
    ``metrics.jsonl`` and TensorBoard files). In distributed runs the core first averages the scalars across ranks
    (``all_reduce_mean`` of :func:`edflow_distributed`) and then calls this hook on rank 0 only.
    """


@hookspec(firstresult=True)
def edflow_to_numpy(value):
    """``value`` (a logged image or histogram) as a numpy array, or ``None`` when it is not this plugin's kind of
    tensor. *firstresult*

    Called on logged steps only, on the training thread, before :func:`edflow_log`. The backends convert their
    tensors (detached, on the host, as a copy the next step cannot change); the built-in fallback (``trylast``) is
    ``numpy.asarray``.
    """


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints: the core owns the protocol (temporary folder, fsync, atomic rename, manifest, ``latest``)


@hookspec
def edflow_save_checkpoint(iterator, path, global_step):
    """Write this plugin's state into the checkpoint folder ``path`` (a temporary folder, published atomically by
    the core after every implementation has returned).

    Each plugin writes its own files (use a file name with the plugin's name). The core writes the global step,
    the data position and the Python/NumPy RNG states, and calls ``iterator.save(path)``. Called on rank 0 only.
    """


@hookspec
def edflow_restore_checkpoint(iterator, path, global_step):
    """Read this plugin's state back from the published checkpoint folder ``path`` (written at ``global_step``).

    Called after ``iterator.restore(path)``. Raise to report an unreadable checkpoint: the core then falls back to
    the previous one (with a warning) when it chose the checkpoint itself, or stops when the user named it.
    """


@hookspec
def edflow_checkpoint_published(checkpoint, project):
    """A checkpoint has been published; ``checkpoint.step``, ``checkpoint.path`` and ``checkpoint.manifest``.

    Called on rank 0 after the ``latest`` pointer has been updated. Retention and evaluators build on this.
    """


# ---------------------------------------------------------------------------------------------------------------
# Failures


@hookspec
def edflow_exception(iterator, exception):
    """User code or a plugin raised ``exception`` in the training process.

    In the loop: called after the core has written a checkpoint of the last completed step (when one has completed)
    and before the error is reported; ``edflow_after_training`` with ``status="failed"`` follows. While setting up
    (dataset, batches, model, iterator, restoring a checkpoint, after ``edflow_project_init``): ``iterator`` is the
    iterator, or ``None`` when the failure came before it existed, and no ``edflow_after_training`` follows.
    """


@hookspec
def edflow_interrupt(iterator, signum):
    """The process received SIGINT, SIGTERM or SIGUSR1 (``signum``); the current step has finished and a
    checkpoint has been written. The process exits with code 128 + ``signum`` after this hook."""
