"""The edflow-tf wheel: its entry point in the group ``edflow``, its modules, and TensorFlow as a choice of extra
(tensorflow-cpu or tensorflow, which install the same import package)."""
import subprocess
import sys
import zipfile
from pathlib import Path

PLUGIN = Path(__file__).parents[1]


def test_wheel_registers_the_backend_and_leaves_the_tensorflow_build_to_the_user(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(PLUGIN)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("edflow_tf-*.whl")
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    for module in ("__init__", "plugin", "iterator", "batching", "distribute", "settings"):
        assert f"edflow_tf/{module}.py" in names
    assert not any(name.startswith("tests/") for name in names)
    entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[edflow]\ntf = edflow_tf.plugin:TFPlugin" in entry_points
    metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    requirements = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert any("edcore" in line for line in requirements)
    assert any("tensorflow-cpu" in line and 'extra == "cpu"' in line for line in requirements)
    assert not any("tensorflow" in line and "extra ==" not in line for line in requirements)
