"""The stored-outputs format, evaluation callbacks and the evaluation record, without a training."""
import json

import numpy as np
import pytest
from edcore.callbacks import parse_callback_args, run_callbacks
from edcore.errors import EdflowError, UsageError, UserCodeError
from edcore.evaluation import read_metrics
from edcore.outputs import INDEX, OutputWriter, load_outputs


def write(folder, batches, **metadata):
    writer = OutputWriter(folder)
    for batch in batches:
        writer.add(batch)
    return writer.close(metadata)


def test_outputs_round_trip_per_example_with_nested_keys_strings_and_ragged_values(tmp_path):
    batches = [
        {"logits": np.arange(6, dtype="float32").reshape(3, 2), "meta": {"name": ["a", "b", "c"], "ok": [True, False, True]},
         "tokens": np.zeros((3, 2), "int64")},
        {"logits": np.ones((2, 2), "float32"), "meta": {"name": ["d", "e"], "ok": [False, False]},
         "tokens": np.ones((2, 5), "int64")},  # another length: stored one file per example
    ]
    index = write(tmp_path, batches, global_step=7)
    assert index["num_examples"] == 5 and index["global_step"] == 7
    assert index["keys"]["logits"] == {"layout": "stacked", "file": "logits.npy", "dtype": "float32", "shape": [5, 2]}
    assert index["keys"]["tokens"]["layout"] == "per_example"
    assert (tmp_path / "meta" / "name.npy").exists() and (tmp_path / "tokens" / "0000004.npy").exists()
    assert json.loads((tmp_path / INDEX).read_text()) == index
    assert not (tmp_path / ".chunks").exists()  # the batches spilled during the pass are gone

    outputs = load_outputs(tmp_path)
    assert sorted(outputs) == ["logits", "meta/name", "meta/ok", "tokens"]
    assert outputs.num_examples == 5 and outputs.global_step == 7
    np.testing.assert_array_equal(outputs["logits"][:3], batches[0]["logits"])
    assert outputs["meta/name"].tolist() == ["a", "b", "c", "d", "e"]
    assert outputs["meta/ok"].dtype == bool
    assert [t.shape for t in outputs["tokens"]] == [(2,)] * 3 + [(5,)] * 2
    example = outputs.example(3)
    assert example["meta/name"] == "d" and example["tokens"].tolist() == [1] * 5
    for path in tmp_path.rglob("*.npy"):  # plain arrays: nothing needs pickle
        np.load(path, allow_pickle=False)


def test_tensors_are_converted_through_their_numpy_method(tmp_path):
    class Tensor:  # what torch and TensorFlow tensors offer, without importing either
        def __init__(self, array):
            self.array = array

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.array

    write(tmp_path, [{"x": Tensor(np.full((4, 3), 2.0))}])
    assert load_outputs(tmp_path)["x"].sum() == 24


@pytest.mark.parametrize("batches, message", [
    ([{"loss": 0.5}], "single value per batch"),
    ([{"a": np.zeros(3), "b": np.zeros(2)}], "disagree in batch size"),
    ([{"a": np.zeros(3)}, {"a": np.zeros(3), "b": np.zeros(3)}], "every batch must return the same keys"),
    ([{"a": [object(), object()]}], "holds Python objects"),
    ([{"../up": np.zeros(2)}], "cannot be a file name"),
])
def test_outputs_that_cannot_be_stored_per_example_are_explained(tmp_path, batches, message):
    with pytest.raises(UserCodeError, match=message):
        write(tmp_path, batches)


def test_a_folder_without_outputs_is_named(tmp_path):
    with pytest.raises(EdflowError, match="holds no evaluation outputs"):
        load_outputs(tmp_path)
    (tmp_path / INDEX).write_text('{"format": "something else"}')
    with pytest.raises(EdflowError, match="not an edflow outputs index"):
        load_outputs(tmp_path)


def test_callbacks_return_scalars_named_after_the_callback(tmp_path):
    def nested(eval_dir, dataset, outputs, config):
        return {"top": {"1": np.float32(0.5), "5": 1}, "n": len(dataset)}

    def single(eval_dir, dataset, outputs, config):
        return 3

    def only_files(eval_dir, dataset, outputs, config):
        (tmp_path / "written").write_text(eval_dir)

    metrics = run_callbacks({"acc": nested, "count": single, "files": only_files}, str(tmp_path), [1, 2], None, {})
    assert metrics == {"acc/top/1": 0.5, "acc/top/5": 1.0, "acc/n": 2.0, "count": 3.0}
    assert (tmp_path / "written").read_text() == str(tmp_path)


def test_a_failing_callback_is_named():
    def broken(eval_dir, dataset, outputs, config):
        raise ValueError("no labels")

    def wrong(eval_dir, dataset, outputs, config):
        return {"image": np.zeros((2, 2))}

    with pytest.raises(UserCodeError, match=r"eval callback 'fid' \(.*broken\) raised ValueError: no labels"):
        run_callbacks({"fid": broken}, "", None, None, {})
    with pytest.raises(UserCodeError, match="returned ndarray for 'pic/image'; callbacks return a dict of numbers"):
        run_callbacks({"pic": wrong}, "", None, None, {})


def test_callback_arguments_are_name_colon_dotted():
    assert parse_callback_args(["a:pkg.f", "b:pkg.mod:g"]) == {"a": "pkg.f", "b": "pkg.mod:g"}
    with pytest.raises(UsageError, match="expected NAME:dotted.function"):
        parse_callback_args(["pkg.f"])
    with pytest.raises(UsageError, match="given twice"):
        parse_callback_args(["a:x.f", "a:y.g"])


def test_the_record_ignores_a_line_torn_by_a_killed_process(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"global_step": 3, "acc": 0.5}\n{"global_step": 6, "acc": 0.7}\n{"global_st')
    assert sorted(read_metrics(path)) == [3, 6]
    assert read_metrics(tmp_path / "missing.jsonl") == {}
