"""Images and histograms from the log op, written by the real ``edflow`` command and read back as a user would: the
PNGs with Pillow, the TensorBoard events with tensorboard's own EventAccumulator. The torch and TensorFlow tensors
are covered in the backends' tests (test_torch_media.py, test_tf_media.py)."""
import io

import numpy as np
import pytest
from PIL import Image

from edcore import media

pytest.importorskip("tensorboard")

# Every image of a batch is filled with one value, image i with VALUES[i], so a grid's cells show the layout.
PROJECT = {
    "pics/__init__.py": "",
    "pics/data.py": '''
        import numpy as np


        class Data:
            def __init__(self, config):
                self.n = 16

            def __len__(self):
                return self.n

            def __getitem__(self, index):
                return {"x": np.float32(index), "index": index}
    ''',
    "pics/iterator.py": '''
        import numpy as np
        from edcore import TemplateIterator


        def batch(n, h, w, c, low, high, dtype):
            """n images (N, H, W, C), image i filled with the i-th of n evenly spaced values in [low, high]."""
            values = np.linspace(low, high, n).astype(dtype)
            return np.ones((n, h, w, c), dtype) * values[:, None, None, None]


        class Iterator(TemplateIterator):
            def step_op(self, model, x, index):
                def train_op():
                    pass

                def log_op():
                    n = len(x)
                    return {
                        "scalars": {"mean": float(np.mean(x))},
                        "images": {
                            "float_nhwc": batch(n, 4, 6, 3, -1.0, 1.0, np.float32),       # RGB, channels last
                            "uint8_nchw": batch(n, 5, 3, 1, 0, 255, np.uint8).transpose(0, 3, 1, 2),  # grey
                            "rgba": batch(n, 2, 2, 4, -1.0, 1.0, np.float64),
                            "single": np.full((7, 8), 2.0),                                  # clipped to 1
                            "nested": {"inner": batch(2, 3, 3, 1, -1.0, 1.0, np.float32)},
                            "bad_shape": np.zeros((n, 5, 2)),
                            "bad_dtype": np.zeros((n, 4, 4, 3), np.int32),
                        },
                        "histograms": {"x": x, "weights": np.arange(100.0)},
                        "audio": np.zeros(10),
                    }

                def eval_op():
                    return {"x": x}

                return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
    ''',
    "pics/callbacks.py": '''
        def mean(root, dataset, outputs, config):
            return {"mean_x": float(outputs["x"].mean())}
    ''',
}

CONFIG = {"dataset": "pics.data.Data", "iterator": "pics.iterator.Iterator", "batch_size": 8, "num_steps": 4,
          "log_freq": 2, "ckpt_freq": 4, "seed": 0, "tensorboard": True, "shuffle": False}
EVAL = {"eval_callbacks": {"mean": "pics.callbacks.mean"}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from edcore.testing import EdflowProject

    project = EdflowProject(tmp_path_factory.mktemp("media"))
    project.write(PROJECT)
    project.config("base.yaml", **CONFIG)
    project.config("train.yaml", num_steps=4)
    project.config("eval.yaml", **EVAL)
    outcome = project.run("-b", "base.yaml", "-t", "train.yaml", "-e", "eval.yaml").assert_success()
    (run,) = project.runs()
    return project, run, outcome


def cells(path, rows, columns, height, width, padding=2):
    """The image at ``path`` as an array, after checking its size, and its cells (row-major); the ``padding``
    pixels between the cells must be white."""
    image = Image.open(path)
    assert image.size == (columns * (width + padding) - padding, rows * (height + padding) - padding)
    array = np.asarray(image)
    found, mask = [], np.ones(array.shape[:2], bool)
    for r in range(rows):
        for c in range(columns):
            top, left = r * (height + padding), c * (width + padding)
            found.append(array[top:top + height, left:left + width])
            mask[top:top + height, left:left + width] = False
    assert (array[mask] == 255).all()
    return image, found


def test_each_logged_step_writes_one_png_grid_per_key_named_by_step(trained):
    _, run, _ = trained
    folder = run / "train" / "images"
    assert sorted(p.name for p in (folder / "float_nhwc").iterdir()) == ["0000000001.png", "0000000002.png",
                                                                      "0000000004.png"]
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png") if p.stem == "0000000004") == [
        "float_nhwc/0000000004.png", "nested/inner/0000000004.png", "rgba/0000000004.png",
        "single/0000000004.png", "uint8_nchw/0000000004.png"]


