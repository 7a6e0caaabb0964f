"""JSON Schema validation of configs, with messages that name file:line, the key path and the fix."""
from __future__ import annotations

import copy
import difflib
import functools
import json
from importlib import resources
from typing import Any, Iterable, Mapping

from edcore.config import Config, format_keypath, known_keypaths
from edcore.errors import ConfigError

#: Keys a training config must have (``num_steps`` or ``num_epochs`` is checked separately).
REQUIRED_FOR_TRAINING = ("dataset", "iterator", "batch_size")
#: Keys an evaluation config must have.
REQUIRED_FOR_EVALUATION = ("dataset", "iterator", "batch_size")


@functools.lru_cache(maxsize=None)
def packaged_schema(filename: str) -> dict:
    """A schema from the package data ``edcore.schemas`` (works for wheels and editable installs)."""
    text = resources.files("edcore.schemas").joinpath(filename).read_text(encoding="utf-8")
    return json.loads(text)


def core_schema() -> dict:
    """The core schema of training and evaluation configs."""
    return packaged_schema("edflow.schema.json")


def build_schema(fragments: Iterable[Mapping[str, Any]]) -> dict:
    """The core schema with the sections that plugins contribute (``{"torch": {...schema...}}``)."""
    schema = copy.deepcopy(core_schema())
    for fragment in fragments:
        for section, section_schema in (fragment or {}).items():
            schema["properties"][section] = section_schema
    return schema


def validate(config: Config, schema: Mapping, mode: str) -> list[str]:
    """Raise :class:`ConfigError` for every schema violation; return warnings about likely typos."""
    report(schema_problems(config, schema) + _missing_required(config, schema, mode), "config")
    return _typo_warnings(config, schema)


def schema_problems(config: Config, schema: Mapping) -> list[str]:
    """One sentence (file:line, key, expectation) for every violation of ``schema``."""
    from jsonschema import Draft202012Validator  # ~80 ms to import: only runs that validate pay for it

    validator = Draft202012Validator(schema)
    return [_describe(config, error, schema) for error in validator.iter_errors(config.data)]


def report(problems: list[str], what: str) -> None:
    """Raise one :class:`ConfigError` listing ``problems`` (duplicates once), if there are any."""
    if problems:
        problems = sorted(set(problems), key=problems.index)
        if len(problems) == 1:
            raise ConfigError(f"invalid {what}: {problems[0]}")
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise ConfigError(f"invalid {what}, {len(problems)} problems:\n{listed}")


def _missing_required(config: Config, schema: Mapping, mode: str) -> list[str]:
    data = config.data
    where = " and ".join(dict.fromkeys(config.sources)) or "the config"
    required = REQUIRED_FOR_TRAINING if mode == "train" else REQUIRED_FOR_EVALUATION
    problems = []
    for key in required:
        if key not in data:
            problems.append(f"{where} has no key '{key}', which {_purpose(mode)} needs{_close_hint(key, data, config) or '.'}")
    if mode == "train" and "num_steps" not in data and "num_epochs" not in data:
        hint = _close_hint("num_steps", data, config) or _close_hint("num_epochs", data, config)
        problems.append(f"{where} has neither 'num_steps' nor 'num_epochs'; training needs one of them (integers >= 1){hint}")
    return problems


def _purpose(mode: str) -> str:
    return "training" if mode == "train" else "evaluation"


def _close_hint(key: str, data: Mapping, config: Config) -> str:
    close = difflib.get_close_matches(key, [k for k in data if isinstance(k, str)], n=1, cutoff=0.75)
    if not close:
        return ""
    return f"; found '{close[0]}' at {config.origin((close[0],))}: did you mean '{key}'?"


def _typo_warnings(config: Config, schema: Mapping) -> list[str]:
    known = list(schema["properties"])
    warnings = []
    for key in config.data:
        if key in known or not isinstance(key, str):
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.85)
        if close:
            warnings.append(
                f"{config.where((key,))}: unknown key '{key}' is passed to your code as it is; did you mean '{close[0]}'?"
            )
    return warnings


# ---------------------------------------------------------------------------------------------------------------
# Turning jsonschema errors into sentences

_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "null": "null",
    "object": "a mapping",
    "array": "a list",
}


def _found(value: Any) -> str:
    kinds = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    if value is None:
        return "null"
    kind = kinds.get(type(value), type(value).__name__)
    if isinstance(value, (dict, list)):
        return kind if value else f"an empty {kind[2:]}"
    return f"{value!r} ({kind})"


