"""Datasets that compose: examples are dicts, ``labels`` are arrays aligned with the examples (numpy only).

EDFlow's ``edflow.data`` ideas: a base class, sub-sets and splits, concatenation of datasets and of examples,
functions applied per example, random augmentation that is reproduced exactly after a resume, and MetaDatasets (a
folder with ``meta.yaml`` and memory-mapped ``.npy`` labels), which the outputs of an evaluation read as too.

Any of them can be named in a config. edflow creates every dataset as ``Name(config)``; called that way, a class
of this module takes its arguments from the config section named after it, where ``dataset`` (or the list
``datasets``) is again a dotted name created as ``Name(config)`` and ``function`` is the dotted name of a function::

    dataset: edcore.data.RandomlyAugmented
    RandomlyAugmented: {dataset: edcore.data.SubDataset, function: mypkg.data.jitter}
    SubDataset: {dataset: mypkg.data.Images, indices: {stop: 1000}}

This module never imports a framework: the core's batches and every backend's data workers use it.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import re
from collections import abc
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

from edcore.errors import ConfigError, DataError

NO_LABELS: Mapping[str, np.ndarray] = MappingProxyType({})


def dataset_length(dataset: Any) -> int:
    """``len(dataset)``, with an error that says what a dataset needs when it has none."""
    try:
        return len(dataset)
    except TypeError as err:
        raise DataError(f"{type(dataset).__name__} is not a dataset: datasets need __len__ and __getitem__.") from err


def describe(dataset: Any) -> str:
    """``SubDataset (30 examples)``: how errors name a dataset."""
    if isinstance(dataset, Dataset):
        return repr(dataset)
    return f"{type(dataset).__name__} ({dataset_length(dataset)} examples)"


def labels_of(dataset: Any) -> Mapping[str, Any]:
    """The labels of any dataset, checked to have one entry per example. A dataset without a dict ``labels`` has
    none (a ``labels`` array of class ids, as many datasets hold, is the dataset's own business)."""
    labels = getattr(dataset, "labels", None)
    if not isinstance(labels, Mapping):
        return NO_LABELS
    length = dataset_length(dataset)
    for key, values in labels.items():
        if np.ndim(values) == 0 or len(values) != length:
            found = "a single value" if np.ndim(values) == 0 else f"{len(values)} entries"
            raise DataError(f"{describe(dataset)}: label '{key}' has {found}; labels need one entry per example.")
    return labels


def _row(values: Any, index: int) -> Any:
    """Entry ``index`` of a label; an array row is copied, so a memory-mapped label never reaches the batches."""
    row = values[index]
    return np.array(row) if isinstance(row, np.ndarray) else row


class Dataset:
    """Base class: define ``__len__`` and ``get_example(index)``, which returns a dict; optionally set ``labels``,
    a dict of arrays (first axis = example). ``dataset[i]`` is ``get_example(i)`` with the labels of example ``i``
    merged in (the example's own keys win), for ``-len(dataset) <= i < len(dataset)``."""

    labels: Mapping[str, Any] = NO_LABELS
    datasets: tuple = ()  # the datasets this one is made of: set_epoch reaches them
    epoch = 0  # the epoch whose examples are being loaded; set by the batches through set_epoch

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def get_example(self, index: int) -> Mapping:
        raise NotImplementedError(f"{type(self).__name__} must define get_example(index)")

    def __getitem__(self, index: int) -> dict:
        position = self.position(index)
        example = self.get_example(position)
        if type(example) is not dict and not isinstance(example, abc.Mapping):  # per example: type() is the fast test
            raise DataError(f"{type(self).__name__}.get_example({position}) returned {type(example).__name__}; "
                            f"examples are dicts like {{'image': array, 'label': 3}}.")
        labels = self.labels
        if type(labels) is not dict and not isinstance(labels, abc.Mapping):
            raise DataError(f"{type(self).__name__}.labels is a {type(labels).__name__}; labels are a dict of arrays "
                            f"with one entry per example, like {{'class': array}}.")
        if not labels:
            return dict(example)
        merged = {key: _row(values, position) for key, values in labels.items()}
        merged.update(example)
        return merged

    def position(self, index: Any) -> int:
        """``index`` as a position ``0 <= i < len``; an IndexError names the dataset and the valid range."""
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"{describe(self)}: index {index!r} is not an integer; datasets are indexed with integers.")
        length = len(self)
        if not -length <= index < length:
            valid = f"0 to {length - 1} (or {-length} to -1)" if length else "none, it is empty"
            raise IndexError(f"{describe(self)}: index {index} is out of range; valid indices are {valid}.")
        return int(index) + length if index < 0 else int(index)

    def set_epoch(self, epoch: int) -> None:
        """Called by the batches before they load the examples of an epoch, in every process that loads examples
        (DataLoader workers included); passed on to the datasets this one is made of."""
        self.epoch = int(epoch)
        for dataset in self.datasets:
            set_epoch = getattr(dataset, "set_epoch", None)
            if callable(set_epoch):
                set_epoch(epoch)

    def __repr__(self) -> str:
        return f"{type(self).__name__} ({len(self)} examples)"


