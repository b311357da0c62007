"""DICOM radiographs written here with pydicom from generated films: decoded as the PNG of the same pixels,
LUTs and MONOCHROME1 applied, what cannot be read refused, and no header value in any output."""
import base64
import io
import json

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import JPEGBaseline8Bit, RLELossless, SecondaryCaptureImageStorage, generate_uid

from tasks import ingest
from tasks.imaging import dicom
from tasks.imaging.images import BadImage, decode, load_gray, png_bytes
from tasks.scoring.serving import decode_images
from tasks.sources.demo import chest_image
from tests.helpers import write_params

PHI = {"PatientName": "Doe^Jane", "PatientID": "PHI-784512", "PatientBirthDate": "19610203",
       "AccessionNumber": "ACC-99127"}


def film(seed: int = 0, size: int = 64) -> np.ndarray:
    return chest_image(np.random.default_rng(seed), size, pneumonia=bool(seed % 2))


def dicom_bytes(pixels: np.ndarray, photometric: str = "MONOCHROME2", slope: float | None = None,
                intercept: float | None = None, window: tuple | None = None, frames: int = 1,
                syntax=pydicom.uid.ExplicitVRLittleEndian, phi: bool = True, patient_id: str | None = None) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "CR"
    if phi:
        for key, value in {**PHI, **({"PatientID": patient_id} if patient_id else {})}.items():
            setattr(ds, key, value)
    pixels = np.asarray(pixels)
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, photometric, 0
    ds.BitsAllocated = ds.BitsStored = 8 * pixels.dtype.itemsize
    ds.HighBit = ds.BitsStored - 1
    if frames > 1:
        ds.NumberOfFrames = frames
        pixels = np.stack([pixels] * frames)
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept or 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.tobytes()
    if syntax == RLELossless:
        ds.compress(RLELossless)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    if syntax == JPEGBaseline8Bit:  # claims JPEG, with bytes no decoder here reads
        back = pydicom.dcmread(io.BytesIO(data))
        back.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        back.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8 not really a jpeg"])
        buf = io.BytesIO()
        back.save_as(buf, enforce_file_format=True)
        data = buf.getvalue()
    return data


def test_an_8_bit_dicom_decodes_as_the_png_of_its_pixels():
    pixels = film()
    assert dicom.is_dicom(dicom_bytes(pixels)) and not dicom.is_dicom(png_bytes(pixels))
    assert np.array_equal(decode(dicom_bytes(pixels))[0], decode(png_bytes(pixels))[0])
    assert np.array_equal(load_gray(dicom_bytes(pixels), 48), load_gray(png_bytes(pixels), 48))


def test_16_bit_rescale_window_and_monochrome1():
    pixels = film(1)
    wide = pixels.astype(np.uint16) * 16 + 1000  # 12-bit detector values
    gray, info = decode(dicom_bytes(wide, slope=2.0, intercept=-1024))
    assert gray.dtype == np.uint8 and gray.min() == 0 and gray.max() == 255 and info["mode"] == "DICOM MONOCHROME2"
    assert np.corrcoef(gray.ravel(), pixels.ravel())[0, 1] > 0.999  # the scaling kept the picture
    inverted = decode(dicom_bytes(wide.max() + wide.min() - wide, photometric="MONOCHROME1"))[0]
    assert np.abs(inverted.astype(int) - decode(dicom_bytes(wide))[0]).max() <= 1  # white is low in MONOCHROME1
    centre = float(np.median(wide))
    windowed = decode(dicom_bytes(wide, window=(centre, 400.0)))[0]
    assert (windowed == 0).mean() > 0.2 and (windowed == 255).mean() > 0.2  # outside the window: clipped


def test_rle_compressed_decodes_like_uncompressed():
    pixels = film(2)
    assert np.array_equal(decode(dicom_bytes(pixels, syntax=RLELossless))[0], pixels)


@pytest.mark.parametrize("kind, match", [
    ("multi-frame", "multi-frame DICOM"), ("jpeg", "no installed decoder reads it: pip install pylibjpeg"),
    ("truncated", "not a readable DICOM|cannot be decoded"), ("colour", "not grayscale")])
def test_what_cannot_be_read_is_refused_without_header_values(kind, match):
    pixels = film(3)
    data = {"multi-frame": lambda: dicom_bytes(pixels, frames=3),
            "jpeg": lambda: dicom_bytes(pixels, syntax=JPEGBaseline8Bit),
            "truncated": lambda: dicom_bytes(pixels)[:-2000],
            "colour": lambda: dicom_bytes(pixels, photometric="RGB")}[kind]()
    with pytest.raises(BadImage, match=match) as err:
        decode(data)
    assert not any(v in str(err.value) for v in PHI.values())


def test_served_and_ingested_dicoms_leave_no_header_value_anywhere(workdir):
    served = decode_images([base64.b64encode(dicom_bytes(film(4))).decode()], 48)
    assert np.array_equal(served[0], load_gray(png_bytes(film(4)), 48))
    root = workdir / "src/chest_xray/train"
    for i in range(8):
        folder = root / ("PNEUMONIA" if i % 2 else "NORMAL")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"IM-{i:04d}-0001.dcm").write_bytes(dicom_bytes(film(i)))
    p = write_params(workdir, {"ingest": {"source": "folder", "input": str(workdir / "src")},
                               "data": {"image_size": 48}})
    manifest = ingest.run(p)
    assert len(manifest) == 8 and set(manifest.label) == {0, 1}
    written = "".join(f.read_text(errors="ignore") for f in workdir.rglob("*") if f.is_file()
                      and f.suffix in (".csv", ".json"))
    assert written and not any(v in written for v in PHI.values()), "a DICOM header value reached an output"
    assert json.loads((workdir / p.paths.ingest_report).read_text())



def test_a_patients_dicoms_share_a_keyed_hash_of_their_patient_id_and_never_the_id(workdir, monkeypatch):
    """Films named after no patient are grouped by the header's PatientID, through a secret key: the same
    patient under another key (another site's salt) gets another value, and the id appears nowhere."""
    monkeypatch.delenv(dicom.SALT_ENV, raising=False)
    folder = workdir / "src/NORMAL"
    folder.mkdir(parents=True)
    for i, pid in enumerate(["MRN-0042", "MRN-0042", "MRN-0077"]):
        (folder / f"IMG{i:05d}.dcm").write_bytes(dicom_bytes(film(2 * i), patient_id=pid))
    (folder / "IMG00003.dcm").write_bytes(dicom_bytes(film(6), phi=False))
    p = write_params(workdir, {"ingest": {"source": "folder", "input": str(workdir / "src")},
                               "data": {"image_size": 48}})
    manifest = ingest.run(p)
    ids = [manifest.patient_id[manifest.path.str.endswith(f"IMG{i:05d}.dcm")].item() for i in range(4)]
    assert ids[0] == ids[1] != ids[2] and ids[0].startswith("dicom-")
    assert ids[3] == "IMG00003", "a DICOM without PatientID keeps the file name's patient"
    written = "".join(f.read_text(errors="ignore") for f in workdir.rglob("*") if f.is_file() and f.suffix != ".dcm")
    assert "MRN-00" not in written, "a PatientID reached an output"
    assert (workdir / p.paths.patient_salt).stat().st_mode & 0o077 == 0, "the salt is readable by others"
    monkeypatch.setenv(dicom.SALT_ENV, "another site's secret")
    assert set(ingest.run(p).patient_id) & set(ids[:3]) == set(), "the key does not depend on the salt"
