"""``edflow explore SOURCE``: one self-contained HTML page with examples of a dataset (their images, labels and
other values) and a summary of it: EDFlow's ``edexplore``, without a server.

SOURCE is a YAML config (its ``dataset``, made as a training makes it: over the ``-b`` bases, with ``--key value``
overrides, ``--eval`` as an evaluation makes it), a dotted dataset name (created as ``Name(config)``), a
MetaDataset folder (``meta.yaml``) or the outputs of an evaluated checkpoint
(``RUN/eval/<timestamp>_<name>/<global_step>``). The page loads nothing: images are inline PNGs, the styles and the
script are in the page, so it works from ``file://`` offline and can be mailed or archived as it is.
"""
from __future__ import annotations

import argparse
import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from edcore.commands import emit
from edcore.errors import ConfigError, DataError, EdflowError, UsageError, UserCodeError

_NAME = r"[A-Za-z_]\w*"
#: A dotted name of a dataset class or function as ``dataset:`` holds it: ``pkg.mod.Name`` or ``pkg.mod:Name``.
DOTTED_NAME = re.compile(rf"^{_NAME}(\.{_NAME})*[.:]{_NAME}(\.{_NAME})*$")
#: Images are shown at least this many CSS pixels on their longer side (8x8 digits 16 times), never shrunk.
MIN_IMAGE_PIXELS = 128
#: Arrays of at most this many entries also show their values.
MAX_SHOWN_VALUES = 16
#: Longer strings and representations are cut, so one odd value cannot make the page unreadable.
MAX_TEXT = 2000


