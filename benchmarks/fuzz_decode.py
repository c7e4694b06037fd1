"""A bounded fuzz of the image and DICOM decoding path: mutated PNG, JPEG, TIFF, BMP and DICOM bytes through
`trus_hf.fileio.read_image` and then the processor. Anything but a result or a ValueError is a crash.

    python benchmarks/fuzz_decode.py [--seconds 60] [--seed 0]       (target: 0 crashes)
"""

import argparse
import io
import random
import tempfile
import time
import traceback
import warnings
from pathlib import Path

from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

from trus_hf import TrusImageProcessor
from trus_hf.fileio import read_image
from trus_hf.synthetic import generate_phantom


def seeds() -> dict[str, bytes]:
    img = generate_phantom(0, (48, 64)).image
    out = {}
    for fmt, ext in (("PNG", ".png"), ("JPEG", ".jpg"), ("TIFF", ".tif"), ("BMP", ".bmp")):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format=fmt)
        out[ext] = buf.getvalue()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = UltrasoundImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 48, 64, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = img.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    out[".dcm"] = buf.getvalue()
    return out


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        pos = rng.randrange(len(b)) if b else 0
        if op < 0.4 and b:
            b[pos] = rng.randrange(256)
        elif op < 0.6:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op < 0.8 and b:
            del b[pos : pos + rng.randint(1, 64)]
        else:
            b = b[: rng.randrange(len(b) + 1)]
    return bytes(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    warnings.simplefilter("ignore")  # corrupt inputs make Pillow/pydicom warn on every other case
    rng = random.Random(a.seed)
    base = seeds()
    proc = TrusImageProcessor(size={"height": 32, "width": 32})
    tmp = Path(tempfile.mkdtemp())
    tried, decoded, rejected, crashes = 0, 0, 0, []
    t0 = time.time()
    while time.time() - t0 < a.seconds:
        ext = rng.choice(list(base))
        path = tmp / f"case{ext}"
        path.write_bytes(mutate(base[ext], rng))
        tried += 1
        try:
            arr = read_image(path, max_pixels=4_000_000)
            proc(arr, return_tensors="np")
            decoded += 1
        except ValueError:
            rejected += 1
        except Exception as exc:  # a crash: anything that is not a clear ValueError
            crashes.append((ext, repr(exc), traceback.format_exc(limit=3)))
    print(
        f"{tried} inputs tried in {a.seconds:.0f} s: {decoded} decoded, {rejected} rejected with a clear error, "
        f"{len(crashes)} crashes"
    )
    for ext, msg, tb in crashes[:5]:
        print(f"crash on {ext}: {msg}\n{tb}")
    raise SystemExit(1 if crashes else 0)


if __name__ == "__main__":
    main()