# ---------------------------------------------------------------------------------------------------------------
# Creating datasets from a config

_SECTIONS_IN_PROGRESS: set[str] = set()  # guards against a section that names a dataset made from itself


def configurable(factory: Callable | None = None, *, run_seed: bool = False, required: tuple = ()) -> Any:
    """Let edflow create a class of this module (or call a function) as ``Name(config)``: called with the config
    as its one argument, it takes its arguments from the config section named after its class (or function).

    ``run_seed``: a missing ``seed`` is the run's ``seed``. ``required``: arguments the config must give even
    though Python has a default for them.
    """
    if factory is None:
        return functools.partial(configurable, run_seed=run_seed, required=required)
    spec = (inspect.signature(factory), run_seed, required)
    method = next(iter(spec[0].parameters), None) == "self"

    @functools.wraps(factory)
    def create(*args: Any, **kwargs: Any) -> Any:
        owner, rest = (args[:1], args[1:]) if method else ((), args)
        if len(rest) != 1 or kwargs or not isinstance(rest[0], Mapping):
            return factory(*args, **kwargs)
        name = type(owner[0]).__name__ if method else factory.__name__
        with _section(name):
            positional, keywords = config_arguments(name, spec, rest[0])
        return factory(*owner, *positional, **keywords)

    create.config_spec = spec  # type: ignore[attr-defined]
    # Both forms bind: Name(config) and the Python arguments (checked by the real signature when called).
    create.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*([inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)] if method else []),
         inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
         inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)])
    return create


def check_config(factory: Any, config: Mapping, where: Callable[[str], str]) -> None:
    """Check, creating nothing, that the config sections a configurable dataset reads (and those of the datasets
    they name) exist and hold known arguments, and that their dotted names import. ``where(keypath)`` names the
    place (``train.yaml:4, key 'SubDataset/indices'``); edflow calls this before the run folder exists."""
    spec = _config_spec(factory)
    if spec is not None:
        with _section(factory.__name__, where):
            config_arguments(factory.__name__, spec, config, where, build=False)


def config_arguments(name: str, spec: tuple, config: Mapping, where: Callable[[str], str] | None = None,
                     build: bool = True) -> tuple[list, dict]:
    """The arguments in section ``name`` of ``config``: ``dataset``/``datasets`` created from their dotted names
    (``build=False``: only checked), ``function`` imported, the rest as written."""
    from edcore.references import resolve

    where = where or _config_key
    signature, run_seed, required = spec
    parameters = [p for p in signature.parameters.values() if p.name != "self"]
    names = ", ".join(p.name for p in parameters)
    section = config.get(name)
    if not isinstance(section, Mapping):
        found = "there is none" if section is None else f"found {section!r}"
        raise ConfigError(f"{where(name)}: {name} is created from the config, so the config needs a section "
                          f"'{name}' with its arguments ({names}), like {name}: {{dataset: mypkg.data.Images}}; "
                          f"{found}.")
    for key in section:
        if key not in signature.parameters or key == "self":
            raise ConfigError(f"{where(f'{name}/{key}')}: {name} takes no argument '{key}'; its arguments are "
                              f"{names}.")
    positional: list = []
    keywords: dict = {}
    for parameter in parameters:
        keypath = f"{name}/{parameter.name}"
        if parameter.name not in section:
            if parameter.name == "seed" and run_seed:
                keywords["seed"] = int(config.get("seed") or 0)
            elif parameter.name in required or (parameter.default is parameter.empty
                                                and parameter.kind is not parameter.VAR_POSITIONAL):
                raise ConfigError(f"{where(name)}: the section '{name}' has no '{parameter.name}', which {name} "
                                  f"needs; its arguments are {names}.")
            continue
        value = section[parameter.name]
        if parameter.name == "dataset":
            value = dataset_from_name(value, config, keypath, where, build)
        elif parameter.name == "datasets":
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{where(keypath)}: expected a list of dotted dataset names, found {value!r}.")
            value = [dataset_from_name(item, config, f"{keypath}/{i}", where, build) for i, item in enumerate(value)]
        elif parameter.name == "function":
            value = resolve(value, where=where(keypath))
        if parameter.kind is parameter.VAR_POSITIONAL:
            positional.extend(value)
        else:
            keywords[parameter.name] = value
    return positional, keywords