DESCRIPTION = """\
Write one self-contained HTML page with examples of a dataset, their images, labels and other values, and a
summary of the dataset (EDFlow's edexplore, without a server).

DATASET_OR_CONFIG is a YAML config (its dataset, made as a training makes it; --eval: as an evaluation makes it), a
dotted dataset name (created as Name(config)), a MetaDataset folder (meta.yaml) or the outputs of an evaluated
checkpoint (RUN/eval/<timestamp>_<name>/<global_step>). The page loads nothing from anywhere: it works offline.
"""


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``edflow explore``."""
    parser = argparse.ArgumentParser(
        prog="edflow explore", description=DESCRIPTION, allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # no abbreviations: --num is an override, not -n
        epilog="examples:\n"
               "  edflow explore train.yaml                       the first 16 examples of the training dataset\n"
               "  edflow explore eval.yaml --eval --shuffle 0 -n 32\n"
               "  edflow explore mypkg.data.Images --+size 64 -o images.html\n"
               "  edflow explore logs/<run>/eval/<timestamp>_eval/0000001000 --indices 0,7,-1\n\n"
               "Any other '--key value' overrides a config value, as for 'edflow -t'.",
    )
    parser.add_argument("source", metavar="DATASET_OR_CONFIG",
                        help="a YAML config, a dotted dataset name, a MetaDataset folder or an evaluated checkpoint's "
                             "output folder")
    parser.add_argument("-o", "--output", default="explore.html", metavar="PAGE.html",
                        help="where to write the page (default: explore.html)")
    parser.add_argument("-n", "--num-examples", type=int, default=16, metavar="N",
                        help="how many examples to show (default: 16)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--start", type=int, default=None, metavar="INDEX",
                       help="show the examples from INDEX on (default: 0)")
    which.add_argument("--indices", metavar="I,J,...",
                       help="show exactly these examples, e.g. --indices 0,5,-1 (then -n is not used)")
    which.add_argument("--shuffle", type=int, default=None, metavar="SEED",
                       help="show N examples drawn at random, the same for the same SEED")
    parser.add_argument("-b", "--base", action="append", default=[], metavar="BASE.yaml",
                        help="a base config merged under the config (or the dotted name); repeatable")
    parser.add_argument("--eval", action="store_true",
                        help="make the dataset as an evaluation does (mode eval, test_mode: true)")
    parser.add_argument("-d", "--debug", action="store_true", help="full tracebacks")
    return parser


def main(argv: list[str]) -> int:
    """Write the page of the examples asked for."""
    args, extras = build_parser().parse_known_args(argv)
    from edcore.config import parse_overrides
    from edcore.data import dataset_length

    overrides = parse_overrides(extras)
    output = Path(args.output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"-o/--output '{output}': edflow explore writes an HTML page; use a name ending in .html.")
    if output.is_dir():
        raise UsageError(f"-o/--output '{output}' is a folder; give the file name of the page, like "
                         f"{output}/explore.html.")
    if args.num_examples < 1:
        raise UsageError(f"-n/--num-examples {args.num_examples}: show at least one example.")
    source = open_source(args.source, args.base, overrides, "eval" if args.eval else "train")
    length = dataset_length(source.dataset)
    indices = choose_indices(length, args.num_examples, args.start, args.indices, args.shuffle, source)
    examples = [read_example(source.dataset, index) for index in indices]
    page = render_page(source, length, indices, examples)

    from edcore.project import write_text_atomic

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(output, page)  # a temporary name, then renamed: never a half-written page
    except OSError as err:
        raise EdflowError(f"cannot write the page '{output}': {err.strerror or err}.") from err
    shown = f"{len(indices)} example{'s' if len(indices) != 1 else ''}"
    emit(f"wrote {output} ({shown} of {source.name}, {length} in all)")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# The dataset


@dataclass
class Source:
    """The dataset to show and where it came from."""

    dataset: Any
    text: str  # what the command line named
    kind: str  # config, dotted name, MetaDataset, evaluation outputs
    config: Any = None  # the effective Config of a config or dotted name
    to_numpy: Callable[[Any], Any] = field(default=lambda value: value)  # the backends' tensor conversion

    @property
    def name(self) -> str:
        return type(self.dataset).__name__


def open_source(text: str, bases: list[str], overrides: list, mode: str) -> Source:
    """The dataset that ``text`` names: a config, a folder or a dotted name."""
    from edcore import config as configs

    path = Path(text)
    if path.is_dir():
        if bases or overrides or mode == "eval":
            raise UsageError(f"'{text}' is a folder: -b, --eval and --key value overrides apply to a config or a "
                             f"dotted dataset name only.")
        return open_folder(path, text)
    if path.suffix.lower() in (".yaml", ".yml"):
        config = configs.apply_overrides(configs.load_configs([*bases, text]), overrides)
        if not config.get("dataset"):
            old_style = " (EDFlow's datasets: {train: ...} is written dataset: ... here)" \
                if config.get("datasets") else ""
            raise ConfigError(f"{text} has no key 'dataset'{old_style}; edflow explore shows the dataset a config "
                              f"names, like dataset: mypkg.data.Images, or a dotted name given instead of the config: "
                              f"edflow explore mypkg.data.Images.")
        return config_source(config, mode, text, "config")
    if path.exists():
        raise UsageError(f"'{text}' is neither a YAML config (.yaml) nor a folder; edflow explore shows a config's "
                         f"dataset, a dotted dataset name, a MetaDataset folder or an evaluated checkpoint's outputs.")
    if DOTTED_NAME.match(text):
        config = configs.apply_overrides(configs.load_configs(bases), overrides)
        config.set("dataset", text, configs.Origin(override=f"edflow explore {text}"))
        return config_source(config, mode, text, "dotted name")
    raise UsageError(f"'{text}' does not exist (looked in {Path.cwd()}) and is no dotted name; give a YAML config, a "
                     f"dotted dataset name like mypkg.data.Images, a MetaDataset folder or an evaluated checkpoint's "
                     f"output folder (RUN/eval/<timestamp>_<name>/<global_step>).")


def config_source(config: Any, mode: str, text: str, kind: str) -> Source:
    """The dataset of a config, made as the training (``mode="train"``) or an evaluation makes it: through the
    plugins' ``edflow_dataset``, after the same checks and the seeding."""
    from edcore.builtin.providers import check_signatures
    from edcore.config import Origin, split_keypath
    from edcore.plugins import call_hook, make_plugin_manager
    from edcore.process import provide
    from edcore.references import ensure_cwd_importable, resolve
    from edcore.schema import build_schema, check_override_keys

    ensure_cwd_importable()
    if mode == "eval":
        config.set("test_mode", True, Origin(file="set by edflow for evaluation"))
    else:
        config.setdefault("test_mode", False, Origin(file="default"))
    manager = make_plugin_manager(config_plugins=config.get("plugins") or [],
                                  disabled=config.get("disable_plugins") or [])
    manager.check()
    check_override_keys([config], build_schema(manager.hook.edflow_config_schema()))

    def where(keypath: Any) -> str:
        return config.where(split_keypath(keypath) if isinstance(keypath, str) else keypath)

    resolve(config.get("dataset"), where=where("dataset"))  # a wrong name is named with its file:line
    check_signatures(config, manager, where, keys=("dataset",))
    if config.get("seed") is not None:  # a dataset that draws in __init__ draws what the training draws
        call_hook(manager, "edflow_seed", seed=int(config.get("seed")), config=config.data)
    dataset = provide(manager, "edflow_dataset", "dataset", config=config.data, mode=mode)

    def to_numpy(value: Any) -> Any:
        return call_hook(manager, "edflow_to_numpy", value=value)

    return Source(dataset, text, kind, config, to_numpy)


