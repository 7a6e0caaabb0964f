"""Loading, merging and overriding configs while remembering where every value came from."""
from __future__ import annotations

import collections.abc
import copy
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

import yaml

from edcore.errors import ConfigError, UsageError

Keypath = tuple  # a tuple of str keys and int list indices


@dataclass(frozen=True)
class Origin:
    """Where a value came from: a file and line, or a command-line override."""

    file: str | None = None
    line: int | None = None
    override: str | None = None

    def __str__(self) -> str:
        if self.override is not None:
            return f"command line `{self.override}`"
        if self.file is not None and self.line is not None:
            return f"{self.file}:{self.line}"
        return self.file or "built-in default"


def format_keypath(keypath: Iterable) -> str:
    """``('torch', 'device')`` -> ``torch/device``; the same form the overrides use."""
    return "/".join(str(part) for part in keypath) or "(top level)"


@dataclass
class Config:
    """A config as nested dicts and lists (what user code receives) plus the origin of every value."""

    data: dict = field(default_factory=dict)
    origins: dict = field(default_factory=dict)
    sources: list = field(default_factory=list)
    #: The overrides that set a key the config did not have before (checked against the schema later).
    new_keys: list = field(default_factory=list)

    def origin(self, keypath: Iterable) -> Origin | None:
        """The origin of the value at ``keypath``, or of its nearest ancestor that has one."""
        keypath = tuple(keypath)
        while True:
            if keypath in self.origins:
                return self.origins[keypath]
            if not keypath:
                return None
            keypath = keypath[:-1]

    def where(self, keypath: Iterable) -> str:
        """``train.yaml:4, key 'batch_size'``: the place an error message names."""
        keypath = tuple(keypath)
        origin = self.origin(keypath)
        place = str(origin) if origin else (self.sources[-1] if self.sources else "the config")
        return f"{place}, key '{format_keypath(keypath)}'"

    def get(self, keypath: str | Iterable, default: Any = None) -> Any:
        """The value at a ``a/b/c`` keypath, or ``default``."""
        parts = split_keypath(keypath) if isinstance(keypath, str) else tuple(keypath)
        node: Any = self.data
        for part in parts:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return default
        return node

    def set(self, keypath: str | Iterable, value: Any, origin: Origin | None = None) -> None:
        """Set a value, creating intermediate mappings, and record where it came from."""
        parts = split_keypath(keypath) if isinstance(keypath, str) else tuple(keypath)
        _set_value(self.data, parts, value)
        _drop_origins(self.origins, parts)
        self.origins[parts] = origin or Origin()

    def setdefault(self, keypath: str, value: Any, origin: Origin | None = None) -> Any:
        """Set ``keypath`` unless it is present; return the value in effect."""
        missing = object()
        current = self.get(keypath, missing)
        if current is missing:
            self.set(keypath, value, origin or Origin(file="default"))
            return value
        return current

    def copy(self) -> "Config":
        return Config(copy.deepcopy(self.data), dict(self.origins), list(self.sources), list(self.new_keys))

    def origins_table(self) -> dict[str, str]:
        """Every leaf keypath with its origin, for the run folder."""
        table = {}
        for keypath, _value in iter_leaves(self.data):
            origin = self.origin(keypath)
            table[format_keypath(keypath)] = str(origin) if origin else "unknown"
        return table


def iter_leaves(node: Any, prefix: Keypath = ()) -> Iterator[tuple[Keypath, Any]]:
    """Yield ``(keypath, value)`` for every non-container value of a nested structure."""
    if isinstance(node, Mapping):
        if not node and prefix:
            yield prefix, node
        for key, value in node.items():
            yield from iter_leaves(value, prefix + (key,))
    elif isinstance(node, list):
        if not node:
            yield prefix, node
        for index, value in enumerate(node):
            yield from iter_leaves(value, prefix + (index,))
    else:
        yield prefix, node


