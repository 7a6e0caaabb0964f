"""Dotted names: module not found, module raising while importing, and missing attributes are told apart."""
import sys

import pytest

from edcore.errors import DottedNameError, UserCodeError
from edcore.references import dotted_name, resolve


@pytest.fixture
def package(tmp_path, monkeypatch):
    root = tmp_path / "refpkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "good.py").write_text("class Model:\n    pass\n\n\ndef factory():\n    return 1\n")
    (root / "raises.py").write_text("def fail():\n    raise ValueError('boom in user code')\n\n\nfail()\n")
    (root / "missing_dep.py").write_text("import not_installed_anywhere\n")
    (root / "syntax.py").write_text("def broken(:\n")
    monkeypatch.chdir(tmp_path)
    yield root
    for name in list(sys.modules):
        if name.startswith("refpkg"):
            del sys.modules[name]


def test_resolves_both_notations(package):
    assert resolve("refpkg.good.Model").__name__ == "Model"
    assert resolve("refpkg.good:Model") is resolve("refpkg.good.Model")
    assert resolve("refpkg.good:factory")() == 1


def test_module_not_found(package):
    with pytest.raises(DottedNameError) as info:
        resolve("nopkg.models.Net", where="train.yaml:3, key 'model'")
    assert "train.yaml:3, key 'model': 'nopkg.models.Net': no module named 'nopkg'" in str(info.value)


def test_submodule_not_found_lists_close_names(package):
    with pytest.raises(DottedNameError) as info:
        resolve("refpkg.god.Model")
    assert "package 'refpkg' has no attribute or submodule 'god'" in str(info.value)
    assert "Close names: good" in str(info.value)


def test_attribute_missing_lists_close_names(package):
    with pytest.raises(DottedNameError) as info:
        resolve("refpkg.good.Modl")
    assert "module 'refpkg.good' has no attribute or submodule 'Modl'. Close names: Model." in str(info.value)


def test_module_raising_shows_user_file_line_and_error(package):
    with pytest.raises(UserCodeError) as info:
        resolve("refpkg.raises.Thing")
    message = str(info.value)
    assert "module 'refpkg.raises' was found but raised while importing" in message
    assert "ValueError: boom in user code" in message
    assert f"{package / 'raises.py'}:2" in message


def test_module_with_a_missing_dependency_is_not_reported_as_missing_itself(package):
    with pytest.raises(UserCodeError) as info:
        resolve("refpkg.missing_dep.Thing")
    assert "was found but raised while importing" in str(info.value)
    assert "not_installed_anywhere" in str(info.value)


def test_syntax_error_in_user_module_names_its_line(package):
    with pytest.raises(UserCodeError) as info:
        resolve("refpkg.syntax.Thing")
    assert f"{package / 'syntax.py'}:1" in str(info.value)


def test_a_module_is_not_a_class(package):
    with pytest.raises(DottedNameError, match="names a module"):
        resolve("refpkg.good")
    assert resolve("refpkg.good", allow_module=True).__name__ == "refpkg.good"


def test_dotted_name_is_the_inverse():
    assert resolve(dotted_name(DottedNameError)) is DottedNameError


def test_iterator_derives_from_never_imports_the_base_module(package):
    from edcore.references import iterator_derives_from

    (package / "base.py").write_text("class Base:\n    pass\n")
    (package / "derived.py").write_text("from refpkg.base import Base\n\n\nclass Derived(Base):\n    pass\n")
    config = {"iterator": "refpkg.derived.Derived"}
    assert not iterator_derives_from(config, "refpkg.base", "Base")
    assert "refpkg.base" not in sys.modules and "refpkg.derived" not in sys.modules, "nothing was imported"
    resolve("refpkg.derived.Derived")  # what the CLI's reference check does before any backend asks
    assert iterator_derives_from(config, "refpkg.base", "Base")
    assert not iterator_derives_from({"iterator": "refpkg.good.Model"}, "refpkg.base", "Base")
    assert not iterator_derives_from({"iterator": "refpkg.good.factory"}, "refpkg.base", "Base")
    assert not iterator_derives_from({"iterator": "refpkg.good.Nothing"}, "refpkg.base", "Base")
    assert not iterator_derives_from({"iterator": {"not": "a name"}}, "refpkg.base", "Base")
    assert not iterator_derives_from({}, "refpkg.base", "Base")
