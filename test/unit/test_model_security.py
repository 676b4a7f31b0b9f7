"""What a model directory must be before its graphs run, and no pickle anywhere.

A model loads only from the directory given, only files named plainly in its manifest, and only
when every file's sha256 matches: a missing, truncated or altered file, a path or symlink out of
the directory, or a graph whose shapes differ from the manifest fails with a message naming it.
The graphs that run are the bytes that were hashed (no second read that a swap could slip into).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ami_ros.runtime import ModelLoadError, default_model_dir, load_model

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = default_model_dir()
pytestmark = pytest.mark.skipif(not (SHIPPED / "manifest.yaml").is_file(), reason="no shipped model")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A private copy of the shipped model directory."""
    out = tmp_path / "model"
    out.mkdir()
    for f in SHIPPED.iterdir():
        if f.is_file():
            (out / f.name).write_bytes(f.read_bytes())
    return out


def _manifest(model: Path) -> dict:
    return yaml.safe_load((model / "manifest.yaml").read_text())


def _write(model: Path, manifest: dict) -> None:
    (model / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def _load(model: Path, graphs=("encoder.onnx",)):
    return load_model(model, graphs=graphs, warm_up=False)


def test_the_copy_loads(model: Path) -> None:
    runtime = _load(model)
    assert runtime.model_dir == model
    runtime.close()


def test_a_missing_manifest_or_file_is_named(model: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"missing file: .*nowhere/manifest\.yaml"):
        _load(tmp_path / "nowhere")
    (model / "encoder.onnx").unlink()
    with pytest.raises(ModelLoadError, match=r"missing file: .*model/encoder\.onnx \(listed in"):
        _load(model)


def test_a_truncated_file_is_a_sha256_mismatch_naming_it(model: Path) -> None:
    data = (model / "encoder.onnx").read_bytes()
    (model / "encoder.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"sha256 mismatch for .*encoder\.onnx"):
        _load(model)


def test_one_flipped_byte_is_a_sha256_mismatch(model: Path) -> None:
    data = bytearray((model / "predictor.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (model / "predictor.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"sha256 mismatch for .*predictor\.onnx"):
        _load(model, graphs=("predictor.onnx",))


def test_a_shape_mismatch_is_named(model: Path) -> None:
    manifest = _manifest(model)
    manifest["files"]["encoder.onnx"]["outputs"]["latent"] = ["batch", 65, 32]
    _write(model, manifest)
    with pytest.raises(ModelLoadError, match=r"encoder\.onnx: output 'latent' has shape .* manifest says"):
        _load(model)


def test_the_robots_joint_names_must_match(model: Path) -> None:
    with pytest.raises(ModelLoadError, match="joint names mismatch"):
        load_model(model, expected_joint_names=["a", "b", "c", "d"], graphs=("encoder.onnx",), warm_up=False)


@pytest.mark.parametrize("name", ["../encoder.onnx", "/etc/passwd", "sub/encoder.onnx", "..", ""])
def test_file_names_with_a_path_are_refused(model: Path, name: str) -> None:
    manifest = _manifest(model)
    manifest["files"][name] = {"sha256": "0" * 64}
    _write(model, manifest)
    with pytest.raises(ModelLoadError, match="is not a plain name inside"):
        _load(model)


def test_a_symlink_out_of_the_directory_is_refused(model: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.onnx"
    outside.write_bytes((model / "encoder.onnx").read_bytes())  # even with a matching hash
    (model / "encoder.onnx").unlink()
    (model / "encoder.onnx").symlink_to(outside)
    with pytest.raises(ModelLoadError, match="outside the model directory"):
        _load(model)


def test_a_file_without_a_sha256_is_refused(model: Path) -> None:
    manifest = _manifest(model)
    del manifest["files"]["encoder.onnx"]["sha256"]
    _write(model, manifest)
    with pytest.raises(ModelLoadError, match=r"encoder\.onnx has no sha256"):
        _load(model)


def test_a_graph_onnxruntime_cannot_open_is_named(model: Path) -> None:
    """A garbage file whose hash the manifest vouches for still fails cleanly, naming the file."""
    import hashlib

    (model / "encoder.onnx").write_bytes(b"not an onnx graph")
    manifest = _manifest(model)
    manifest["files"]["encoder.onnx"]["sha256"] = hashlib.sha256(b"not an onnx graph").hexdigest()
    _write(model, manifest)
    with pytest.raises(ModelLoadError, match=r"encoder\.onnx: onnxruntime cannot open it"):
        _load(model)


def test_no_pickle_anywhere_in_the_package() -> None:
    """Checkpoints load with torch.load(weights_only=True), arrays without allow_pickle: loading
    a file never runs code from it."""
    offenders = []
    for path in sorted((ROOT / "ami_ros").rglob("*.py")) + sorted((ROOT / "test").rglob("*.py")):
        if path.name == Path(__file__).name:
            continue
        text = path.read_text()
        for line_no, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"\bimport (c?pickle|dill|joblib|marshal|shelve)\b|allow_pickle\s*=\s*True", code):
                offenders.append(f"{path.relative_to(ROOT)}:{line_no}: {line.strip()}")
        for match in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in match.group(1):
                offenders.append(f"{path.relative_to(ROOT)}: torch.load without weights_only=True")
    assert not offenders, "\n".join(offenders)