def test_a_float_batch_in_minus_one_to_one_becomes_a_square_grid_row_by_row(trained):
    _, run, _ = trained
    # 8 images of 4x6 (NHWC) -> 3 columns, 3 rows, the last cell black
    image, grid = cells(run / "train" / "images" / "float_nhwc" / "0000000004.png", 3, 3, 4, 6)
    assert image.mode == "RGB"
    expected = np.rint((np.linspace(-1, 1, 8) + 1) * 127.5).astype(np.uint8)
    assert [int(cell[0, 0, 0]) for cell in grid[:8]] == expected.tolist()
    assert expected[0] == 0 and expected[-1] == 255
    assert all((cell == cell[0, 0]).all() for cell in grid)  # each cell one value
    assert (grid[8] == 0).all()


def test_uint8_channels_first_keeps_its_values_and_is_grey(trained):
    _, run, _ = trained
    image, grid = cells(run / "train" / "images" / "uint8_nchw" / "0000000004.png", 3, 3, 5, 3)
    assert image.mode == "L"
    assert [int(cell[0, 0]) for cell in grid[:8]] == np.linspace(0, 255, 8).astype(np.uint8).tolist()


def test_rgba_and_a_single_image_and_nested_keys(trained):
    _, run, _ = trained
    image, grid = cells(run / "train" / "images" / "rgba" / "0000000004.png", 3, 3, 2, 2)
    assert image.mode == "RGBA" and grid[7][0, 0].tolist() == [255] * 4
    image, (single,) = cells(run / "train" / "images" / "single" / "0000000004.png", 1, 1, 7, 8)
    assert image.mode == "L" and (single == 255).all()  # 2.0 is clipped to 1.0
    cells(run / "train" / "images" / "nested" / "inner" / "0000000004.png", 1, 2, 3, 3)


def test_bad_images_and_unknown_keys_are_warned_once_and_training_goes_on(trained):
    _, run, outcome = trained
    log = (run / "train" / "log.txt").read_text()
    assert log.count("logged image 'bad_shape' has shape (8, 5, 2)") == 1
    assert "(N, H, W, C) or (N, C, H, W)" in log
    assert log.count("logged image 'bad_dtype' of shape (8, 4, 4, 3) has dtype int32") == 1
    assert log.count("the log op returned 'audio', which edflow does not write") == 1
    assert not (run / "train" / "images" / "bad_shape").exists()
    assert "Traceback" not in outcome.stderr
    assert [r["global_step"] for r in trained[0].metrics(run)] == [1, 2, 4]


