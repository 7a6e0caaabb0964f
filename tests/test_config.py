"""Loading, merging and overriding configs, and the origin of every value."""
import pytest

from edcore.config import (
    Config,
    Origin,
    apply_overrides,
    dump,
    load_configs,
    load_file,
    load_saved,
    load_text,
    merge,
    parse_overrides,
)
from edcore.errors import ConfigError, UsageError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_values_keep_file_and_line(tmp_path):
    config = load_file(write(tmp_path, "train.yaml", "a: 1\nnested:\n  b: [1, 2]\n  c: x\n"))
    assert config.data == {"a": 1, "nested": {"b": [1, 2], "c": "x"}}
    assert str(config.origin(("a",))) == f"{tmp_path / 'train.yaml'}:1"
    assert config.origin(("nested", "c")).line == 4
    assert config.origin(("nested", "b", 1)).line == 3
    assert config.where(("nested", "c")).endswith("train.yaml:4, key 'nested/c'")


def test_yaml_scalars_are_typed_like_yaml_1_2():
    data = load_text("lr: 1e-4\nsteps: 3\nflag: true\nnothing: null\nname: a.b.c\nratio: .5").data
    assert data == {"lr": 1e-4, "steps": 3, "flag": True, "nothing": None, "name": "a.b.c", "ratio": 0.5}


def test_merge_keys_resolve_and_may_be_overridden():
    data = load_text("base: &b\n  x: 1\n  y: 2\nderived:\n  <<: *b\n  y: 3\n").data
    assert data["derived"] == {"x": 1, "y": 3}


@pytest.mark.parametrize("text, fragment", [
    ("a: 1\na: 2\n", "train.yaml:2: key 'a' is given twice (first at line 1)"),
    ("- 1\n- 2\n", "train.yaml:1: a config file must be a mapping"),
    ("just a string", "train.yaml:1: a config file must be a mapping"),
    ("a: [1, 2\n", "train.yaml:2: YAML syntax error"),
    ("a: !!python/object/apply:os.system ['echo hi']\n", "the tag '!!python/object/apply:os.system' is not allowed"),
    ("a: !!python/name:os.system\n", "train.yaml:1: the tag '!!python/name:os.system' is not allowed"),
])
def test_bad_yaml_names_file_and_line(text, fragment):
    with pytest.raises(ConfigError) as info:
        load_text(text, "train.yaml")
    assert fragment in str(info.value)


def test_empty_file_is_an_empty_config():
    assert load_text("", "empty.yaml").data == {}


def test_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_file(tmp_path / "nope.yaml")


def test_merge_order_is_left_to_right_and_deep(tmp_path):
    base = write(tmp_path, "base.yaml", "model: a.B\nopt:\n  lr: 0.1\n  betas: [1, 2]\nkeep: 1\n")
    over = write(tmp_path, "more.yaml", "opt:\n  lr: 0.5\nmodel: c.D\n")
    train = write(tmp_path, "train.yaml", "opt:\n  betas: [3]\n")
    config = load_configs([base, over, train])
    assert config.data == {"model": "c.D", "opt": {"lr": 0.5, "betas": [3]}, "keep": 1}
    assert config.origin(("opt", "lr")).file.endswith("more.yaml")
    assert config.origin(("opt", "betas")).file.endswith("train.yaml")
    assert config.origin(("opt", "betas", 0)).file.endswith("train.yaml")
    assert config.origin(("keep",)).file.endswith("base.yaml")


def test_a_replaced_subtree_loses_its_old_origins():
    base = load_text("opt: {lr: 1, mom: 2}", "base.yaml")
    other = load_text("opt: 5", "train.yaml")
    merged = merge(base, other)
    assert merged.data == {"opt": 5}
    assert ("opt", "lr") not in merged.origins


@pytest.mark.parametrize("tokens, keypath, value", [
    (["--lr", "0.1"], ("lr",), 0.1),
    (["--lr=1e-4"], ("lr",), 1e-4),
    (["--a/b/c", "3"], ("a", "b", "c"), 3),
    (["--a.b.c=true"], ("a", "b", "c"), True),
    (["--a.b.c", "[1,2]"], ("a", "b", "c"), [1, 2]),
    (["--x", "null"], ("x",), None),
    (["--name", "mypkg.mod.Class"], ("name",), "mypkg.mod.Class"),
    (["--neg", "-3"], ("neg",), -3),
    (["--text", "hello world"], ("text",), "hello world"),
])
def test_every_override_form(tokens, keypath, value):
    (override,) = parse_overrides(tokens)
    assert override.keypath == keypath and override.value == value


