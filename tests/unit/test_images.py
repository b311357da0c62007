import io

import numpy as np
import pytest
from PIL import Image

from tasks.imaging import images
from tests.helpers import image_bytes


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_16bit_png_is_scaled_by_its_real_range_not_clipped():
    arr = np.linspace(1000, 4000, 64 * 64).reshape(64, 64).astype(np.uint16)  # a 12-bit detector
    gray, info = images.decode(_save(Image.fromarray(arr), "PNG"))
    assert info["mode"].startswith("I;16")
    assert gray.dtype == np.uint8 and gray.min() == 0 and gray.max() == 255
    assert len(np.unique(gray)) > 200  # the range was stretched, not clipped to 255


def test_rgba_palette_cmyk_and_bilevel_become_8bit_gray():
    base = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1)), mode="L")
    expected = np.asarray(base)
    for img, fmt in [(base.convert("RGBA"), "PNG"), (base.convert("P"), "PNG"), (base.convert("CMYK"), "JPEG"),
                     (base.convert("RGB"), "JPEG")]:
        gray, info = images.decode(_save(img, fmt))
        assert gray.shape == (64, 64) and gray.dtype == np.uint8, info
        assert np.abs(gray.astype(int) - expected).mean() < 6, info["mode"]
    gray, _ = images.decode(_save(base.convert("1"), "PNG"))
    assert set(np.unique(gray)) <= {0, 255}


def test_exif_orientation_is_applied():
    arr = np.zeros((40, 80), np.uint8)
    arr[:, :10] = 255  # bright stripe on the left of a landscape image
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    gray, info = images.decode(_save(img, "JPEG", exif=exif, quality=95))
    assert (info["width"], info["height"]) == (40, 80)
    assert gray[:10].mean() > 200  # the stripe is now on top


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"definitely not an image", "not an image"),
    (image_bytes(1)[:300], "truncated"),
    (image_bytes(1, size=16), "too small"),
])
def test_bad_images_raise_with_reason(data, reason):
    with pytest.raises(images.BadImage, match=reason):
        images.decode(data, min_side=32)


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(images.BadImage, match="decompression bomb"):
        images.decode(image_bytes(1, size=64), max_pixels=1000)


def test_load_gray_resizes_to_square():
    out = images.load_gray(image_bytes(3, size=100), 48)
    assert out.shape == (48, 48) and out.dtype == np.uint8


def test_a_multi_frame_image_is_refused_not_cut_to_its_first_frame():
    frames = [Image.fromarray(np.full((64, 64), v, np.uint8)) for v in (40, 200)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(images.BadImage, match="multi-frame image \\(2 frames\\)"):
        images.decode(buf.getvalue())
    gray, _ = images.decode(_save(frames[1], "GIF"))  # one frame is fine
    assert gray.mean() > 150


def test_a_mode_that_cannot_become_gray_is_a_bad_image(monkeypatch):
    # no file at hand has such a mode (PIL converts every mode it writes): the conversion is made to fail
    def unsupported(img):
        raise ValueError("conversion from XYZ to RGB not supported")

    monkeypatch.setattr(images, "_to_gray", unsupported)
    with pytest.raises(images.BadImage, match="cannot convert image mode L to grayscale"):
        images.decode(image_bytes(1, size=64))