def test_tensorboard_holds_the_same_images_and_the_histograms(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run, _ = trained
    events = EventAccumulator(str(run / "tensorboard" / "train"), size_guidance={"images": 0, "histograms": 0})
    events.Reload()
    assert len(list((run / "tensorboard" / "train").iterdir())) == 1  # scalars and images share one event file
    assert set(events.Tags()["images"]) == {"float_nhwc", "uint8_nchw", "rgba", "single", "nested/inner"}
    images = events.Images("float_nhwc")
    assert [e.step for e in images] == [1, 2, 4]
    assert (images[-1].width, images[-1].height) == (3 * 6 + 2 * 2, 3 * 4 + 2 * 2)
    png = run / "train" / "images" / "float_nhwc" / "0000000004.png"
    assert (np.asarray(Image.open(io.BytesIO(images[-1].encoded_image_string))) == np.asarray(Image.open(png))).all()
    assert [e.step for e in events.Scalars("mean")] == [1, 2, 4]
    weights = events.Histograms("weights")
    assert [e.step for e in weights] == [1, 2, 4]
    histogram = weights[-1].histogram_value
    assert (histogram.min, histogram.max, histogram.num, histogram.sum) == (0.0, 99.0, 100.0, 4950.0)
    assert sum(histogram.bucket) == 100 and len(histogram.bucket_limit) == 30


def test_an_evaluation_writes_the_first_batch_of_each_pass_and_its_metrics_to_eval_name(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run, _ = trained
    (folder,) = (run / "eval").iterdir()
    png = folder / "0000000004" / "images" / "float_nhwc" / "0000000004.png"
    cells(png, 3, 3, 4, 6)
    events = EventAccumulator(str(run / "tensorboard" / "eval_eval"), size_guidance={"images": 0})
    events.Reload()
    assert [e.step for e in events.Images("float_nhwc")] == [4]
    assert [e.step for e in events.Scalars("mean/mean_x")] == [4]
    assert len(list((run / "tensorboard" / "eval_eval").iterdir())) == 1


def test_max_per_grid_limits_the_grid(edflow_project):
    edflow_project.write(PROJECT)
    edflow_project.config("train.yaml", **{**CONFIG, "num_steps": 1, "tensorboard": False,
                                           "images": {"max_per_grid": 4, "padding": 0}})
    edflow_project.run("-t", "train.yaml").assert_success()
    (run,) = edflow_project.runs()
    image, grid = cells(run / "train" / "images" / "float_nhwc" / "0000000001.png", 2, 2, 4, 6, padding=0)
    assert [int(cell[0, 0, 0]) for cell in grid] == np.rint((np.linspace(-1, 1, 8)[:4] + 1) * 127.5).tolist()
    assert not (run / "tensorboard").exists()


def test_a_bad_max_per_grid_is_a_config_error_naming_the_key(edflow_project):
    edflow_project.write(PROJECT)
    edflow_project.config("train.yaml", **{**CONFIG, "images": {"max_per_grid": 0}})
    outcome = edflow_project.run("-t", "train.yaml")
    assert outcome.returncode == 2
    assert "train.yaml:11, key 'images/max_per_grid'" in outcome.stderr and "Traceback" not in outcome.stderr


@pytest.mark.parametrize("shape, layout", [
    ((2, 5, 6, 3), (2, 5, 6, 3)),  # NHWC
    ((2, 3, 5, 6), (2, 5, 6, 3)),  # NCHW
    ((2, 4, 4, 3), (2, 4, 4, 3)),  # both fit: the smaller axis is the channel axis
    ((2, 3, 4, 4), (2, 4, 4, 3)),
    ((2, 3, 8, 3), (2, 3, 8, 3)),  # a tie: channels last, as in EDFlow
    ((5, 6, 1), (1, 5, 6, 1)),
    ((4, 5, 6), (1, 5, 6, 4)),
    ((5, 6), (1, 5, 6, 1)),
])
def test_accepted_layouts(shape, layout):
    assert media.as_nhwc("k", np.zeros(shape)).shape == layout


@pytest.mark.parametrize("shape", [(5,), (2, 5, 6), (2, 5, 6, 2), (1, 2, 3, 4, 5), (0, 4, 4, 3)])
def test_impossible_shapes_name_the_key_and_the_shape(shape):
    with pytest.raises(media.ImageError, match=rf"'k' has shape \({shape[0]},"):
        media.as_nhwc("k", np.zeros(shape))


def test_the_value_mapping():
    values = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0, np.nan], np.float32)
    assert media.to_uint8("k", values).tolist() == [0, 0, 128, 191, 255, 255, 0]
    assert media.to_uint8("k", np.array([True, False])).tolist() == [255, 0]
    with pytest.raises(media.ImageError, match="dtype int64"):
        media.to_uint8("k", np.zeros(3, np.int64))


def test_edflow_plot_shows_the_training_and_the_real_evaluation_side_by_side(trained):
    pytest.importorskip("matplotlib")
    from edcore.commands import plot
    from edcore.commands.runinfo import metric_series

    project, run, _ = trained
    outcome = project.run("plot", str(run), "-o", "curves.png", timeout=120).assert_success()
    assert outcome.stdout.strip() == "wrote curves.png (2 metrics, 1 run)"
    figure = plot.make_figure(metric_series(run))
    assert [axes.get_title() for axes in figure.axes] == ["train: mean", "eval/eval: mean/mean_x"]
    train, evaluation = figure.axes
    assert list(train.get_lines()[0].get_xdata()) == [1, 2, 4]
    assert list(evaluation.get_lines()[0].get_xdata()) == [4]