# ---------------------------------------------------------------------------------------------------------------
# YAML with line numbers


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` as a float (YAML 1.2 does; PyYAML's 1.1 rules make it a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_scalar(text: str) -> Any:
    """Type a command-line value the way the same text would be typed in a config file."""
    return yaml.load(text, Loader=_Loader)


_ALLOWED_TAGS = {
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:merge",
}


def load_file(path: str | os.PathLike) -> Config:
    """Load one YAML config file; every error names the file and line."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except FileNotFoundError:
        raise UsageError(f"config file '{path}' does not exist (looked in {os.getcwd()}).") from None
    except IsADirectoryError:
        raise UsageError(f"config path '{path}' is a directory; expected a YAML file.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"config file '{path}' cannot be read: {err}.") from err
    return load_text(text, path)


def load_text(text: str, name: str = "<string>") -> Config:
    """Parse YAML text safely (no Python objects are ever constructed) into a :class:`Config`."""
    loader = _Loader(text)
    loader.name = name
    try:
        node = loader.get_single_node()
        config = Config(sources=[name])
        if node is None:
            return config
        if not isinstance(node, yaml.MappingNode):
            kind = "a list" if isinstance(node, yaml.SequenceNode) else f"the value {node.value!r}"
            raise ConfigError(
                f"{name}:{node.start_mark.line + 1}: a config file must be a mapping of keys to values "
                f"(like 'batch_size: 32'), but this file holds {kind}."
            )
        config.data = _construct(loader, node, name, (), config.origins)
        return config
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = f"{mark.line + 1}" if mark else "?"
        problem = err.problem or "invalid YAML"
        context = f" ({err.context})" if err.context else ""
        raise ConfigError(f"{name}:{line}: YAML syntax error: {problem}{context}.") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{name}: YAML error: {err}.") from err
    finally:
        loader.dispose()


def _tag_error(name: str, node: yaml.Node) -> ConfigError:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    return ConfigError(
        f"{name}:{node.start_mark.line + 1}: the tag '{tag}' is not allowed in a config; configs hold plain "
        f"values only and never construct Python objects. Name classes by dotted strings instead "
        f"(e.g. model: mypkg.models.Net)."
    )


def _construct(loader: yaml.SafeLoader, node: yaml.Node, name: str, keypath: Keypath, origins: dict) -> Any:
    if node.tag not in _ALLOWED_TAGS:
        raise _tag_error(name, node)
    if isinstance(node, yaml.MappingNode):
        own_keys = {id(key) for key, _ in node.value}
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<: *anchor); merged keys come first
        result: dict = {}
        lines: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"{name}:{key_node.start_mark.line + 1}: config keys must be plain scalars.")
            key = loader.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if id(key_node) not in own_keys:
                line = -line  # a merged key: the mapping's own key of the same name may replace it
            elif key in lines and lines[key] < 0:
                lines[key] = line
            elif key in lines:
                raise ConfigError(
                    f"{name}:{line}: key '{format_keypath(keypath + (key,))}' is given twice "
                    f"(first at line {lines[key]}); remove one of them."
                )
            lines[key] = line
            origins[keypath + (key,)] = Origin(name, abs(line))
            result[key] = _construct(loader, value_node, name, keypath + (key,), origins)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            origins[keypath + (index,)] = Origin(name, item.start_mark.line + 1)
            items.append(_construct(loader, item, name, keypath + (index,), origins))
        return items
    return loader.construct_object(node, deep=True)


# ---------------------------------------------------------------------------------------------------------------
# Merging


def merge(base: Config, other: Config) -> Config:
    """Deep merge: nested mappings merge key by key, every other value of ``other`` replaces the base's."""
    result = base.copy()
    _merge_into(result, other, other.data, ())
    result.sources = base.sources + other.sources
    return result


def _merge_into(result: Config, other: Config, node: Mapping, keypath: Keypath) -> None:
    target = result.get(keypath) if keypath else result.data
    for key, value in node.items():
        path = keypath + (key,)
        if isinstance(value, Mapping) and isinstance(target.get(key), Mapping):
            result.origins[path] = other.origins.get(path, result.origins.get(path))
            _merge_into(result, other, value, path)
            continue
        target[key] = copy.deepcopy(value)
        _drop_origins(result.origins, path)
        for origin_path, origin in other.origins.items():
            if origin_path[: len(path)] == path:
                result.origins[origin_path] = origin


def load_saved(path: str | os.PathLike) -> Config:
    """Load an effective config that edflow wrote, with the origins it recorded next to it (``-p`` resumes)."""
    config = load_file(path)
    origins_path = os.fspath(path)[: -len(".yaml")] + ".origins.yaml"
    try:
        with open(origins_path, encoding="utf-8") as stream:
            table = yaml.safe_load(stream) or {}
    except (OSError, yaml.YAMLError):
        return config
    for key, text in table.items():
        text = str(text)
        if text.startswith("command line `") and text.endswith("`"):
            origin = Origin(override=text[len("command line `"):-1])
        elif ":" in text and text.rsplit(":", 1)[1].isdigit():
            file, line = text.rsplit(":", 1)
            origin = Origin(file, int(line))
        else:
            origin = Origin(file=text)
        config.origins[split_keypath(str(key))] = origin
    return config


def load_configs(paths: Iterable[str | os.PathLike]) -> Config:
    """Load files and merge them left to right."""
    result = Config()
    for path in paths:
        result = merge(result, load_file(path))
    return result


def _drop_origins(origins: dict, keypath: Keypath) -> None:
    for existing in [p for p in origins if p[: len(keypath)] == keypath]:
        del origins[existing]


