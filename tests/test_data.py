"""edcore.data: composing datasets, seeded augmentation, splits, datasets made from the config, MetaDatasets and
evaluation outputs read back as datasets."""
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from edcore.batching import NumpyBatches
from edcore.data import (
    ConcatenatedDataset,
    Dataset,
    ExampleConcatenatedDataset,
    MetaDataset,
    ProcessedDataset,
    RandomlyAugmented,
    SubDataset,
    split,
    write_meta_dataset,
)
from edcore.errors import ConfigError, DataError
from edcore.outputs import OutputWriter, load_outputs


class Numbers(Dataset):
    """``n`` examples ``{"x": float[2]}`` with the labels ``number`` and ``name``; created from a config too."""

    def __init__(self, config=None, n=10):
        n = (config or {}).get("numbers", n)
        self.x = np.arange(2 * n, dtype=float).reshape(n, 2)
        self.labels = {"number": np.arange(n), "name": np.array([f"n{i}" for i in range(n)])}

    def __len__(self):
        return len(self.x)

    def get_example(self, index):
        return {"x": self.x[index]}


class Plain:
    """A dataset that does not derive from edcore.data.Dataset; its ``labels`` array is not a label dict."""

    labels = np.zeros(4)

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return {"p": index}


def jitter(example, rng):
    return {"x": example["x"] + rng.normal(size=2), "coin": rng.integers(2)}


def double(example):
    return {"twice": 2 * example["x"]}


