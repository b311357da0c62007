"""Decode any image a real archive holds into 8-bit grayscale, and resize it: the formats PIL reads, and
DICOM (tasks.imaging.dicom).

The one decoder used by ingest, training and serving, so the same file always
gives the same pixels. Raises `BadImage` with a short reason for anything that is
not a usable image.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tasks.core.errors import BadImage

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".dcm", ".dicom"}


def _to_gray(img: Image.Image) -> np.ndarray:
    """8-bit grayscale pixels of `img`, whatever its mode.

    16-bit and float images are scaled by their real range (min..max), not clipped,
    since X-ray PNGs often use only 10 to 12 of their 16 bits.
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)  # float32: a large 16-bit film would double in float64
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return np.round(scaled).astype(np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))  # transparent film reads as black
        img = Image.alpha_composite(background, rgba)
    if img.mode != "L":
        img = img.convert("RGB").convert("L")  # CMYK, palette, bilevel and RGB all pass through RGB
    return np.asarray(img, dtype=np.uint8)


def decode(data: bytes, min_side: int = 1, max_pixels: int = 80_000_000) -> tuple[np.ndarray, dict]:
    """Decode image bytes to (uint8 HxW grayscale, info) with EXIF orientation applied.

    info holds the original `width`, `height` (after orientation) and `mode`.
    """
    if not data:
        raise BadImage("empty file (0 bytes)")
    from tasks.imaging import dicom

    if dicom.is_dicom(data):
        gray, info = dicom.decode(data, max_pixels)
        if min(gray.shape) < min_side:
            raise BadImage(f"too small ({gray.shape[1]}x{gray.shape[0]}); ingest.min_side is {min_side}")
        return gray, info
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise BadImage(f"{width}x{height} exceeds the {max_pixels:,}-pixel limit (decompression bomb?)")
            frames = getattr(img, "n_frames", 1)
            if frames > 1:  # which frame is the radiograph is not ours to guess
                raise BadImage(f"multi-frame image ({frames} frames); export the frame to use as its own file")
            img.load()
            mode = img.mode
            img = ImageOps.exif_transpose(img)
    except UnidentifiedImageError:
        raise BadImage("not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadImage(f"decompression bomb: {err}") from None
    except (OSError, SyntaxError, ValueError) as err:
        if isinstance(err, BadImage):
            raise
        raise BadImage(f"truncated or corrupt image ({err})") from None
    width, height = img.size
    if min(width, height) < min_side:
        raise BadImage(f"too small ({width}x{height}); ingest.min_side is {min_side}")
    try:
        gray = _to_gray(img)
    except (ValueError, OSError) as err:  # a mode PIL reads but cannot convert
        raise BadImage(f"cannot convert image mode {mode} to grayscale ({err})") from None
    return gray, {"width": width, "height": height, "mode": mode}


def resize(gray: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 grayscale to size x size (aspect not kept, as in the public dataset)."""
    if gray.shape == (size, size):
        return gray
    img = Image.fromarray(gray, mode="L")
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0), dtype=np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    """uint8 grayscale pixels as a PNG file (what a client would send the served model)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def load_gray(data: bytes, size: int, min_side: int = 1, max_pixels: int = 80_000_000) -> np.ndarray:
    """Bytes -> uint8 (size, size) grayscale: the preprocessing shared by training and serving."""
    gray, _ = decode(data, min_side=min_side, max_pixels=max_pixels)
    return resize(gray, size)
