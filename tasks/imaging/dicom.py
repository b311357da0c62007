"""DICOM radiographs to 8-bit grayscale, for tasks.imaging.images.decode (so ingest, serving, pneumonia-predict and
pneumonia-monitor all read them the same way).

The pixel data goes through the file's modality LUT (rescale slope and intercept), then its VOI LUT or
window when it has one, then is scaled by its real range to 0..255 (8-bit data with neither is kept as it
is, so a DICOM and a PNG of the same pixels decode alike); `MONOCHROME1` (white is low) is inverted.
Multi-frame files, colour images and files without pixel data are refused; compressed transfer syntaxes
are decoded when pydicom or an installed plugin can (RLE always; JPEG and JPEG 2000 with pylibjpeg),
else refused with the plugin to install. No header value is ever put in a message: a DICOM header
holds the patient's name, id and birth date, and messages reach logs and reports.

`patient_key` groups a patient's films without revealing who: a keyed hash (HMAC-SHA256) of the header's
PatientID with the checkout's secret salt (`salt`), so the split keeps a patient's films together while the
manifest, the DVC cache and MLflow hold only a value nobody can turn back into the id.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import os
import secrets
from pathlib import Path

import numpy as np

SUFFIXES = {".dcm", ".dicom"}
PLUGINS = "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg"
SALT_ENV = "PNEUMONIA_PATIENT_SALT"


def salt(file: str | Path) -> bytes:
    """The secret the patient keys are hashed with: $PNEUMONIA_PATIENT_SALT when set, else `file`, created
    with 32 random bytes on first use (keep it with the data: the same films give the same split only with
    the same salt; never commit it)."""
    if os.environ.get(SALT_ENV):
        return os.environ[SALT_ENV].encode()
    file = Path(file)
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return file.read_text().strip().encode()


def patient_key(data: bytes, key: bytes) -> str | None:
    """`dicom-<16 hex>`: the keyed hash of the file's PatientID, or None when it has none (or is no DICOM)."""
    import pydicom

    try:
        pid = str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=["PatientID"])
                  .get("PatientID", "") or "").strip()
    except Exception:  # noqa: BLE001 - an unreadable header is decode's to report, with its reason
        return None
    return "dicom-" + keyed(pid, key) if pid else None


def keyed(value: str, key: bytes) -> str:
    """16 hex digits of the keyed hash (HMAC-SHA256) of `value`: the same value gives the same digits with the
    same salt, and nobody without the salt can turn them back (patient ids, study and instance UIDs)."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]


def is_dicom(data: bytes) -> bool:
    """A DICOM Part 10 file: a 128-byte preamble, then `DICM`."""
    return len(data) > 132 and data[128:132] == b"DICM"


def decode(data: bytes, max_pixels: int) -> tuple[np.ndarray, dict]:
    """DICOM bytes -> (uint8 H x W grayscale, info with `width`, `height`, `mode`); BadImage with a reason
    that names no header value."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    from tasks.core.errors import BadImage

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, ValueError, KeyError, OSError):
        raise BadImage("not a readable DICOM file (truncated or corrupt)") from None
    if "PixelData" not in ds:
        raise BadImage("DICOM file without pixel data (a report or structured document?)")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows * cols > max_pixels:
        raise BadImage(f"{cols}x{rows} exceeds the {max_pixels:,}-pixel limit")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise BadImage(f"multi-frame DICOM ({frames} frames); export the frame to use as its own file")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise BadImage("DICOM image is not grayscale (photometric interpretation "
                       f"{photometric or 'missing'}); send the radiograph as MONOCHROME1 or MONOCHROME2")
    syntax = ds.file_meta.get("TransferSyntaxUID")
    try:
        stored = ds.pixel_array
    except Exception:  # noqa: BLE001 - pydicom raises several types for a missing codec or bad data
        if syntax is not None and syntax.is_compressed:
            raise BadImage(f"DICOM compressed as {syntax.name} and no installed decoder reads it: {PLUGINS}") from None
        raise BadImage("DICOM pixel data cannot be decoded (truncated or corrupt)") from None
    rescaled = float(ds.get("RescaleSlope", 1) or 1) != 1 or float(ds.get("RescaleIntercept", 0) or 0) != 0
    windowed = "WindowCenter" in ds or "VOILUTSequence" in ds
    if stored.dtype == np.uint8 and not rescaled and not windowed:
        gray = stored
    else:
        values = apply_modality_lut(stored, ds)
        if windowed:
            values = apply_voi_lut(values, ds)
        values = np.asarray(values, np.float32)
        lo, hi = float(values.min()), float(values.max())
        gray = np.round((values - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(values)).astype(np.uint8)
    if photometric == "MONOCHROME1":
        gray = 255 - gray
    return np.ascontiguousarray(gray), {"width": cols, "height": rows, "mode": f"DICOM {photometric}"}