def dataset_from_name(name: Any, config: Mapping, keypath: str, where: Callable[[str], str] | None = None,
                      build: bool = True) -> Any:
    """The dataset a config names at ``keypath``: ``Name(config)``, as edflow creates the dataset of ``dataset:``
    (``build=False``: only checked)."""
    from edcore.references import resolve

    where = where or _config_key
    if not isinstance(name, str):
        raise ConfigError(f"{where(keypath)}: expected the dotted name of a dataset (created as Name(config)), like "
                          f"mypkg.data.Images; found {name!r}.")
    factory = resolve(name, where=where(keypath))
    if build:
        return factory(config)
    check_config(factory, config, where)
    return None


def _config_spec(factory: Any) -> tuple | None:
    """What :func:`configurable` recorded about a class or function, or None."""
    target = factory.__init__ if isinstance(factory, type) else factory
    return getattr(target, "config_spec", None)


def _config_key(keypath: str) -> str:
    return f"config key '{keypath}'"


@contextlib.contextmanager
def _section(name: str, where: Callable[[str], str] | None = None) -> Any:
    if name in _SECTIONS_IN_PROGRESS:
        raise ConfigError(f"{(where or _config_key)(name)}: the section '{name}' names, directly or through other "
                          f"sections, a dataset made from the section '{name}' again; each class is used once per "
                          f"config. To use it twice, compose the datasets in a function of your own and name that.")
    _SECTIONS_IN_PROGRESS.add(name)
    try:
        yield
    finally:
        _SECTIONS_IN_PROGRESS.discard(name)


# ---------------------------------------------------------------------------------------------------------------
# Composition


class SubDataset(Dataset):
    """The examples ``indices`` of ``dataset``, in that order: a list or array of indices, a ``range`` or a
    ``slice`` (in a config also ``{start: 0, stop: 100, step: 1}``). Labels are taken alike."""

    @configurable
    def __init__(self, dataset: Any, indices: Any) -> None:
        length = dataset_length(dataset)
        if isinstance(indices, Mapping):
            unknown = set(indices) - {"start", "stop", "step"}
            if unknown:
                raise DataError(f"SubDataset: indices {dict(indices)} has the keys {sorted(unknown)}; a range of "
                                f"indices has only start, stop and step.")
            indices = slice(indices.get("start"), indices.get("stop"), indices.get("step"))
        if isinstance(indices, slice):
            indices = range(*indices.indices(length))
        array = np.asarray(indices)
        if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
            raise DataError(f"SubDataset: indices must be a list of integers, a range or a slice; found "
                            f"{type(indices).__name__} of {array.dtype} with shape {array.shape}.")
        array = array.astype(np.int64)
        outside = (array < -length) | (array >= length)
        if outside.any():
            raise IndexError(f"SubDataset of {describe(dataset)}: index {array[outside][0]} is out of range; valid "
                             f"indices are 0 to {length - 1} (or {-length} to -1).")
        self.indices = np.where(array < 0, array + length, array)
        self.dataset = dataset
        self.datasets = (dataset,)
        self.labels = {key: np.asarray(values)[self.indices] for key, values in labels_of(dataset).items()}

    def __len__(self) -> int:
        return len(self.indices)

    def get_example(self, index: int) -> Mapping:
        return self.dataset[int(self.indices[index])]