def open_folder(path: Path, text: str) -> Source:
    """A MetaDataset folder or the outputs of one evaluated checkpoint, read as a MetaDataset."""
    from edcore.data import META, MetaDataset
    from edcore.outputs import INDEX

    if (path / META).is_file():
        return Source(MetaDataset(path), text, "MetaDataset")
    if (path / INDEX).is_file():
        return Source(MetaDataset(path), text, "evaluation outputs")
    steps = sorted(child.name for child in path.iterdir() if child.is_dir() and (child / INDEX).is_file())
    if steps:
        raise UsageError(f"'{text}' is an evaluation folder; explore the outputs of one of its checkpoints, like "
                         f"{path / steps[-1]} (it has {', '.join(steps)}).")
    raise UsageError(f"'{text}' is neither a MetaDataset (it has no {META}) nor the outputs of an evaluated checkpoint "
                     f"(no {INDEX}); give such a folder, a YAML config or a dotted dataset name.")


def choose_indices(length: int, count: int, start: int | None, indices: str | None, shuffle: int | None,
                   source: Source) -> list[int]:
    """The indices of the examples to show: ``count`` from ``start``, exactly ``indices``, or ``count`` drawn with
    the seed ``shuffle`` (in dataset order)."""
    if length == 0:
        raise DataError(f"{source.kind} '{source.text}': the dataset {source.name} is empty; there is nothing to show.")
    valid = f"valid indices are 0 to {length - 1} (or {-length} to -1)"
    if indices is not None:
        try:
            chosen = [int(part) for part in indices.split(",") if part.strip()]
        except ValueError:
            raise UsageError(f"--indices '{indices}': expected integers separated by commas, like --indices "
                             f"0,5,-1.") from None
        if not chosen:
            raise UsageError("--indices is empty; give integers separated by commas, like --indices 0,5,-1.")
        for index in chosen:
            if not -length <= index < length:
                raise UsageError(f"--indices: index {index} is out of range for {source.name} ({length} examples); "
                                 f"{valid}.")
        # In the order given, each once: -1 and 11 of 12 examples are one example (and one id on the page).
        return list(dict.fromkeys(index + length if index < 0 else index for index in chosen))
    if shuffle is not None:
        import numpy as np

        if shuffle < 0:
            raise UsageError(f"--shuffle {shuffle}: the seed is an integer >= 0.")
        drawn = np.random.default_rng(shuffle).choice(length, size=min(count, length), replace=False)
        return sorted(int(index) for index in drawn)
    start = start or 0
    if not 0 <= start < length:
        raise UsageError(f"--start {start} is out of range for {source.name} ({length} examples); valid starts are 0 "
                         f"to {length - 1}.")
    return list(range(start, min(start + count, length)))


def read_example(dataset: Any, index: int) -> dict:
    """Example ``index`` with nested dicts flattened to ``a/b`` keys; an error in the dataset names the index."""
    from edcore.data import describe
    from edcore.errors import describe_exception
    from edcore.media import flatten

    try:
        example = dataset[index]
    except EdflowError:
        raise  # edcore.data's errors name the dataset, the file and the index already
    except Exception as err:
        raise UserCodeError(f"{describe(dataset)}: reading example {index} raised {describe_exception(err)}") from err
    if not isinstance(example, Mapping):
        raise DataError(f"{describe(dataset)}: example {index} is a {type(example).__name__}; edflow explore shows "
                        f"examples that are dicts, like {{'image': array, 'label': 3}}.")
    return flatten(example)


