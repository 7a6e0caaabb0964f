"""``edflow explore``: the real command writes a page of a config's dataset, a MetaDataset and the outputs of a real
evaluation; headless Chromium renders each page, and the rendered DOM shows every example, every image decoded and
the labels, with no script error. Bad inputs exit 1 or 2 with one paragraph and write nothing."""
import base64
import io
import runpy
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edcore.data import write_meta_dataset

INSTALL_CHROMIUM = "apt-get install -y --no-install-recommends chromium"

#: A dataset whose examples hold an image (floats in [-1, 1], a batch of one, channels first), a photo (uint8, a
#: batch of one, channels last), a caption, an array of numbers and the label ``label``; an iterator to evaluate it.
SHAPES = {
    "shapes/__init__.py": "",
    "shapes/data.py": '''
        import numpy as np
        from edcore.data import Dataset


        class Shapes(Dataset):
            """``num`` examples; ``broken_index`` names one whose reading raises."""

            def __init__(self, config):
                self.num = config.get("num", 12)
                self.split = "test" if config.get("test_mode") else "train"
                self.broken = config.get("broken_index")
                self.labels = {"label": np.arange(self.num) % 3}

            def __len__(self):
                return self.num

            def get_example(self, index):
                if index == self.broken:
                    raise ValueError(f"example {index} is broken")
                rng = np.random.default_rng(index)
                return {"image": rng.uniform(-1, 1, (1, 3, 6, 5)).astype("float32"),
                        "photo": rng.integers(0, 256, (1, 4, 7, 3), dtype=np.uint8),
                        "caption": f"shape <{index}> of {self.split}",
                        "features": np.arange(4.0) * index}
    ''',
    "shapes/iterator.py": '''
        from edcore import TemplateIterator


        class Iterator(TemplateIterator):
            """Learns nothing; its eval op returns an image and a number per example."""

            def step_op(self, model, image, photo, caption, features, label):
                def train_op():
                    pass

                def eval_op():
                    return {"negative": -image, "score": label * 0.5}

                return {"train_op": train_op, "eval_op": eval_op}

            def save(self, path):
                pass

            def restore(self, path):
                pass
    ''',
    "train.yaml": "dataset: shapes.data.Shapes\nnum: 12\n",
}


def shapes(project):
    """The project's Shapes class, loaded from its file (not imported: the tests' modules stay as they are)."""
    return runpy.run_path(str(project.path / "shapes" / "data.py"))["Shapes"]


def float_pixels(array):
    """What a float image in [-1, 1] of shape (1, C, H, W) looks like as uint8 HxWxC."""
    return np.rint((np.clip(array[0].transpose(1, 2, 0), -1, 1) + 1) * 127.5).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# The rendered DOM


class Element:
    """An element of the DOM Chromium dumped: its tag, attributes, children and text."""

    def __init__(self, tag, attrs):
        self.tag, self.attrs, self.children = tag, dict(attrs), []

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, tag=None, cls=None, **attrs):
        """Descendants (and self) with this tag, CSS class and attribute values (``data_key`` is ``data-key``)."""
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [e for e in self.iter() if (tag is None or e.tag == tag)
                and (cls is None or cls in (e.attrs.get("class") or "").split())
                and all(e.attrs.get(name) == value for name, value in wanted.items())]

    def find(self, *args, **kwargs):
        (found,) = self.find_all(*args, **kwargs)
        return found


class DomBuilder(HTMLParser):
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        element = Element(tag, attrs)
        self.stack[-1].children.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_endtag(self, tag):
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(text):
    builder = DomBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


def chromium():
    """The Chromium executable; its absence fails the test (it is part of the test setup, see the README)."""
    found = shutil.which("chromium") or (Path("/usr/bin/chromium") if Path("/usr/bin/chromium").exists() else None)
    if found is None:
        pytest.fail(f"Chromium is not installed; the browser tests of edflow explore need it. Install it with: "
                    f"{INSTALL_CHROMIUM} (the README's test command does this).")
    return str(found)


def render(page, tmp_path, fragment=""):
    """The DOM of ``page`` after headless Chromium loaded it from file:// (scripts run, images decoded)."""
    profile = tmp_path / "chromium-profile"
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               "--disable-background-networking", f"--user-data-dir={profile}", "--dump-dom",
               page.resolve().as_uri() + fragment]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "</html>" in result.stdout, result.stderr[-3000:]
    return parse(result.stdout)


