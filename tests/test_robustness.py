"""Bad input and untrusted models: a mask of the right shape or a clear ValueError, never a crash or a hang."""

import io
import json
import struct
import zlib

import numpy as np
import pytest
from conftest import tiny_processor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

from trus_hf import SegmentationPipeline, TrusImageProcessor, load_model
from trus_hf.fileio import read_image
from trus_hf.synthetic import generate_phantom

DTYPES = st.sampled_from(["uint8", "uint16", "float32", "bool"])


@st.composite
def arrays(draw):
    h = draw(st.integers(1, 2500))
    w = draw(st.integers(1, max(1, min(2500, 3_000_000 // h))))
    channels = draw(st.sampled_from([None, 1, 3, 4]))
    dtype = draw(DTYPES)
    shape = (h, w) if channels is None else (h, w, channels)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if dtype == "bool":
        arr = rng.random(shape) > 0.5
    elif dtype == "float32":
        arr = rng.random(shape).astype(np.float32) * draw(st.sampled_from([1.0, 255.0, 1e6]))
        if draw(st.booleans()):
            arr.flat[draw(st.integers(0, arr.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf, -1.0]))
    else:
        arr = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    return arr


@pytest.fixture(scope="module")
def pipe(saved_models):
    model, proc = load_model(saved_models["segformer"])
    return SegmentationPipeline(model, proc)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(arr=arrays())
def test_pipeline_gives_a_mask_of_the_right_shape_or_a_clear_error(pipe, arr):
    try:
        result = pipe(arr)
    except ValueError as exc:
        assert str(exc)  # a message, and only for inputs that deserve one
        assert np.issubdtype(arr.dtype, np.floating)
        return
    assert result.mask.shape == arr.shape[:2] and result.mask.dtype == np.uint8
    assert np.isfinite(result.probabilities).all()


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 600), w=st.integers(1, 600), keep=st.booleans(), size=st.integers(8, 96))
def test_processor_inverse_mapping_has_the_original_shape(h, w, keep, size):
    proc = TrusImageProcessor(size={"height": size, "width": size}, keep_aspect_ratio=keep, diffusion_iterations=1)
    img = np.random.default_rng(h * w).integers(0, 255, (h, w), dtype=np.uint8)
    batch = proc(img, masks=(img > 128).astype(np.uint8), return_tensors="np")
    assert batch["pixel_values"].shape[2] % 32 == 0 and batch["pixel_values"].shape[3] % 32 == 0
    back = proc.post_process_semantic_segmentation(
        batch["labels"][:, None] * 20.0 - 10.0, geometries=batch["geometries"]
    )[0]
    assert back.shape == (h, w)


def _png_bytes(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _bomb_png(side: int = 30_000) -> bytes:
    """A valid PNG header claiming side x side pixels with a tiny compressed body."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = zlib.compress(b"\x00" * (side + 1) * 8, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )


def _jpeg_bytes():
    buf = io.BytesIO()
    Image.fromarray(generate_phantom(0, (64, 64)).image).save(buf, format="JPEG")
    return buf.getvalue()


def _dicom_without_pixels(path):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = UltrasoundImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.PatientID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "X"
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("truncated.png", _png_bytes(generate_phantom(0, (64, 64)).image)[:200], "corrupt or truncated image"),
        ("truncated.jpg", _jpeg_bytes()[:300], "corrupt or truncated image"),
        ("empty.png", b"", "file is empty"),
        ("bomb.png", _bomb_png(), "exceeds the limit|decompression bomb"),
        ("text.png", b"hello, I am text renamed to png\n", "unsupported or unrecognised image format"),
        ("nopixels.dcm", None, "DICOM file has no pixel data"),
    ],
)
def test_hostile_files_give_clear_errors_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        _dicom_without_pixels(path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as err:
        read_image(path)
    assert name in str(err.value)


def test_remote_code_in_config_is_never_executed(tmp_path, saved_models):
    folder = tmp_path / "evil"
    folder.mkdir()
    for name in ("model.safetensors", "preprocessor_config.json"):
        (folder / name).write_bytes((saved_models["segformer"] / name).read_bytes())
    cfg = json.loads((saved_models["segformer"] / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(cfg))
    marker = tmp_path / "pwned"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    model, _ = load_model(folder)
    assert type(model).__name__ == "TrusSegformer" and not marker.exists()


def test_processor_config_is_validated(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({"image_processor_type": "TrusImageProcessor", "interpolation": "lanczos"})
    )
    with pytest.raises(ValueError, match="interpolation must be one of area, bilinear, bicubic"):
        TrusImageProcessor.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="size must be"):
        tiny_processor(0)