def _set_value(data: dict, keypath: Keypath, value: Any) -> None:
    node: Any = data
    for depth, part in enumerate(keypath[:-1]):
        nxt = keypath[depth + 1]
        if isinstance(node, list):
            if not isinstance(part, int) or not -len(node) <= part < len(node):
                raise KeyError(keypath[: depth + 1])
            child = node[part]
        else:
            child = node.get(part)
        if not isinstance(child, (dict, list)) or (isinstance(child, list) and not isinstance(nxt, int)):
            child = {}
            node[part] = child
        node = child
    last = keypath[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last > len(node):
            raise KeyError(keypath)
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
    else:
        node[last] = value


# ---------------------------------------------------------------------------------------------------------------
# Command-line overrides


_KEY_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$|^[0-9]+$")


@dataclass(frozen=True)
class Override:
    """One ``--key value`` from the command line; ``add`` for ``--+key value``, which may add a new key."""

    keypath: Keypath
    value: Any
    token: str
    add: bool = False


def split_keypath(key: str) -> Keypath:
    """``a/b/0`` or ``a.b.0`` -> ``('a', 'b', 0)``."""
    parts = re.split(r"[/.]", key)
    return tuple(int(part) if part.isdigit() else part for part in parts)


def parse_overrides(tokens: list[str]) -> list[Override]:
    """Parse ``--key value``, ``--a/b/c value`` and ``--a.b.c=value`` tokens (``--+key ...`` adds a key no config
    has); values are typed as YAML scalars."""
    overrides: list[Override] = []
    seen: dict = {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("--") or token.startswith("---") or token in ("--", "--="):
            hint = f" To add a new key, write '--{token}'." if token.startswith("+") else ""  # Hydra's +key=value
            raise UsageError(
                f"unexpected argument '{token}'. Config overrides are written '--key value', '--a/b/c value' or "
                f"'--a.b.c=value'; see 'edflow --help'.{hint}"
            )
        add = token.startswith("--+")
        body = token[3:] if add else token[2:]
        if "=" in body:
            key, text = body.split("=", 1)
            display = token
            index += 1
            if text == "":
                raise UsageError(f"override '{token}' has no value; write '{token}VALUE'.")
        else:
            key = body
            if index + 1 >= len(tokens) or tokens[index + 1].startswith("--"):
                raise UsageError(
                    f"override '{token}' has no value; write '{token} VALUE' or '{token}=VALUE'. "
                    f"(edflow has no boolean switches for config keys: use '{token} true'.)"
                )
            text = tokens[index + 1]
            display = f"{token} {text}"
            index += 2
        parts = re.split(r"[/.]", key)
        if not key or not all(_KEY_PART.match(part) for part in parts):
            raise UsageError(
                f"malformed override key '{key}' in '{display}': keys are names separated by '/' or '.', "
                f"like '--optimizer/lr 0.1' or '--optimizer.lr=0.1'."
            )
        keypath = split_keypath(key)
        if keypath in seen:
            raise UsageError(f"override '{format_keypath(keypath)}' is given twice ('{seen[keypath]}' and '{display}').")
        seen[keypath] = display
        try:
            value = parse_scalar(text) if text != "" else ""
        except yaml.YAMLError as err:
            raise UsageError(f"value of override '{display}' is not valid YAML: {err}.") from err
        overrides.append(Override(keypath, value, display, add))
    return overrides


def apply_overrides(config: Config, overrides: Iterable[Override]) -> Config:
    """Apply overrides, shorter keypaths first so ``--a x --a/b y`` sets ``a`` before ``a/b``."""
    result = config.copy()
    overrides = list(overrides)
    result.new_keys += [override for override in overrides if not _has_keypath(config.data, override.keypath)]
    for override in sorted(overrides, key=lambda o: len(o.keypath)):
        try:
            result.set(override.keypath, override.value, Origin(override=override.token))
        except KeyError:
            raise UsageError(
                f"override '{override.token}' indexes a list beyond its end; list items can be replaced or "
                f"appended one past the end only."
            ) from None
    result.sources = result.sources + ["command line"] if overrides else result.sources
    return result


def _has_keypath(data: Any, keypath: Keypath) -> bool:
    """Whether ``keypath`` names a value in ``data``; inside a list every index counts (the list is the key)."""
    node = data
    for part in keypath:
        if isinstance(node, list):
            return True
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def known_keypaths(config: Config) -> list[str]:
    """Every keypath of the config (sections and leaves, not list items) as ``a/b``, without the new keys."""
    new = {override.keypath for override in config.new_keys}
    paths = []

    def walk(node: Mapping, prefix: Keypath) -> None:
        for key, value in node.items():
            path = prefix + (key,)
            if path in new:
                continue
            paths.append(format_keypath(path))
            if isinstance(value, Mapping):
                walk(value, path)

    walk(config.data, ())
    return paths


# ---------------------------------------------------------------------------------------------------------------
# Writing


def _plain(value: Any) -> Any:
    """Turn wrapper containers (Keras' ListWrapper and _DictWrapper, OrderedDict, tuples) into plain dicts and
    lists, so that a config a Keras model has touched still dumps (EDFlow's known bug)."""
    # collections.abc, not typing: typing.Mapping does not see through TensorFlow's _DictWrapper proxy, which a
    # tf.Module puts into the config's nested dicts in place
    if isinstance(value, collections.abc.Mapping):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:  # numpy scalars
        return value.item()
    return value


def dump(data: Mapping) -> str:
    """YAML text of a config; survives containers that frameworks wrap around lists and dicts."""
    return yaml.safe_dump(_plain(data), sort_keys=False, default_flow_style=False, allow_unicode=True)