def noise(seed, epoch, index):
    """What RandomlyAugmented(..., jitter, seed) adds to example ``index`` in ``epoch``, computed independently."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, index])).normal(size=2)


# ---------------------------------------------------------------------------------------------------------------
# The base class and the composition classes


def test_examples_are_get_example_with_their_labels_and_indices_are_checked():
    numbers = Numbers()
    assert len(numbers) == 10 and repr(numbers) == "Numbers (10 examples)"
    assert numbers[3] == {"number": 3, "name": "n3", "x": pytest.approx([6.0, 7.0])}
    assert numbers[-1]["number"] == 9 and numbers[np.int64(2)]["number"] == 2
    with pytest.raises(IndexError, match=r"Numbers \(10 examples\): index 10 is out of range; valid indices are 0 "
                                         r"to 9 \(or -10 to -1\)"):
        numbers[10]
    with pytest.raises(IndexError, match="index -11 is out of range"):
        numbers[-11]
    with pytest.raises(TypeError, match="index 1.5 is not an integer"):
        numbers[1.5]
    assert [example["number"] for example in numbers] == list(range(10))  # iteration stops at the IndexError


def test_the_examples_own_keys_win_over_labels_and_bad_labels_or_examples_are_named():
    class Overriding(Numbers):
        def get_example(self, index):
            return {"x": self.x[index], "name": "own"}

    assert Overriding()[0]["name"] == "own"

    numbers = Numbers()
    numbers.labels = np.zeros(10)
    with pytest.raises(DataError, match="Numbers.labels is a ndarray; labels are a dict of arrays"):
        numbers[0]

    class NotADict(Numbers):
        def get_example(self, index):
            return [index]

    with pytest.raises(DataError, match=r"NotADict.get_example\(0\) returned list; examples are dicts"):
        NotADict()[0]


def test_a_sub_dataset_takes_indices_lists_ranges_slices_and_config_ranges():
    numbers = Numbers()
    sub = SubDataset(numbers, [7, 2, -1])
    assert len(sub) == 3 and [sub[i]["number"] for i in range(3)] == [7, 2, 9]
    assert sub.labels["number"].tolist() == [7, 2, 9] and sub.labels["name"].tolist() == ["n7", "n2", "n9"]
    assert SubDataset(numbers, range(2, 5)).indices.tolist() == [2, 3, 4]
    assert SubDataset(numbers, slice(None, None, 4)).indices.tolist() == [0, 4, 8]
    assert SubDataset(numbers, {"start": 8}).indices.tolist() == [8, 9]
    assert len(SubDataset(numbers, [])) == 0
    with pytest.raises(IndexError, match=r"SubDataset of Numbers \(10 examples\): index 12 is out of range; valid "
                                         r"indices are 0 to 9"):
        SubDataset(numbers, [1, 12])
    with pytest.raises(IndexError, match=r"SubDataset \(3 examples\): index 3 is out of range"):
        sub[3]
    with pytest.raises(DataError, match="indices must be a list of integers, a range or a slice"):
        SubDataset(numbers, [0.5])
    with pytest.raises(DataError, match=r"has the keys \['end'\]; a range of indices has only start, stop and step"):
        SubDataset(numbers, {"end": 3})


def test_plain_datasets_compose_and_their_label_arrays_are_left_alone():
    sub = SubDataset(Plain(), [3, 1])
    assert sub.labels == {} and [sub[0], sub[1]] == [{"p": 3}, {"p": 1}]


def test_concatenated_datasets_follow_each_other_and_keep_the_labels_all_of_them_have():
    numbers, plain = Numbers(n=3), Plain()
    both = ConcatenatedDataset(numbers, SubDataset(numbers, []), Numbers(n=2))
    assert len(both) == 5 and [both[i]["number"] for i in range(5)] == [0, 1, 2, 0, 1]
    assert both.labels["number"].tolist() == [0, 1, 2, 0, 1]
    mixed = ConcatenatedDataset(numbers, plain)
    assert len(mixed) == 7 and mixed.labels == {} and mixed[3] == {"p": 0} and mixed[-1] == {"p": 3}
    with pytest.raises(IndexError, match=r"ConcatenatedDataset \(7 examples\): index 7 is out of range"):
        mixed[7]


def test_example_concatenation_merges_keys_and_refuses_keys_of_two_datasets():
    numbers = Numbers(n=4)
    side_by_side = ExampleConcatenatedDataset(numbers, ProcessedDataset(numbers, double, update=False), Plain())
    example = side_by_side[1]
    assert example["number"] == 1 and example["p"] == 1 and example["twice"] == pytest.approx([4.0, 6.0])
    assert set(side_by_side.labels) == {"number", "name"}  # equal labels of a common dataset are shared
    with pytest.raises(DataError, match=r"the key 'x' is in example 0 of dataset 0 \(Numbers \(4 examples\)\) and of "
                                        r"dataset 1 \(Numbers \(4 examples\)\); keys must differ"):
        ExampleConcatenatedDataset(numbers, numbers)[0]
    with pytest.raises(DataError, match="the key 'number' is in the labels of dataset 0"):
        ExampleConcatenatedDataset(numbers, SubDataset(Numbers(n=5), [4, 3, 2, 1]))
    with pytest.raises(DataError, match=r"the datasets have \[4, 10\] examples"):
        ExampleConcatenatedDataset(numbers, Numbers())


def test_a_processed_dataset_merges_or_replaces_and_checks_what_the_function_returns():
    numbers = Numbers(n=3)
    assert set(ProcessedDataset(numbers, double)[2]) == {"number", "name", "x", "twice"}
    assert set(ProcessedDataset(numbers, double, update=False)[2]) == {"number", "name", "twice"}  # labels stay
    with pytest.raises(DataError, match="<lambda> returned int for example 1; it must return a dict"):
        ProcessedDataset(numbers, lambda example: 3)[1]
    with pytest.raises(DataError, match="function must be callable"):
        ProcessedDataset(numbers, "double")


def test_augmentation_is_a_function_of_seed_epoch_and_index_only():
    numbers = Numbers()
    augmented = RandomlyAugmented(numbers, jitter, seed=3)
    first = augmented[4]["x"]
    assert np.array_equal(first, numbers.x[4] + noise(3, 0, 4))
    assert np.array_equal(augmented[4]["x"], first)  # asking again draws the same
    assert np.array_equal(RandomlyAugmented(numbers, jitter, seed=3)[4]["x"], first)
    assert not np.array_equal(RandomlyAugmented(numbers, jitter, seed=4)[4]["x"], first)
    assert not np.array_equal(augmented[5]["x"] - numbers.x[5], first - numbers.x[4])
    wrapped = SubDataset(augmented, [4])
    wrapped.set_epoch(2)  # reaches the datasets a dataset is made of
    assert augmented.epoch == 2 and np.array_equal(wrapped[0]["x"], numbers.x[4] + noise(3, 2, 4))
    with pytest.raises(DataError, match="seed must be an integer >= 0"):
        RandomlyAugmented(numbers, jitter, seed=-1)


def test_batches_tell_the_epoch_so_a_resumed_epoch_draws_what_the_whole_epoch_drew():
    augmented = RandomlyAugmented(Numbers(n=12), jitter, seed=5)
    batches = NumpyBatches(augmented, 3, seed=1, shuffle=True)
    epoch_1 = list(batches.epoch(1))
    resumed = list(NumpyBatches(augmented, 3, seed=1, shuffle=True).epoch(1, start=2))
    for expected, batch in zip(epoch_1[2:], resumed, strict=True):
        assert np.array_equal(batch["x"], expected["x"]) and np.array_equal(batch["coin"], expected["coin"])
    for batch in epoch_1:
        assert np.array_equal(batch["x"], np.stack([augmented.dataset.x[i] + noise(5, 1, i) for i in batch["number"]]))
    epoch_0 = {int(i): x for batch in batches.epoch(0) for i, x in zip(batch["number"], batch["x"])}
    assert not any(np.array_equal(epoch_0[int(i)], x) for batch in epoch_1 for i, x in zip(batch["number"], batch["x"]))


def test_split_is_disjoint_complete_sorted_and_the_same_for_the_same_seed():
    numbers = Numbers(n=101)
    train, held_out = split(numbers, [0.8, 0.2], seed=4)
    assert (len(train), len(held_out)) == (81, 20)
    assert sorted(train.indices.tolist() + held_out.indices.tolist()) == list(range(101))
    assert train.indices.tolist() == sorted(train.indices.tolist())
    assert [part.indices.tolist() for part in split(numbers, [0.8, 0.2], seed=4)] == \
        [train.indices.tolist(), held_out.indices.tolist()]
    assert split(numbers, [0.8, 0.2], seed=5)[1].indices.tolist() != held_out.indices.tolist()
    assert split(numbers, [0.8, 0.2], seed=4, part=1).indices.tolist() == held_out.indices.tolist()
    assert held_out.labels["number"].tolist() == held_out.indices.tolist()
    for fractions in ([0.8, 0.1], [1.2, -0.2], [], "half"):
        with pytest.raises(DataError, match="fractions must be positive numbers that sum to 1"):
            split(numbers, fractions)
    with pytest.raises(DataError, match="part must be one of 0 to 1"):
        split(numbers, [0.5, 0.5], part=2)


# ---------------------------------------------------------------------------------------------------------------
# Datasets made from the config


NUMBERS = f"{__name__}.Numbers"


def test_a_config_names_the_datasets_and_their_arguments_in_sections_named_after_the_classes():
    config = {"seed": 7, "numbers": 12,
              "RandomlyAugmented": {"dataset": "edcore.data.SubDataset", "function": f"{__name__}.jitter"},
              "SubDataset": {"dataset": "edcore.data.split", "indices": {"stop": 4}},
              "split": {"dataset": NUMBERS, "fractions": [0.5, 0.5], "part": 1}}
    augmented = RandomlyAugmented(config)  # as edflow creates `dataset: edcore.data.RandomlyAugmented`
    assert augmented.seed == 7 and augmented.function is jitter  # the seed is the run's
    expected = split(Numbers(n=12), [0.5, 0.5], part=1).indices[:4]
    assert augmented.labels["number"].tolist() == expected.tolist()
    assert np.array_equal(augmented[0]["x"], Numbers(n=12).x[expected[0]] + noise(7, 0, 0))
    both = ConcatenatedDataset({"ConcatenatedDataset": {"datasets": [NUMBERS, NUMBERS]}})
    assert len(both) == 20


@pytest.mark.parametrize("config, message", [
    ({}, "config key 'SubDataset': SubDataset is created from the config, so the config needs a section 'SubDataset' "
         "with its arguments (dataset, indices)"),
    ({"SubDataset": {"dataset": NUMBERS}}, "the section 'SubDataset' has no 'indices', which SubDataset needs"),
    ({"SubDataset": {"dataset": NUMBERS, "indices": [0], "indexes": [1]}},
     "config key 'SubDataset/indexes': SubDataset takes no argument 'indexes'; its arguments are dataset, indices."),
    ({"SubDataset": {"dataset": 3, "indices": [0]}}, "config key 'SubDataset/dataset': expected the dotted name of "
                                                     "a dataset"),
    ({"SubDataset": {"dataset": "edcore.data.SubDataset", "indices": [0]}},
     "the section 'SubDataset' names, directly or through other sections, a dataset made from the section "
     "'SubDataset' again"),
])
def test_config_sections_with_a_missing_or_unknown_argument_are_named(config, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SubDataset(config)


def test_split_from_a_config_needs_its_part():
    with pytest.raises(ConfigError, match="the section 'split' has no 'part'"):
        split({"split": {"dataset": NUMBERS, "fractions": [0.5, 0.5]}})


TRAIN_ON_AUGMENTED = {
    "dataset": "edcore.data.RandomlyAugmented",
    "RandomlyAugmented": {"dataset": "toy.data.Data", "function": "toy.augment.jitter"},
}
TOY_FILES = {
    "toy/augment.py": '''
        def jitter(example, rng):
            return {"x": example["x"] + rng.normal(scale=0.01, size=3).astype("float32")}
    ''',
    # the README's callback (Evaluation)
    "toy/metrics.py": '''
        import numpy as np


        def mse(eval_dir, dataset, outputs, config):
            targets = np.array([dataset[i]["y"] for i in range(len(dataset))])
            return {"mse": float(np.mean((outputs["prediction"] - targets) ** 2))}
    ''',
}


def test_a_config_error_in_a_section_stops_edflow_before_the_run_folder_exists(edflow_project):
    edflow_project.toy(**TRAIN_ON_AUGMENTED)
    edflow_project.write(TOY_FILES)
    outcome = edflow_project.run("-t", "train.yaml", "--RandomlyAugmented/function", "toy.augment.jiter")
    outcome.assert_failed(2)
    assert ("command line `--RandomlyAugmented/function toy.augment.jiter`, key 'RandomlyAugmented/function': "
            "'toy.augment.jiter': module 'toy.augment' has no attribute or submodule 'jiter'. Close names: jitter."
            in outcome.stderr)
    outcome = edflow_project.run("-t", "train.yaml", "--+RandomlyAugmented/sed", "3").assert_failed(2)
    assert "key 'RandomlyAugmented/sed': RandomlyAugmented takes no argument 'sed'" in outcome.stderr
    assert edflow_project.runs() == []


# ---------------------------------------------------------------------------------------------------------------
# MetaDataset


def digits_folder(tmp_path, count=6):
    """``count`` PNG images and npy files in ``tmp_path/data``, with labels of several kinds."""
    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    (folder / "codes").mkdir()
    pixels = np.random.RandomState(0).randint(0, 256, size=(count, 5, 4, 3)).astype("uint8")
    for i in range(count):
        Image.fromarray(pixels[i]).save(folder / "images" / f"{i}.png")
        np.save(folder / "codes" / f"{i}.npy", np.full(i + 1, i))  # ragged: one file per example
    labels = {"image": [f"images/{i}.png" for i in range(count)], "code": [f"codes/{i}.npy" for i in range(count)],
              "class": np.arange(count) % 3, "keypoints": np.random.RandomState(1).rand(count, 17, 2),
              "name": [f"digit {i}" for i in range(count)]}
    return folder, labels, pixels


def test_a_meta_dataset_round_trip_with_mmapped_labels_and_lazily_loaded_files(tmp_path):
    folder, labels, pixels = digits_folder(tmp_path)
    written = write_meta_dataset(folder, labels, description="six digits", loaders={"image": "image", "code": "npy"})
    meta = yaml.safe_load((folder / "meta.yaml").read_text())
    assert meta == {"description": "six digits", "num_examples": 6, "loaders": {"image": "image", "code": "npy"},
                    "labels": {key: f"labels/{key}.npy" for key in labels}}

    dataset = MetaDataset(folder)
    assert len(dataset) == len(written) == 6 and dataset.description == "six digits"
    assert all(isinstance(values, np.memmap) for values in dataset.labels.values())
    assert dataset.labels["keypoints"].tolist() == labels["keypoints"].tolist()
    assert dataset.labels["image"].tolist() == labels["image"]  # loaded keys keep their paths as labels
    example = dataset[4]
    assert set(example) == set(labels)
    assert example["image"].dtype == np.uint8 and np.array_equal(example["image"], pixels[4])
    assert example["code"].tolist() == [4] * 5 and example["class"] == 1 and example["name"] == "digit 4"
    assert example["keypoints"].flags.writeable  # a copy: batches never hold the memory map

    images_only = ProcessedDataset(dataset, lambda example: {"image": example["image"]}, update=False)
    batch = next(NumpyBatches(SubDataset(images_only, [5, 0]), 2, seed=0, shuffle=False).epoch(0))
    assert batch["image"].shape == (2, 5, 4, 3) and batch["name"] == ["digit 5", "digit 0"]
    assert batch["code"] == ["codes/5.npy", "codes/0.npy"] and batch["keypoints"].shape == (2, 17, 2)
    with pytest.raises(IndexError, match=r"MetaDataset '.*data' \(6 examples\): index 6 is out of range"):
        dataset[6]

    # from a config, relative to where edflow runs
    config = {"MetaDataset": {"folder": str(folder)}}
    assert MetaDataset(config).labels["class"].tolist() == labels["class"].tolist()


def test_write_meta_dataset_refuses_what_it_could_not_read_back(tmp_path):
    folder, labels, _ = digits_folder(tmp_path)
    cases = [
        ({"a": [1, 2], "b": [1]}, {}, r"the labels have different numbers of entries \(\{'a': 2, 'b': 1\}\)"),
        ({"a": [{}, 1]}, {}, "label 'a' holds Python objects"),
        ({"a": 3}, {}, "label 'a' is a single value"),
        ({"../a": [1]}, {}, r"label key '../a' cannot be a file name"),
        ({"a": ["x.png"]}, {"a": "imgae"}, "unknown loader 'imgae' for 'a'; the loaders are image, npy"),
        ({"a": ["x.png"]}, {"b": "image"}, "loaders names 'b', which is not a label"),
    ]
    for number, (values, loaders, message) in enumerate(cases):
        with pytest.raises(DataError, match=message):
            write_meta_dataset(tmp_path / f"bad{number}", values, loaders=loaders)
        assert not (tmp_path / f"bad{number}" / "meta.yaml").exists()
    write_meta_dataset(folder, labels)
    with pytest.raises(DataError, match="meta.yaml' exists already; write_meta_dataset never overwrites"):
        write_meta_dataset(folder, {"class": [1]})


def test_bad_meta_datasets_name_the_file_and_the_key(tmp_path):
    folder, labels, _ = digits_folder(tmp_path)
    write_meta_dataset(folder, labels, loaders={"image": "image"})
    meta_file = folder / "meta.yaml"
    original = yaml.safe_load(meta_file.read_text())

    def broken(**changes):
        meta_file.write_text(yaml.safe_dump({**original, **changes}))
        with pytest.raises(DataError) as error:
            MetaDataset(folder)
        return str(error.value)

    assert broken(labels={**original["labels"], "class": "labels/missing.npy"}) == (
        f"{meta_file}, key 'labels/class': the label file '{folder / 'labels' / 'missing.npy'}' does not exist.")
    np.save(folder / "short.npy", np.arange(5))
    assert broken(labels={**original["labels"], "class": "short.npy"}) == (
        f"{meta_file}, key 'labels/class': 'short.npy' holds 5 entries, but the dataset has 6 examples; every label "
        f"needs one entry per example.")
    np.save(folder / "objects.npy", np.array([{}, 1] * 3, dtype=object), allow_pickle=True)
    assert broken(labels={**original["labels"], "class": "objects.npy"}).startswith(
        f"{meta_file}, key 'labels/class': '{folder / 'objects.npy'}' is not a .npy array numpy can read without "
        f"pickle")
    assert broken(loaders={"image": "png"}) == (
        f"{meta_file}, key 'loaders/image': unknown loader 'png'; the loaders are image, npy "
        f"(MetaDataset(folder, loaders={{name: function}}) adds more).")
    assert broken(loaders={"mask": "image"}).startswith(
        f"{meta_file}, key 'loaders/mask': there is no label 'mask' to load; the labels are class, code, image, keypoints, name.")
    meta_file.write_text("labels: [unclosed")
    assert str(pytest.raises(DataError, MetaDataset, folder).value).startswith(f"'{meta_file}' cannot be read")

    meta_file.write_text(yaml.safe_dump({**original, "loaders": {"image": "image", "code": "upper"}}))
    custom = MetaDataset(folder, loaders={"upper": lambda value, root: value.upper()})
    assert custom[1]["code"] == "CODES/1.NPY"  # loaders of one's own
    (folder / "images" / "2.png").unlink()
    with pytest.raises(DataError, match=f"{meta_file}, key 'image': loader 'image' failed on example 2 "
                                        r"\('images/2.png'\): FileNotFoundError"):
        custom[2]
    meta_file.unlink()
    with pytest.raises(DataError, match="is not a MetaDataset: it has no meta.yaml"):
        MetaDataset(folder)


def test_evaluation_outputs_stacked_and_per_example_read_as_a_meta_dataset(tmp_path):
    writer = OutputWriter(tmp_path / "0000000010")
    writer.add({"prediction": np.arange(3.0), "tokens": np.ones((3, 2)), "probe": {"ok": np.ones(3, bool)}})
    writer.add({"prediction": np.arange(2.0), "tokens": np.zeros((2, 5)), "probe": {"ok": np.zeros(2, bool)}})
    writer.close({"global_step": 10, "evaluation": "eval"})
    dataset = MetaDataset(tmp_path / "0000000010")
    assert len(dataset) == 5 and dataset.description == "outputs of evaluation 'eval' at global step 10"
    assert isinstance(dataset.labels["prediction"], np.memmap) and "probe/ok" in dataset.labels
    assert dataset[1]["tokens"].tolist() == [1.0, 1.0] and dataset[4]["tokens"].tolist() == [0.0] * 5
    assert dataset[4]["prediction"] == 1.0 and not dataset[4]["probe/ok"]


# ---------------------------------------------------------------------------------------------------------------
# End to end: train on an augmented dataset, evaluate a sub-set, read the outputs back


def test_evaluation_outputs_of_a_real_run_read_back_as_a_dataset_aligned_with_the_inputs(edflow_project):
    edflow_project.toy(ckpt_freq=5, **TRAIN_ON_AUGMENTED)
    edflow_project.write(TOY_FILES)
    edflow_project.config("eval.yaml", dataset="edcore.data.SubDataset",
                          SubDataset={"dataset": "toy.data.Data", "indices": {"stop": 20}},
                          iterator="toy.iterator.Iterator", batch_size=8, eval_callbacks={"error": "toy.metrics.mse"})
    edflow_project.run("-t", "train.yaml", "-e", "eval.yaml").assert_success()
    (run,) = edflow_project.runs()
    (evaluation,) = (run / "eval").iterdir()
    folder = evaluation / f"{10:010d}"

    outputs = MetaDataset(folder)
    assert len(outputs) == 20 and outputs.description == "outputs of evaluation 'eval' at global step 10"
    assert np.array_equal(outputs.labels["prediction"], load_outputs(folder)["prediction"])

    # analysed again: side by side with the inputs it was computed from, it gives the callback's metric
    sys.path.insert(0, str(edflow_project.path))
    try:
        from toy.data import Data

        inputs = SubDataset(Data({}), range(20))
        both = ExampleConcatenatedDataset(inputs, outputs)
        errors = [(both[i]["prediction"] - both[i]["y"]) ** 2 for i in range(len(both))]
    finally:
        sys.path.remove(str(edflow_project.path))
        for name in [n for n in sys.modules if n == "toy" or n.startswith("toy.")]:
            del sys.modules[name]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert float(np.mean(errors)) == pytest.approx(metrics["error/mse"], rel=1e-6)


def test_edcore_data_imports_no_framework(tmp_path):
    script = ("import sys, edcore.data; frameworks = {'torch', 'tensorflow', 'jax'} & set(sys.modules); "
              "assert not frameworks, frameworks")
    shown = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
