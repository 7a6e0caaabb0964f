"""Fixtures of the edflow-torch tests; the tiny project itself is in torch_helpers.py."""
import sys

import pytest
from torch_helpers import IteratorCatcher, TorchProject


@pytest.fixture
def torch_project(tmp_path, monkeypatch):
    # In-process runs import the tiny package from the project folder; forget it between tests.
    monkeypatch.syspath_prepend(str(tmp_path))
    yield TorchProject(tmp_path)
    for name in [n for n in sys.modules if n == "tiny" or n.startswith("tiny.")]:
        del sys.modules[name]


@pytest.fixture
def catcher():
    return IteratorCatcher()