@pytest.mark.parametrize("tokens, fragment", [
    (["--lr"], "override '--lr' has no value"),
    (["--lr", "--other", "1"], "override '--lr' has no value"),
    (["--lr="], "override '--lr=' has no value"),
    (["stray"], "unexpected argument 'stray'"),
    (["-x", "1"], "unexpected argument '-x'"),
    (["--", "1"], "unexpected argument '--'"),
    (["--a//b", "1"], "malformed override key 'a//b'"),
    (["--a/b", "1", "--a.b=2"], "override 'a/b' is given twice"),
    (["--lr", "[1,"], "is not valid YAML"),
])
def test_bad_overrides_are_usage_errors(tokens, fragment):
    with pytest.raises(UsageError) as info:
        parse_overrides(tokens)
    assert fragment in str(info.value)


def test_overrides_apply_after_files_and_record_their_origin():
    config = load_text("opt: {lr: 0.1}\nlist: [1, 2]\n", "train.yaml")
    result = apply_overrides(config, parse_overrides(["--opt/lr", "0.5", "--list/1", "7", "--new.deep=1"]))
    assert result.data == {"opt": {"lr": 0.5}, "list": [1, 7], "new": {"deep": 1}}
    assert str(result.origin(("opt", "lr"))) == "command line `--opt/lr 0.5`"
    assert str(result.origin(("new", "deep"))) == "command line `--new.deep=1`"
    assert config.data["opt"]["lr"] == 0.1  # the input is not changed


def test_shorter_override_applies_before_a_deeper_one():
    config = apply_overrides(Config(), parse_overrides(["--a/b", "2", "--a", "{c: 1}"]))
    assert config.data == {"a": {"c": 1, "b": 2}}


def test_override_beyond_a_list_end_is_a_usage_error():
    config = load_text("list: [1]\n", "t.yaml")
    with pytest.raises(UsageError, match="beyond its end"):
        apply_overrides(config, parse_overrides(["--list/5", "1"]))


def test_origins_table_and_saved_config_round_trip(tmp_path):
    config = apply_overrides(load_text("a: 1\nb: {c: 2}\n", "train.yaml"), parse_overrides(["--b/c", "3"]))
    (tmp_path / "train_x.yaml").write_text(dump(config.data))
    (tmp_path / "train_x.origins.yaml").write_text(dump(config.origins_table()))
    saved = load_saved(tmp_path / "train_x.yaml")
    assert saved.data == {"a": 1, "b": {"c": 3}}
    assert saved.origin(("a",)) == Origin("train.yaml", 1)
    assert saved.origin(("b", "c")) == Origin(override="--b/c 3")


def test_dump_turns_wrapper_containers_into_plain_yaml():
    from collections import OrderedDict

    class ListWrapper(list):
        pass

    text = dump({"a": ListWrapper([1, 2]), "b": OrderedDict(x=(1, 2))})
    assert load_text(text).data == {"a": [1, 2], "b": {"x": [1, 2]}}


def test_plus_marks_an_override_that_may_add_a_key():
    config = apply_overrides(load_text("a: 1\nlist: [1]\n", "train.yaml"),
                             parse_overrides(["--a", "2", "--+b/c", "3", "--d=4", "--list/1", "5"]))
    assert config.data == {"a": 2, "b": {"c": 3}, "d": 4, "list": [1, 5]}
    assert [(o.token, o.add) for o in config.new_keys] == [("--+b/c 3", True), ("--d=4", False)]
    assert config.origin(("b", "c")) == Origin(override="--+b/c 3")


def test_the_schema_declares_its_sections_keys_and_open_mappings():
    from edcore.schema import build_schema, declares

    schema = build_schema([{"torch": {"type": "object", "additionalProperties": False,
                                      "properties": {"device": {"type": "string"}}}}])
    assert declares(schema, ("num_steps",)) and declares(schema, ("torch", "device"))
    assert declares(schema, ("eval_callbacks", "accuracy"))  # an open mapping: any name is declared
    assert not declares(schema, ("learning_rate",))  # the open top level is where typos hide
    assert not declares(schema, ("torch", "devcie"))


def test_overrides_of_known_declared_and_added_keys_reach_the_configs(edflow_project):
    import yaml

    edflow_project.toy(toy_examples=24)
    edflow_project.config("eval.yaml", dataset="toy.data.Data", iterator="toy.iterator.Iterator", batch_size=8,
                          eval_only=1)
    # toy_examples is set by train.yaml only, eval_only by eval.yaml only, shuffle by no file (the schema declares
    # it), new_key by nobody: it needs the '+'.
    edflow_project.run("-t", "train.yaml", "-e", "eval.yaml", "--toy_examples", "16", "--eval_only", "2",
                       "--shuffle", "false", "--+new_key", "3").assert_success()
    (run,) = edflow_project.runs()
    configs = {p.name.split("_")[0]: yaml.safe_load(p.read_text())
               for p in sorted(run.glob("**/configs/*.yaml")) if "origins" not in p.name}
    train = configs["train"]
    assert (train["toy_examples"], train["eval_only"], train["shuffle"], train["new_key"]) == (16, 2, False, 3)
    edflow_project.run("-p", run, "--new_key", "4", "--num_steps", "12").assert_success()  # saved: known now