def _resolve(schema: Mapping, root: Mapping) -> Mapping:
    while "$ref" in schema:
        ref = schema["$ref"]
        node: Any = root
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _expectation(schema: Mapping, root: Mapping) -> str:
    schema = _resolve(schema, root)
    if "anyOf" in schema or "oneOf" in schema:
        return " or ".join(_expectation(branch, root) for branch in schema.get("anyOf", schema.get("oneOf")))
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    if "pattern" in schema and "description" in schema:  # a pattern means nothing to most readers; its description does
        return schema["description"]
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    words = " or ".join(_TYPE_WORDS.get(t, t) for t in types) or "a valid value"
    bounds = []
    if "minimum" in schema:
        bounds.append(f">= {schema['minimum']}")
    if "exclusiveMinimum" in schema:
        bounds.append(f"> {schema['exclusiveMinimum']}")
    if "maximum" in schema:
        bounds.append(f"<= {schema['maximum']}")
    if "minLength" in schema or "minItems" in schema or "minProperties" in schema:
        bounds.append("that is not empty")
    return words + (" " + " and ".join(bounds) if bounds else "")


def _describe(config: Config, error: Any, root: Mapping) -> str:
    keypath = tuple(error.absolute_path)
    if error.validator in ("anyOf", "oneOf") and error.context:
        deeper = [e for e in error.context if e.validator not in ("type", "minimum", "pattern", "enum", "const") or e.absolute_path != error.absolute_path]
        if deeper:
            return _describe(config, deeper[0], root)
        return f"{config.where(keypath)}: expected {_expectation(error.schema, root)}, found {_found(error.instance)}."
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = [key for key in error.instance if key not in known]
        sentences = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}."
            sentences.append(f"{config.where(keypath + (key,))}: unknown key '{key}' in section '{format_keypath(keypath)}'; {hint}")
        return " ".join(sentences)
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        return f"{config.where(keypath)}: missing key '{format_keypath(keypath + (missing[0],))}'."
    return f"{config.where(keypath)}: expected {_expectation(error.schema, root)}, found {_found(error.instance)}."


# ---------------------------------------------------------------------------------------------------------------
# Overrides of keys nobody knows


def check_override_keys(configs: Iterable[Config], schema: Mapping) -> None:
    """Raise :class:`ConfigError` for an override of a key that no config of this invocation sets and the schema
    does not declare (most likely a typo: ``--learnig_rate 0.5`` would train with the old value); ``--+key`` adds
    a key on purpose."""
    configs = list(configs)
    if not configs:
        return
    # An override goes to every config (training and evaluations): it is unknown only if it is new to all of them.
    unknown = {override.keypath: override for override in configs[0].new_keys}
    for config in configs[1:]:
        unknown = {override.keypath: override for override in config.new_keys if override.keypath in unknown}
    every = [override for config in configs for override in config.new_keys]
    problems = []
    for keypath, override in unknown.items():
        if override.add or declares(schema, keypath):
            continue
        if any(other.keypath == keypath[: len(other.keypath)] != keypath for other in every):
            continue  # under a key another override sets: judged there
        problems.append(override)
    if not problems:
        return
    known: dict[str, None] = {}
    for config in configs:
        known.update(dict.fromkeys(known_keypaths(config)))
    known.update(dict.fromkeys(_declared_keypaths(schema)))
    files = [source for config in configs for source in config.sources if source != "command line"]
    files_text = ", ".join(dict.fromkeys(files)) or "no config file"
    sentences = []
    for override in problems:
        key = format_keypath(override.keypath)
        sentence = f"override '{override.token}' sets '{key}', a key that no config file sets ({files_text}) and no schema declares"
        close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
        if close:
            sentence += f"; did you mean '{close[0]}'{_origin_hint(configs, close[0])}?"
        else:
            sentence += "."
        sentences.append(sentence)
    plus = problems[0].token.replace("--", "--+", 1)
    raise ConfigError(" ".join(sentences) + f" To add a new key on purpose, write it with a '+': '{plus}'.")


def _origin_hint(configs: list, keypath: str) -> str:
    from edcore.config import split_keypath

    missing = object()
    for config in configs:
        if config.get(split_keypath(keypath), missing) is not missing:
            origin = config.origin(split_keypath(keypath))
            return f" (set at {origin})" if origin else ""
    return " (declared by the schema)"


def declares(schema: Mapping, keypath: tuple, root: Mapping | None = None, top: bool = True) -> bool:
    """Whether the schema names ``keypath``: its sections' own keys, or any key of a section that is an open
    mapping (like ``eval_callbacks``). The open top level does not count: that is where typos go unnoticed."""
    root = schema if root is None else root
    node = _resolve(schema, root)
    for depth, part in enumerate(keypath):
        branches = node.get("anyOf") or node.get("oneOf")
        if branches:
            return any(declares(branch, keypath[depth:], root, top and depth == 0) for branch in branches)
        properties = node.get("properties", {})
        if part in properties:
            node = _resolve(properties[part], root)
            continue
        if top and depth == 0:
            return False
        # A closed section's unknown keys are reported by the validation (with its own did-you-mean).
        return node.get("additionalProperties", True) is not False or "patternProperties" in node
    return True


def _declared_keypaths(schema: Mapping, root: Mapping | None = None, prefix: str = "") -> list[str]:
    root = schema if root is None else root
    node = _resolve(schema, root)
    paths = []
    for key, child in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        paths.append(path)
        paths += _declared_keypaths(child, root, path + "/")
    return paths