# ---------------------------------------------------------------------------------------------------------------
# Values as HTML


@dataclass
class Cell:
    """One value of an example on the page."""

    kind: str  # image, number, text, array, none, object
    type_text: str  # what the keys table of the summary says about it
    html: str


def show_value(key: str, value: Any, index: int, to_numpy: Callable[[Any], Any]) -> Cell:
    """``value`` as an image, a number, a text or the description of an array."""
    import numpy as np

    if value is None:
        return Cell("none", "None", '<span class="none">None</span>')
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return Cell("number", type(value).__name__, f'<span class="number">{format_number(value)}</span>')
    if isinstance(value, str):
        return Cell("text", "str", f'<pre class="text">{_cut(value)}</pre>')
    array = _as_array(value, to_numpy)
    if array is None:
        return Cell("object", type(value).__name__,
                    f'<pre class="object">{_cut(f"{type(value).__name__}: {value!r}")}</pre>')
    if array.ndim == 0:
        return show_value(key, array.item(), index, to_numpy)
    shape = f"{array.dtype} {tuple(array.shape)}"
    if array.dtype.kind in "US":
        values = f'<pre class="values">{_cut(repr(array.tolist()))}</pre>' if array.size <= MAX_SHOWN_VALUES else ""
        return Cell("array", f"strings {tuple(array.shape)}", f'<div class="array"><span class="shape">{shape}'
                                                               f'</span>{values}</div>')
    statistics = _statistics(array)
    image, why_not = as_image(key, array)
    if image is not None:
        return Cell("image", f"image {shape}", f'<figure>{image_tag(image, key, index)}<figcaption>{shape}, '
                                               f'{statistics}</figcaption></figure>')
    values = ""
    if array.size <= MAX_SHOWN_VALUES:
        values = f'<pre class="values">{html.escape(np.array2string(array, precision=4, separator=", "))}</pre>'
    note = f'<div class="note">{html.escape(why_not)}</div>' if why_not else ""
    return Cell("array", f"array {shape}", f'<div class="array"><span class="shape">{shape}</span> <span '
                                           f'class="stats">{statistics}</span>{values}{note}</div>')


def _as_array(value: Any, to_numpy: Callable[[Any], Any]) -> Any:
    """A numpy array of numbers, booleans or strings, or None for anything else (shown by its repr)."""
    import numpy as np

    try:
        if isinstance(value, np.ndarray):
            array = value
        elif isinstance(value, (list, tuple)):
            array = np.asarray(value)
        elif isinstance(value, bytes):
            return None
        else:
            array = np.asarray(to_numpy(value))  # torch and tf tensors, through the backends
    except (TypeError, ValueError):  # a ragged list, an object numpy cannot take
        return None
    return None if array.dtype.kind not in "biufUS" else array


def as_image(key: str, array: Any) -> tuple[Any, str]:
    """``(H, W, C)`` uint8 pixels of an array that is one image (or a batch of one) as the log op's images are, or
    ``(None, why not)``; the reason is empty where the array plainly is no image."""
    import numpy as np

    from edcore import media

    if array.ndim not in (2, 3, 4) or (array.ndim == 4 and array.shape[0] != 1):
        return None, ""
    try:
        batch = media.as_nhwc(key, array)
    except media.ImageError:
        return None, ""
    if np.issubdtype(batch.dtype, np.integer) and batch.dtype != np.uint8:
        # Shaped like an image with its channel axis, so probably meant as one: say why it is not shown.
        why = (f"not shown as an image: images are uint8, bool or floats in [-1, 1], not {batch.dtype}"
               if array.ndim >= 3 else "")
        return None, why
    if np.issubdtype(batch.dtype, np.floating):
        finite = batch[np.isfinite(batch)]
        if finite.size and (finite.min() < -1 or finite.max() > 1):
            # Clipped to [-1, 1] it would look like an image of something else.
            return None, (f"not shown as an image: its values go beyond [-1, 1], the range of float images "
                          f"(uint8 images are 0 to 255)")
    return media.to_uint8(key, batch)[0], ""


