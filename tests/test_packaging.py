"""The edcore wheel ships the schemas, so a non-editable install validates too."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_wheel_contains_the_schemas_and_the_console_script(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("edcore-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "edcore/schemas/edflow.schema.json" in names
    assert "edcore/hookspecs.py" in names and "edcore/builtin/providers.py" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "edflow = edcore.cli:main" in entry_points
