"""Fixtures shared by the reliability tests."""
import pytest

from edcore.testing import EdflowProject


@pytest.fixture(scope="session")
def torch_reference(tmp_path_factory):
    """``torch_reference(num_workers)``: the uninterrupted run of ``resumable_project`` and the examples it loaded,
    trained once per session and number of workers."""
    from resumable_project import marker_env, served, write_project

    runs = {}

    def reference(workers=0):
        if workers not in runs:
            project = EdflowProject(tmp_path_factory.mktemp(f"reference{workers}"))
            write_project(project, torch={"num_workers": workers})
            env = marker_env(project.path / "markers", served=project.path / "served.txt")
            project.run("-t", "train.yaml", env=env).assert_success()
            runs[workers] = (project.runs()[0], served(project.path / "served.txt"))
        return runs[workers]

    return reference
