"""``edflow report``: one self-contained HTML page of real toy runs, loaded in headless Chromium without network."""
import base64
import re
import shutil
import subprocess
import sys

import pytest

from edcore.testing import TOY_CONFIG, TOY_PACKAGE

#: The toy iterator with its learning rate in the config and a logged image (a gradient the weights brighten).
TOY_WITH_IMAGES = {
    **TOY_PACKAGE,
    "toy/iterator.py": TOY_PACKAGE["toy/iterator.py"]
    .replace("self.w -= 0.1 * x.T", "self.w -= self.config['lr'] * x.T")
    .replace('return {"scalars": {"loss": float(np.mean((x @ self.w - y) ** 2))}}',
             'return {"scalars": {"loss": float(np.mean((x @ self.w - y) ** 2))},\n'
             '                            "images": {"weights": np.tanh(np.outer(self.w, self.w))'
             '.reshape(1, 3, 3, 1)}}'),
    "toy/metrics.py": '''
        import numpy as np


        def mse(eval_dir, dataset, outputs, config):
            targets = np.array([dataset[i]["y"] for i in range(len(dataset))])
            return {"mse": float(np.mean((outputs["prediction"] - targets) ** 2))}
    ''',
}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(autouse=True)
def own_toy_modules():
    """The in-process trainings here import a toy package of their own: forget any other before, and this one after
    (the other tests' toy iterator has no learning rate in the config)."""
    def forget():
        for name in [n for n in sys.modules if n == "toy" or n.startswith("toy.")]:
            del sys.modules[name]

    forget()
    yield
    forget()


@pytest.fixture
def two_runs(edflow_project):
    config = {**TOY_CONFIG, "lr": 0.1, "num_steps": 10, "log_freq": 2, "ckpt_freq": 10}
    runs = [edflow_project.train("-n", name, "--lr", lr, files=TOY_WITH_IMAGES, config=config).run
            for name, lr in (("fast", "0.1"), ("slow", "0.02"))]
    edflow_project.write({"eval.yaml": "dataset: toy.data.Data\niterator: toy.iterator.Iterator\nbatch_size: 8\n"
                                       "lr: 0.1\neval_callbacks:\n  error: toy.metrics.mse\n"})
    edflow_project.run("-e", "eval.yaml", "-p", str(runs[0]), "--progress", "false", timeout=120).assert_success()
    return runs


def tree(folder):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def test_the_page_holds_everything_inline(edflow_project, two_runs):
    before = [tree(run) for run in two_runs]
    outcome = edflow_project.run("report", "logs", "-o", "out/report.html", timeout=120).assert_success()
    assert outcome.stdout.startswith("wrote out/report.html (2 runs, ")
    text = (edflow_project.path / "out" / "report.html").read_text()
    assert [tree(run) for run in two_runs] == before  # nothing written into the runs

    # nothing loaded from a file or the network (plotly.js itself mentions URLs it never fetches for line charts;
    # the Chromium test below loads the page with an unreachable proxy)
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|<img[^>]+src=\"(?!data:)", text)
    assert text.count("<script") == 3  # plotly.js and the two charts
    for name in ("loss", "eval\\u002feval\\u002ferror\\u002fmse"):  # plotly writes "/" as \u002f
        assert f'"title":{{"text":"{name}"}}' in text  # a chart's title, with its data inline
    assert text.count('class="plotly-graph-div"') == 2
    # config differences: lr, and not the keys the runs share
    assert re.search(r"<td>lr</td><td class=number>0.1</td><td class=number>0.02</td>", text)
    assert "<td>seed</td>" not in text
    # the newest image of each run, inline, as written in train/images/weights/
    for run in two_runs:
        newest = sorted((run / "train" / "images" / "weights").glob("*.png"))[-1]
        assert base64.b64encode(newest.read_bytes()).decode() in text
        assert f"{run.name}: weights at global step 10" in text
    # the evaluation of the first run, one row per evaluated checkpoint
    assert re.search(rf"<td>{two_runs[0].name}</td><td>eval</td><td class=number>10</td><td class=number>error/mse"
                     rf"</td><td class=number>\d", text)