class ConcatenatedDataset(Dataset):
    """The examples of ``datasets`` one after the other; the labels that all of them have are concatenated."""

    @configurable
    def __init__(self, *datasets: Any) -> None:
        if not datasets:
            raise DataError("ConcatenatedDataset needs at least one dataset.")
        self.datasets = datasets
        self.offsets = np.cumsum([0] + [dataset_length(dataset) for dataset in datasets])
        labels = [labels_of(dataset) for dataset in datasets]
        self.labels = {}
        for key in [key for key in labels[0] if all(key in other for other in labels[1:])]:
            try:
                self.labels[key] = np.concatenate([np.asarray(part[key]) for part in labels])
            except ValueError as err:
                shapes = ", ".join(str(np.shape(part[key])) for part in labels)
                raise DataError(f"ConcatenatedDataset: label '{key}' has the shapes {shapes} in the datasets, which "
                                f"cannot be concatenated: {err}") from err

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def get_example(self, index: int) -> Mapping:
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.datasets[part][index - int(self.offsets[part])]


class ExampleConcatenatedDataset(Dataset):
    """Datasets of equal length side by side: example ``i`` holds the keys of example ``i`` of every dataset. A key
    may be in several datasets only as a label with equal values (made from a common dataset); other keys must
    differ (rename them with a :class:`ProcessedDataset`)."""

    @configurable
    def __init__(self, *datasets: Any) -> None:
        if not datasets:
            raise DataError("ExampleConcatenatedDataset needs at least one dataset.")
        lengths = [dataset_length(dataset) for dataset in datasets]
        if len(set(lengths)) > 1:
            raise DataError(f"ExampleConcatenatedDataset: the datasets have {lengths} examples; to put their "
                            f"examples side by side they need the same number.")
        self.datasets = datasets
        self.labels = {}
        self.shared = set()  # labels of several datasets, equal in all of them
        owner: dict = {}
        for number, labels in enumerate(labels_of(dataset) for dataset in datasets):
            for key, values in labels.items():
                if key in owner:
                    if not np.array_equal(self.labels[key], values):
                        self._collision(key, "the labels", owner[key], number)
                    self.shared.add(key)
                owner.setdefault(key, number)
                self.labels[key] = values

    def __len__(self) -> int:
        return dataset_length(self.datasets[0])

    def get_example(self, index: int) -> Mapping:
        example: dict = {}
        owner: dict = {}
        for number, dataset in enumerate(self.datasets):
            part = dataset[index]
            for key in part:
                if key in owner and key not in self.shared:
                    self._collision(key, f"example {index}", owner[key], number)
                owner.setdefault(key, number)
            example.update(part)
        return example

    def _collision(self, key: str, what: str, first: int, second: int) -> None:
        raise DataError(f"ExampleConcatenatedDataset: the key '{key}' is in {what} of dataset {first} "
                        f"({describe(self.datasets[first])}) and of dataset {second} "
                        f"({describe(self.datasets[second])}); keys must differ, unless they are labels with equal "
                        f"values (rename them with a ProcessedDataset).")


class ProcessedDataset(Dataset):
    """``function(example)`` applied to every example of ``dataset``: the dict it returns is merged into the
    example (``update=False``: replaces it; the labels stay)."""

    @configurable
    def __init__(self, dataset: Any, function: Callable, update: bool = True) -> None:
        if not callable(function):
            raise DataError(f"{type(self).__name__}: function must be callable, found {function!r}.")
        self.dataset = dataset
        self.datasets = (dataset,)
        self.function = function
        self.update = update
        self.labels = labels_of(dataset)

    def __len__(self) -> int:
        return dataset_length(self.dataset)

    def get_example(self, index: int) -> Mapping:
        example = self.dataset[index]
        result = self.process(dict(example), index)
        if type(result) is not dict and not isinstance(result, abc.Mapping):
            name = getattr(self.function, "__qualname__", repr(self.function))
            raise DataError(f"{type(self).__name__}: {name} returned {type(result).__name__} for example {index}; "
                            f"it must return a dict, which is merged into the example.")
        return {**example, **result} if self.update else result

    def process(self, example: dict, index: int) -> Mapping:
        return self.function(example)