def assert_rendered_cleanly(dom):
    """No script error, every image decoded at the size it declares, nothing that would be fetched."""
    errors = dom.find(id="page-errors")
    assert errors.text() == "" and "hidden" in errors.attrs
    images = dom.find_all("img")
    assert images
    for img in images:
        assert img.attrs.get("data-loaded") == f"{img.attrs['data-width']}x{img.attrs['data-height']}", img.attrs
    assert all(e.attrs["src"].startswith("data:image/png;base64,") for e in dom.iter() if "src" in e.attrs)
    assert not dom.find_all("link") and not [e for e in dom.iter() if "href" in e.attrs]
    policy = dom.find("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert policy.startswith("default-src 'none'; img-src data:;")


def examples_of(dom):
    return dom.find_all("section", cls="example")


def entry(section, key):
    """The cell of ``key`` in an example's section."""
    return section.find("tr", cls="entry", data_key=key).find("td")


def cells(row):
    return [td.text() for td in row.find_all("td")]


def pixels(img):
    """The pixels of an ``<img>``'s inline PNG."""
    data = img.attrs["src"].removeprefix("data:image/png;base64,")
    return np.array(Image.open(io.BytesIO(base64.b64decode(data))))


def no_page_left(project, name="explore.html"):
    return not (project.path / name).exists() and not list(project.path.glob(f".{name}*"))


# ---------------------------------------------------------------------------------------------------------------
# (a) the dataset of a config


def test_a_configs_dataset_renders_with_its_images_labels_and_captions(edflow_project, tmp_path):
    edflow_project.write(SHAPES)
    outcome = edflow_project.run("explore", "train.yaml", "-n", "5", "-o", "pages/train.html", timeout=120)
    assert outcome.assert_success().stdout.strip() == "wrote pages/train.html (5 examples of Shapes, 12 in all)"

    dom = render(edflow_project.path / "pages" / "train.html", tmp_path)
    assert_rendered_cleanly(dom)
    sections = examples_of(dom)
    assert [s.attrs["data-index"] for s in sections] == ["0", "1", "2", "3", "4"]
    assert len(dom.find_all("img")) == 10  # image and photo of each
    for index, section in enumerate(sections):
        assert entry(section, "label").text() == str(index % 3)
        assert entry(section, "caption").text() == f"shape <{index}> of train"
        assert section.find("tr", data_key="image").attrs["data-kind"] == "image"
        features = entry(section, "features")
        assert features.find(cls="shape").text() == "float64 (4,)"
        assert features.find(cls="stats").text() == f"min 0, max {3 * index}, mean {1.5 * index:g}"
        assert features.find(cls="values").text().replace(" ", "") == f"[0.,{index}.,{2 * index}.,{3 * index}.]"

    example = shapes(edflow_project)({"num": 12})[3]
    third = sections[3]
    image, photo = entry(third, "image").find("img"), entry(third, "photo").find("img")
    assert np.array_equal(pixels(image), float_pixels(example["image"]))
    assert np.array_equal(pixels(photo), example["photo"][0])
    assert "pixelated" in image.attrs["class"] and image.attrs["width"] == str(5 * (128 // 6))  # scaled up

    assert dom.find(id="dataset-class").text() == "shapes.data.Shapes"
    assert dom.find(id="dataset-length").text() == "12"
    assert dom.find(id="dataset-shown").text() == "5: 0-4"
    assert cells(dom.find("tr", cls="key", data_key="image")) == ["image float32 (1, 3, 6, 5)", ""]
    assert cells(dom.find("tr", cls="key", data_key="label")) == ["int64", "label"]
    assert cells(dom.find("tr", cls="label", data_key="label")) == ["int64", "(12,)"]
    assert "num: 12" in dom.find("details", cls="config").text()


def test_bases_overrides_and_which_examples(edflow_project):
    edflow_project.write(SHAPES)
    edflow_project.write({"base.yaml": "dataset: shapes.data.Shapes\nnum: 12\n", "more.yaml": "num: 20\n"})

    def shown(*args):
        edflow_project.run("explore", *args, "-o", "page.html", timeout=120).assert_success()
        dom = parse((edflow_project.path / "page.html").read_text(encoding="utf-8"))
        return [int(s.attrs["data-index"]) for s in examples_of(dom)], dom

    indices, dom = shown("-b", "base.yaml", "more.yaml", "--num", "30", "--start", "27")
    assert indices == [27, 28, 29] and dom.find(id="dataset-length").text() == "30"
    assert shown("train.yaml", "--indices", "5,-1,0,11")[0] == [5, 11, 0]
    drawn, _ = shown("train.yaml", "--shuffle", "3", "-n", "4")
    assert len(set(drawn)) == 4 and drawn == sorted(drawn) and drawn != [0, 1, 2, 3]
    assert shown("train.yaml", "--shuffle", "3", "-n", "4")[0] == drawn  # the same seed draws the same
    _, dom = shown("train.yaml", "--eval", "-n", "1")  # made as an evaluation makes it: test_mode: true
    assert entry(examples_of(dom)[0], "caption").text() == "shape <0> of test"
    indices, dom = shown("shapes.data.Shapes", "--+num", "3")  # a dotted name, created as Shapes(config)
    assert indices == [0, 1, 2] and dom.find(id="dataset-source").text() == "shapes.data.Shapes"


def test_torch_tensors_are_converted_by_the_installed_backend(edflow_project):
    edflow_project.write({"tensors/__init__.py": "", "tensors/data.py": '''
        import torch


        class Tensors:
            def __len__(self):
                return 2

            def __init__(self, config):
                pass

            def __getitem__(self, index):
                image = torch.linspace(-1, 1, 48).reshape(3, 4, 4).to(torch.bfloat16)  # numpy has no bfloat16
                return {"image": image * (1 - 2 * index), "label": torch.tensor(index), "ragged": [[1], [1, 2]]}
    '''})
    edflow_project.run("explore", "tensors.data.Tensors", timeout=120).assert_success()
    sections = examples_of(parse((edflow_project.path / "explore.html").read_text(encoding="utf-8")))
    assert [entry(s, "label").text() for s in sections] == ["0", "1"]
    expected = float_pixels(np.linspace(-1, 1, 48, dtype=np.float32).reshape(1, 3, 4, 4))
    assert np.abs(pixels(entry(sections[0], "image").find("img")).astype(int) - expected).max() <= 1  # bfloat16
    assert entry(sections[1], "ragged").text() == "list: [[1], [1, 2]]"  # not an array: shown as it is


def test_the_key_filter_hides_the_other_keys(edflow_project, tmp_path):
    edflow_project.write(SHAPES)
    edflow_project.run("explore", "train.yaml", "-n", "2", timeout=120).assert_success()
    dom = render(edflow_project.path / "explore.html", tmp_path, fragment="#keys=Cap")
    rows = dom.find_all("tr", cls="entry")
    assert len(rows) == 2 * 5
    assert {r.attrs["data-key"] for r in rows if "hidden" not in r.attrs} == {"caption"}


def test_the_page_reports_script_errors_and_broken_images(edflow_project, tmp_path):
    """The checks above rely on the page's own reporting; it does report what goes wrong."""
    edflow_project.write(SHAPES)
    edflow_project.run("explore", "train.yaml", "-n", "1", timeout=120).assert_success()
    page = edflow_project.path / "explore.html"
    broken = ('<img src="data:image/png;base64,AAAA" alt="broken" onload="edflowLoaded(this)" '
              'onerror="edflowFailed(this)"><script>notDefinedAnywhere();</script></body>')
    page.write_text(page.read_text(encoding="utf-8").replace("</body>", broken), encoding="utf-8")
    dom = render(page, tmp_path)
    errors = dom.find(id="page-errors")
    assert "hidden" not in errors.attrs
    assert "notDefinedAnywhere is not defined" in errors.text() and "image 'broken' did not load" in errors.text()
    assert dom.find("img", alt="broken").attrs["data-loaded"] == "error"


# ---------------------------------------------------------------------------------------------------------------
# (b) a MetaDataset


def test_a_meta_dataset_renders_with_its_loaded_images_and_labels(edflow_project, tmp_path):
    folder = edflow_project.path / "digits_meta"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (6, 8, 8), dtype=np.uint8)
    for index, image in enumerate(grey):
        Image.fromarray(image).save(folder / "images" / f"{index}.png")
    write_meta_dataset(folder, {"image": [f"images/{i}.png" for i in range(6)], "class": np.arange(6) * 10,
                                "name": [f"digit {i}" for i in range(6)]},
                       description="six grey digits", loaders={"image": "image"})

    outcome = edflow_project.run("explore", "digits_meta", "-n", "4", timeout=120).assert_success()
    assert outcome.stdout.strip() == "wrote explore.html (4 examples of MetaDataset, 6 in all)"
    dom = render(edflow_project.path / "explore.html", tmp_path)
    assert_rendered_cleanly(dom)
    sections = examples_of(dom)
    assert len(sections) == 4 and len(dom.find_all("img")) == 4
    for index, section in enumerate(sections):
        assert entry(section, "class").text() == str(index * 10)
        assert entry(section, "name").text() == f"digit {index}"
    assert np.array_equal(pixels(entry(sections[2], "image").find("img")), grey[2])
    assert dom.find(id="dataset-description").text() == "six grey digits"
    assert dom.find(id="dataset-source").text() == "digits_meta"
    assert [r.attrs["data-key"] for r in dom.find_all("tr", cls="label")] == ["image", "class", "name"]


# ---------------------------------------------------------------------------------------------------------------
# (c) the outputs of a real evaluation


def test_the_outputs_of_a_real_evaluation_render(edflow_project, tmp_path):
    edflow_project.write(SHAPES)
    run_settings = "iterator: shapes.iterator.Iterator\nbatch_size: 4\ntensorboard: false\nprogress: false\n"
    edflow_project.write({"run.yaml": "dataset: shapes.data.Shapes\nnum: 12\nnum_steps: 3\nseed: 0\n" + run_settings,
                          "eval.yaml": "dataset: shapes.data.Shapes\nnum: 12\n" + run_settings})
    edflow_project.run("-t", "run.yaml", "-e", "eval.yaml", timeout=300).assert_success()
    (run,) = edflow_project.runs()
    (evaluation,) = (run / "eval").iterdir()
    folder = evaluation / f"{3:010d}"

    outcome = edflow_project.run("explore", str(folder), "-n", "6", timeout=120).assert_success()
    assert outcome.stdout.strip() == "wrote explore.html (6 examples of MetaDataset, 12 in all)"
    dom = render(edflow_project.path / "explore.html", tmp_path)
    assert_rendered_cleanly(dom)
    sections = examples_of(dom)
    assert len(sections) == 6 and len(dom.find_all("img")) == 6
    for index, section in enumerate(sections):
        assert entry(section, "score").text() == f"{(index % 3) * 0.5:g}"
    stored = np.load(folder / "negative.npy")
    assert stored.shape == (12, 1, 3, 6, 5)
    assert np.array_equal(pixels(entry(sections[4], "negative").find("img")), float_pixels(stored[4]))
    assert dom.find(id="dataset-description").text() == "outputs of evaluation 'eval' at global step 3"

    page = (edflow_project.path / "explore.html").read_text(encoding="utf-8")
    above = edflow_project.run("explore", str(evaluation), timeout=120).assert_failed(2)
    assert f"is an evaluation folder; explore the outputs of one of its checkpoints, like {folder}" in above.stderr
    assert (edflow_project.path / "explore.html").read_text(encoding="utf-8") == page  # left as it was


# ---------------------------------------------------------------------------------------------------------------
# Bad input: one paragraph, exit 2 (usage, config) or 1 (user code), nothing written


def assert_one_paragraph(outcome, code, *fragments):
    outcome.assert_failed(code)
    assert outcome.stdout == "" and "Traceback" not in outcome.stderr, outcome
    assert outcome.stderr.startswith("edflow: error: ") and outcome.stderr.count("\n") == 1, outcome
    for fragment in fragments:
        assert fragment in outcome.stderr, outcome


def test_bad_inputs_name_the_file_key_or_index_and_write_nothing(edflow_project):
    edflow_project.write(SHAPES)
    edflow_project.write({"nodata.yaml": "iterator: shapes.iterator.Iterator\nnum: 3\n",
                          "wrong.yaml": "num: 3\ndataset: shapes.data.Shapez\n",
                          "broken.yaml": "dataset: shapes.data.Shapes\nbroken_index: 2\n"})
    explore = lambda *args: edflow_project.run("explore", *args, timeout=120)  # noqa: E731

    assert_one_paragraph(explore("nodata.yaml"), 2, "nodata.yaml has no key 'dataset'")
    assert_one_paragraph(explore("wrong.yaml"), 2, "wrong.yaml:2, key 'dataset'", "'shapes.data.Shapez'",
                         "Close names: Shapes")
    assert_one_paragraph(explore("shapes.nothing.Data"), 2, "command line `edflow explore shapes.nothing.Data`",
                         "shapes.nothing")
    assert_one_paragraph(explore("missing.yaml"), 2, "config file 'missing.yaml' does not exist")
    assert_one_paragraph(explore("no/such/folder"), 2, "'no/such/folder' does not exist")
    assert_one_paragraph(explore("train.yaml", "--indices", "0,12"), 2,
                         "--indices: index 12 is out of range for Shapes (12 examples); valid indices are 0 to 11")
    assert_one_paragraph(explore("train.yaml", "--start", "12"), 2, "--start 12 is out of range")
    assert_one_paragraph(explore("train.yaml", "--nmu", "3"), 2, "override '--nmu 3'", "did you mean 'num'")
    assert_one_paragraph(explore("train.yaml", "-o", "page.png"), 2, "use a name ending in .html")
    assert_one_paragraph(explore("shapes"), 2, "'shapes' is neither a MetaDataset")
    assert_one_paragraph(explore("broken.yaml", "-n", "4"), 1, "Shapes (12 examples): reading example 2 raised "
                         "ValueError: example 2 is broken (at ", "shapes/data.py:", "in get_example)")
    assert no_page_left(edflow_project)

    (edflow_project.path / "explore.html").write_text("the page of an earlier run\n")
    debug = explore("broken.yaml", "--debug").assert_failed(1)
    assert "Traceback (most recent call last)" in debug.stderr and "example 2 is broken" in debug.stderr
    assert (edflow_project.path / "explore.html").read_text() == "the page of an earlier run\n"
    assert not list(edflow_project.path.glob(".explore.html*"))