#: Put before everything else in the page's head: script errors and the load event are written into the DOM.
RECORDER = ("<script>window.onerror = function (message, source, line) { var root = document.documentElement;"
            " root.setAttribute('data-script-errors', (root.getAttribute('data-script-errors') || '') + message +"
            " ' (line ' + line + '); '); };"
            " window.addEventListener('load', function () { document.documentElement.setAttribute('data-loaded',"
            " 'yes'); });</script>")


def dump_dom(page, tmp_path):
    """The DOM of ``page`` after it loaded in headless Chromium (with the error recorder in front), offline."""
    checked = tmp_path / f"checked-{page.name}"
    checked.write_text(page.read_text().replace("<head>", "<head>" + RECORDER, 1))
    result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=10000",
                             "--proxy-server=127.0.0.1:9", "--dump-dom", checked.as_uri()],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_the_page_loads_in_headless_chromium_and_draws_the_curves(edflow_project, two_runs, tmp_path):
    edflow_project.run("report", *map(str, two_runs), timeout=120).assert_success()
    dom = dump_dom(edflow_project.path / "report.html", tmp_path)
    root = re.search(r"<html[^>]*>", dom).group(0)  # where the recorder writes
    assert 'data-loaded="yes"' in root and "data-script-errors" not in root, root
    assert dom.count('class="main-svg"') >= 4  # plotly drew both charts (two SVG layers each)
    paths = re.findall(r'<path class="js-line" d="(M[^"]+)"', dom)
    legend = [d for d in paths if re.fullmatch(r"M5,0h30", d)]
    curves = [d.count("L") + 1 for d in paths if d not in legend]
    assert len(legend) == 3  # the legends: two runs for loss, one for the evaluation
    assert curves == [6, 6, 1]  # loss of both runs at steps 1, 2, 4, ..., 10; the mse of checkpoint 10
    assert "global step" in dom and two_runs[1].name in dom  # axis title and legend
    # the recorder is no decoration: a broken script shows up
    broken = tmp_path / "broken.html"
    page = (edflow_project.path / "report.html").read_text()
    broken.write_text(page.replace("</body>", "<script>undefinedCall();</script></body>"))
    assert "undefinedCall is not defined" in re.search(r"<html[^>]*>", dump_dom(broken, tmp_path)).group(0)


def test_bad_input(edflow_project, two_runs):
    outcome = edflow_project.run("report", "logs", "-o", "report.png", timeout=60).assert_failed(2)
    assert "use a name ending in .html" in outcome.stderr
    before = tree(two_runs[0])
    outcome = edflow_project.run("report", str(two_runs[0]), "-o", str(two_runs[0] / "r.html"), timeout=60)
    assert "a report never writes into a run" in outcome.assert_failed(2).stderr and tree(two_runs[0]) == before
    metrics = two_runs[1] / "train" / "metrics.jsonl"
    metrics.write_text(metrics.read_text().replace('"loss"', '"error"'))
    outcome = edflow_project.run("report", "logs", timeout=60).assert_failed(2)
    assert "the runs have no metric in common" in outcome.stderr and "Traceback" not in outcome.stderr
    assert not (edflow_project.path / "report.html").exists()


def test_missing_plotly_is_named_with_the_extra(two_runs, edflow_project, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "plotly" or m.startswith("plotly.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "plotly", None)  # import plotly now raises ImportError
    from edcore import cli

    output = edflow_project.path / "r.html"
    assert cli.main(["report", *map(str, two_runs), "-o", str(output)]) == 1
    error = capsys.readouterr().err
    assert "edflow report needs plotly" in error and "pip install 'edcore[report]'" in error
    assert not output.exists()