def image_tag(image: Any, key: str, index: int) -> str:
    """An ``<img>`` with the PNG inline; small images scaled up without smoothing."""
    from edcore.media import encode_png

    height, width = image.shape[:2]
    scale = max(1, MIN_IMAGE_PIXELS // max(height, width))
    data = base64.b64encode(encode_png(image)).decode("ascii")
    pixelated = ' class="pixelated"' if scale > 1 else ""
    return (f'<img{pixelated} src="data:image/png;base64,{data}" width="{width * scale}" height="{height * scale}" '
            f'alt="{html.escape(key)} of example {index}" data-key="{html.escape(key)}" data-width="{width}" '
            f'data-height="{height}" onload="edflowLoaded(this)" onerror="edflowFailed(this)">')


def format_number(value: Any) -> str:
    """Integers and booleans as they are, floats with 6 significant digits."""
    import numpy as np

    if isinstance(value, (bool, np.bool_, int, np.integer)):
        return str(value if isinstance(value, (bool, int)) else value.item())
    return f"{float(value):.6g}"


def _statistics(array: Any) -> str:
    import numpy as np

    if array.size == 0:
        return "empty"
    values = array.astype(np.float64)
    finite = values[np.isfinite(values)]
    parts = [f"min {finite.min():.4g}", f"max {finite.max():.4g}", f"mean {finite.mean():.4g}"] if finite.size else []
    if finite.size < values.size:
        parts.append(f"{values.size - finite.size} not finite")
    return ", ".join(parts)


def _cut(text: str) -> str:
    text = text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f" ... ({len(text)} characters)"
    return html.escape(text)


# ---------------------------------------------------------------------------------------------------------------
# The page

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 1.5em; }
h1 { font-size: 1.4em; margin: 0 0 0.6em; }
h2 { font-size: 1.1em; margin: 1.2em 0 0.4em; }
table { border-collapse: collapse; }
th, td { text-align: left; vertical-align: top; padding: 0.2em 0.7em 0.2em 0; border-bottom: 1px solid #e4e4e4; }
th { font-weight: 600; white-space: nowrap; }
.examples { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.example { border: 1px solid #ccc; border-radius: 4px; padding: 0.4em 0.8em 0.6em; max-width: 100%; }
.example h2 { margin-top: 0.2em; }
figure { margin: 0; }
img { max-width: 100%; height: auto; outline: 1px solid #ddd; }
img.pixelated { image-rendering: pixelated; }
figcaption, .stats, .shape, .note { color: #666; font-size: 0.85em; }
pre { margin: 0; white-space: pre-wrap; font: 0.95em ui-monospace, monospace; }
#page-errors { color: #b00020; white-space: pre-wrap; }
#key-filter { margin: 0.4em 0 1em; padding: 0.2em 0.4em; width: 20em; }
"""

# Set before any image: every image records that it decoded (data-loaded="WxH") or failed, and any script error is
# written into #page-errors, so a test in a headless browser sees both in the DOM.
WATCH = """
function edflowReport(message) {
  var box = document.getElementById("page-errors");
  box.textContent += message + "\\n";
  box.hidden = false;
}
window.onerror = function (message, source, line) { edflowReport(message + " (line " + line + ")"); };
function edflowLoaded(img) { img.setAttribute("data-loaded", img.naturalWidth + "x" + img.naturalHeight); }
function edflowFailed(img) {
  img.setAttribute("data-loaded", "error");
  edflowReport("image '" + img.alt + "' did not load");
}
"""

# The key filter: rows of the examples whose key does not contain the text are hidden; page.html#keys=TEXT opens
# the page filtered.
FILTER = """
(function () {
  var input = document.getElementById("key-filter");
  function apply() {
    var wanted = input.value.trim().toLowerCase();
    var rows = document.querySelectorAll("tr.entry");
    for (var i = 0; i < rows.length; i++) {
      rows[i].hidden = wanted !== "" && rows[i].getAttribute("data-key").toLowerCase().indexOf(wanted) < 0;
    }
  }
  input.addEventListener("input", apply);
  var match = /[#&]keys=([^&]*)/.exec(window.location.hash);
  if (match) { input.value = decodeURIComponent(match[1]); }
  apply();
})();
"""

# Nothing may be fetched: images only from data: URLs, styles and scripts only from the page itself.
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def render_page(source: Source, length: int, indices: list[int], examples: list[dict]) -> str:
    """The whole HTML page: the summary of the dataset, then one section per example."""
    cells = [{key: show_value(key, value, index, source.to_numpy) for key, value in example.items()}
             for index, example in zip(indices, examples)]
    title = html.escape(f"edflow explore: {source.text}")
    sections = "\n".join(_example_section(index, row) for index, row in zip(indices, cells))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{POLICY}">
<meta name="generator" content="edflow explore">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<pre id="page-errors" hidden></pre>
<script>{WATCH}</script>
<h1>{title}</h1>
{_summary(source, length, indices, cells)}
<h2>examples</h2>
<input id="key-filter" type="search" placeholder="show only keys containing ..." aria-label="filter keys">
<div class="examples">
{sections}
</div>
<script>{FILTER}</script>
</body>
</html>
"""


def _example_section(index: int, row: Mapping[str, Cell]) -> str:
    entries = "\n".join(f'<tr class="entry" data-key="{html.escape(key)}" data-kind="{cell.kind}"><th>'
                        f'{html.escape(key)}</th><td>{cell.html}</td></tr>' for key, cell in row.items())
    return (f'<section class="example" id="example-{index}" data-index="{index}">\n<h2>example {index}</h2>\n'
            f'<table>\n{entries}\n</table>\n</section>')


def _summary(source: Source, length: int, indices: list[int], cells: list[dict]) -> str:
    """The dataset's class, size and description, the keys of the shown examples, its labels and the config."""
    import numpy as np

    from edcore.data import labels_of

    dataset = source.dataset
    labels = labels_of(dataset)
    cls = type(dataset)
    rows = [("dataset", "dataset-class", f"{cls.__module__}.{cls.__qualname__}"),
            (source.kind, "dataset-source", source.text),
            ("examples", "dataset-length", str(length)),
            ("shown", "dataset-shown", _ranges(indices))]
    description = getattr(dataset, "description", None)
    if isinstance(description, str) and description:
        rows.append(("description", "dataset-description", description))
    table = "\n".join(f'<tr><th>{html.escape(name)}</th><td id="{ident}">{html.escape(value)}</td></tr>'
                      for name, ident, value in rows)
    kinds: dict[str, list[str]] = {}
    for row in cells:
        for key, cell in row.items():
            seen = kinds.setdefault(key, [])
            if cell.type_text not in seen:
                seen.append(cell.type_text)
    keys = "\n".join(f'<tr class="key" data-key="{html.escape(key)}"><th>{html.escape(key)}</th><td>'
                     f'{html.escape(" or ".join(types[:3]) + (" ..." if len(types) > 3 else ""))}</td><td>'
                     f'{"label" if key in labels else ""}</td></tr>' for key, types in kinds.items())
    parts = [f'<table class="summary">\n{table}\n</table>',
             f'<h2>keys</h2>\n<table class="keys">\n<tr><th>key</th><th>type in the shown examples</th><th></th></tr>'
             f'\n{keys}\n</table>']
    if labels:
        label_rows = "\n".join(
            f'<tr class="label" data-key="{html.escape(key)}"><th>{html.escape(key)}</th><td>'
            f'{html.escape(str(getattr(values, "dtype", type(values).__name__)))}</td><td>'
            f'{html.escape(str(np.shape(values)))}</td></tr>' for key, values in labels.items())
        parts.append(f'<h2>labels</h2>\n<table class="labels">\n<tr><th>label</th><th>dtype</th><th>shape</th></tr>\n'
                     f'{label_rows}\n</table>')
    if source.config is not None:
        from edcore.config import dump

        parts.append(f'<details class="config"><summary>the config</summary>\n<pre>'
                     f'{html.escape(dump(source.config.data))}</pre></details>')
    return "\n".join(parts)


def _ranges(indices: list[int]) -> str:
    """``0-3, 7, 9-10``: the shown indices, runs of consecutive ones joined."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
    return f"{len(indices)}: {text}"