class RandomlyAugmented(ProcessedDataset):
    """``function(example, rng)`` applied to every example of ``dataset``; ``rng`` is a ``numpy.random.Generator``
    seeded by ``(seed, epoch, index)``, so an example is augmented the same way in the same epoch whatever process
    loads it, how many DataLoader workers there are and whether the run was resumed, and differently every epoch.
    Created from a config, ``seed`` defaults to the run's ``seed``."""

    @configurable(run_seed=True)
    def __init__(self, dataset: Any, function: Callable, seed: int = 0) -> None:
        super().__init__(dataset, function)
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise DataError(f"RandomlyAugmented: seed must be an integer >= 0, found {seed!r}.")
        self.seed = int(seed)

    def rng(self, index: int) -> np.random.Generator:
        """The random numbers of example ``index`` in the current epoch."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index]))

    def process(self, example: dict, index: int) -> Mapping:
        return self.function(example, self.rng(index))


@configurable(required=("part",))
def split(dataset: Any, fractions: Any, seed: int = 0, part: int | None = None) -> Any:
    """``dataset`` cut at random into parts of the given ``fractions`` (positive, summing to 1), the same for the
    same ``seed``; each part is a :class:`SubDataset` in the dataset's order. Returns the list of parts, or part
    number ``part`` (what a config names: ``split: {dataset: ..., fractions: [0.8, 0.2], part: 0}``)."""
    shares = np.asarray(fractions, dtype=float) if _numbers(fractions) else None
    if shares is None or shares.ndim != 1 or not len(shares) or (shares <= 0).any() \
            or not math.isclose(shares.sum(), 1.0, abs_tol=1e-9):
        raise DataError(f"split: fractions must be positive numbers that sum to 1, like [0.8, 0.2]; found "
                        f"{fractions!r}.")
    length = dataset_length(dataset)
    order = np.random.default_rng(seed).permutation(length)
    bounds = np.round(np.cumsum(shares)[:-1] * length).astype(int)
    parts = [SubDataset(dataset, np.sort(chunk)) for chunk in np.split(order, bounds)]
    if part is None:
        return parts
    if isinstance(part, bool) or not isinstance(part, (int, np.integer)) or not 0 <= part < len(parts):
        raise DataError(f"split: part must be one of 0 to {len(parts) - 1} (one per fraction), found {part!r}.")
    return parts[part]


def _numbers(values: Any) -> bool:
    try:
        return np.asarray(values).dtype.kind in "iuf"
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------------------------
# MetaDataset: a folder with meta.yaml and memory-mapped labels

META = "meta.yaml"
LABELS_FOLDER = "labels"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def load_image(path: Any, folder: Path) -> np.ndarray:
    """Loader ``image``: the image file at ``path`` (relative to the dataset's folder) as a uint8 array, HxW or
    HxWxC, read with Pillow."""
    from PIL import Image

    with Image.open(folder / str(path)) as image:
        return np.array(image)


def load_npy(path: Any, folder: Path) -> np.ndarray:
    """Loader ``npy``: the ``.npy`` file at ``path`` (relative to the dataset's folder), read without pickle."""
    return np.load(folder / str(path), allow_pickle=False)


#: The loaders a ``meta.yaml`` can name; ``MetaDataset(folder, loaders={name: function})`` adds more.
LOADERS: Mapping[str, Callable[[Any, Path], Any]] = MappingProxyType({"image": load_image, "npy": load_npy})


class MetaDataset(Dataset):
    """A dataset stored in a folder: ``meta.yaml`` names the labels, ``.npy`` arrays opened memory-mapped (nothing
    is read until used), and a loader per label key that holds paths (``image``, ``npy``), whose files are read
    when an example is. The folder of an evaluation pass (``eval/<timestamp>_<name>/<global_step>/``) reads the
    same way: its stacked outputs are labels, its per-example outputs are loaded like ``npy`` paths.

    ``meta.yaml``::

        description: 1797 digits and their classes
        num_examples: 1797
        labels: {image: labels/image.npy, class: labels/class.npy}   # files relative to the folder
        loaders: {image: image}                                       # label key -> loader

    ``labels`` holds the arrays (paths for loaded keys); ``dataset[i]`` has every label of ``i`` and, for each
    loaded key, the loaded value in place of its path. ``loaders`` adds loaders ``{name: function(value, folder)}``
    (functions or dotted names).
    """

    @configurable
    def __init__(self, folder: Any, loaders: Mapping | None = None) -> None:
        from edcore.outputs import INDEX

        self.folder = Path(folder)
        known = dict(LOADERS)
        for name, loader in (loaders or {}).items():
            known[name] = _resolve(loader, f"MetaDataset loader '{name}'") if isinstance(loader, str) else loader
        if (self.folder / META).is_file():
            self._read_meta(known)
        elif (self.folder / INDEX).is_file():
            self._read_outputs()
        else:
            raise DataError(f"'{self.folder}' is not a MetaDataset: it has no {META} (nor the {INDEX} of an "
                            f"evaluation pass).")

    def _read_meta(self, known: Mapping[str, Callable]) -> None:
        import yaml

        path = self.source = self.folder / META
        try:
            meta = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise DataError(f"'{path}' cannot be read: {err}") from err
        if not isinstance(meta, Mapping) or not isinstance(meta.get("labels", {}), Mapping):
            raise DataError(f"'{path}' must be a mapping with 'labels: {{key: file.npy}}', like "
                            f"labels: {{class: labels/class.npy}}.")
        self.meta = dict(meta)
        self.description = str(meta.get("description") or "")
        self.labels = {}
        for key, file in meta.get("labels", {}).items():
            self.labels[key] = _open_label(self.folder / str(file), f"{path}, key 'labels/{key}'")
        self.num_examples = meta.get("num_examples")
        if self.num_examples is None:
            self.num_examples = len(next(iter(self.labels.values()))) if self.labels else 0
        if isinstance(self.num_examples, bool) or not isinstance(self.num_examples, int) or self.num_examples < 0:
            raise DataError(f"{path}, key 'num_examples': expected an integer >= 0, found {self.num_examples!r}.")
        for key, values in self.labels.items():
            if values.ndim == 0 or len(values) != self.num_examples:
                found = "a single value" if values.ndim == 0 else f"{len(values)} entries"
                raise DataError(f"{path}, key 'labels/{key}': '{meta['labels'][key]}' holds {found}, but the "
                                f"dataset has {self.num_examples} examples; every label needs one entry per example.")
        loader_names = meta.get("loaders") or {}
        if not isinstance(loader_names, Mapping):
            raise DataError(f"{path}, key 'loaders': expected a mapping of label key to loader, like "
                            f"loaders: {{image: image}}; found {loader_names!r}.")
        self.loaders = {}
        for key, name in loader_names.items():
            if key not in self.labels:
                raise DataError(f"{path}, key 'loaders/{key}': there is no label '{key}' to load; the labels are "
                                f"{', '.join(self.labels) or 'none'}.")
            if name not in known:
                raise DataError(f"{path}, key 'loaders/{key}': unknown loader '{name}'; the loaders are "
                                f"{', '.join(known)} (MetaDataset(folder, loaders={{name: function}}) adds more).")
            self.loaders[key] = (name, known[name])

    def _read_outputs(self) -> None:
        from edcore.outputs import EXAMPLE_DIGITS, INDEX, load_outputs

        outputs = load_outputs(self.folder)
        self.source = self.folder / INDEX
        self.meta = outputs.index
        self.description = (f"outputs of evaluation '{outputs.index.get('evaluation', '?')}' at global step "
                            f"{outputs.global_step}")
        self.num_examples = outputs.num_examples
        self.labels = {}
        self.loaders = {}
        for key, entry in outputs.index["keys"].items():
            if entry["layout"] == "stacked":
                self.labels[key] = outputs[key]  # memory-mapped
            else:  # one file per example: a label of paths, as a meta.yaml with the npy loader would have
                self.labels[key] = np.array([f"{entry['folder']}/{i:0{EXAMPLE_DIGITS}d}.npy"
                                             for i in range(entry["count"])])
                self.loaders[key] = ("npy", load_npy)

    def __len__(self) -> int:
        return int(self.num_examples)

    def get_example(self, index: int) -> Mapping:
        example = {}
        for key, (name, loader) in self.loaders.items():
            value = self.labels[key][index]
            value = value.item() if isinstance(value, np.generic) else value
            try:
                example[key] = loader(value, self.folder)
            except Exception as err:
                raise DataError(f"{self.source}, key '{key}': loader '{name}' failed on example {index} "
                                f"({value!r}): {type(err).__name__}: {err}") from err
        return example

    def __repr__(self) -> str:
        return f"MetaDataset '{self.folder}' ({self.num_examples} examples)"


def write_meta_dataset(folder: Any, labels: Mapping[str, Any], description: str = "",
                       loaders: Mapping[str, str] | None = None) -> MetaDataset:
    """Write a :class:`MetaDataset` into ``folder`` (created; one that holds a ``meta.yaml`` already is never
    overwritten) and open it: every label as ``labels/<key>.npy``, then ``meta.yaml``, last, so that a folder
    whose writing was cut short is no dataset. ``loaders`` names the loader of label keys that hold paths
    (relative to ``folder``), e.g. ``{"image": "image"}``."""
    import yaml

    from edcore.project import write_text_atomic

    folder = Path(folder)
    if (folder / META).exists():
        raise DataError(f"'{folder / META}' exists already; write_meta_dataset never overwrites a dataset: choose "
                        f"a new folder.")
    arrays = {key: _label_array(key, values) for key, values in labels.items()}
    lengths = {key: len(array) for key, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"write_meta_dataset: the labels have different numbers of entries ({lengths}); every "
                        f"label needs one entry per example.")
    for key, name in (loaders or {}).items():
        if key not in arrays:
            raise DataError(f"write_meta_dataset: loaders names '{key}', which is not a label; the labels are "
                            f"{', '.join(arrays) or 'none'}.")
        if name not in LOADERS:
            raise DataError(f"write_meta_dataset: unknown loader {name!r} for '{key}'; the loaders are "
                            f"{', '.join(LOADERS)}.")
    files = {}
    for key, array in arrays.items():
        files[key] = f"{LABELS_FOLDER}/{key}.npy"
        target = folder / files[key]
        target.parent.mkdir(parents=True, exist_ok=True)
        np.save(target, array, allow_pickle=False)
    meta = {"description": description, "num_examples": next(iter(lengths.values()), 0), "labels": files,
            "loaders": dict(loaders or {})}
    write_text_atomic(folder / META, yaml.safe_dump(meta, sort_keys=False))
    return MetaDataset(folder)


def _label_array(key: Any, values: Any) -> np.ndarray:
    """A label as an array numpy saves without pickle (paths become strings)."""
    if not isinstance(key, str) or not all(_SAFE_NAME.match(part) and part not in (".", "..")
                                           for part in key.split("/")):
        raise DataError(f"write_meta_dataset: label key {key!r} cannot be a file name; use letters, digits and "
                        f"'_', '.', '-' ('/' for a sub-folder).")
    array = np.asarray(values)
    if array.dtype == object and all(isinstance(value, (str, os.PathLike)) for value in array.ravel()):
        array = np.array([os.fspath(value) for value in array.ravel()]).reshape(array.shape)
    if array.dtype == object:
        raise DataError(f"write_meta_dataset: label '{key}' holds Python objects; labels must be numbers, booleans "
                        f"or strings, which are stored without pickle.")
    if array.ndim == 0:
        raise DataError(f"write_meta_dataset: label '{key}' is a single value; labels need one entry per example.")
    return array


def _open_label(file: Path, where: str) -> np.ndarray:
    if not file.is_file():
        raise DataError(f"{where}: the label file '{file}' does not exist.")
    try:
        return np.load(file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{where}: '{file}' is not a .npy array numpy can read without pickle: {err}") from err


def _resolve(name: str, where: str) -> Any:
    from edcore.references import resolve

    return resolve(name, where=where)
