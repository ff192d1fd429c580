"""The example notebook runs end to end (few chips, few steps), so it cannot rot."""

import shutil
from pathlib import Path

import nbclient
import nbformat
import pytest

from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "facekit_end_to_end.ipynb"


@pytest.mark.slow
def test_example_notebook_runs_end_to_end(tmp_path: Path, chip_sample: list[Path]):
    data = tmp_path / "train_val"
    data.mkdir()
    for p in chip_sample:
        shutil.copy(p, data / p.name)
    nb = nbformat.read(EXAMPLE, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source += (f"\nDATA = {str(data)!r}\nWORK = {str(tmp_path)!r}\nEPOCHS = 1\nSTEPS = 2\n"
                      "KERAS_VERSIONS = ()\nEAGER = True\n")
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    images = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert "Model A: 1 epochs" in text and "Model B: 1 epochs" in text and "verdict:" in text
    assert "held-out images" in text and "hand in:" in text
    assert images >= 2 + 2 * 4  # samples, augmentation, and the four curves per model
    assert (tmp_path / "age_gender_A.keras").is_file() and (tmp_path / "age_gender_B.keras").is_file()
