"""Real smear photographs from the CBC set load as 640×480 RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.imageio import inspect_image, load_image


@pytest.mark.realdata
def test_cbc_testing_images_load(real_data: Path) -> None:
    paths = sorted((real_data / "cbc" / "Testing" / "Images").glob("*.jpg"))[:5]
    if not paths:
        pytest.skip(f"no JPEGs in {real_data / 'cbc' / 'Testing' / 'Images'}")
    for path in paths:
        array = load_image(path)
        assert array.shape == (480, 640, 3) and array.dtype == np.uint8
        with Image.open(path) as image:
            np.testing.assert_array_equal(array, np.asarray(image.convert("RGB")))
        assert inspect_image(path).format == "JPEG"
