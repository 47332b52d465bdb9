"""ml.deepzoom against the Deep Zoom format: level count and sizes, tile grid and
sizes with overlap, the .dzi descriptor as OpenSeadragon reads it, and the tiles
put back together give the image again."""

from __future__ import annotations

import io
import math
from xml.etree import ElementTree

import numpy as np
import pytest
from PIL import Image

from ml.deepzoom import DZI_NAMESPACE, DeepZoomLayout, deep_zoom_tiles, write_deep_zoom


def noise_image(width: int, height: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


@pytest.mark.parametrize(
    ("width", "height", "levels"),
    [(1, 1, 1), (2, 1, 2), (3, 3, 3), (640, 480, 11), (1024, 768, 11), (1025, 10, 12), (2592, 1944, 13)],
)
def test_level_count_is_ceil_log2_of_the_longer_side_plus_one(width, height, levels):
    layout = DeepZoomLayout(width, height)
    assert layout.level_count == levels == math.ceil(math.log2(max(width, height))) + 1
    assert layout.level_size(layout.max_level) == (width, height)
    assert layout.level_size(0) == (1, 1)


def test_each_level_halves_the_one_above_rounding_up():
    layout = DeepZoomLayout(333, 101)
    sizes = [layout.level_size(level) for level in range(layout.level_count)][::-1]
    assert sizes[:4] == [(333, 101), (167, 51), (84, 26), (42, 13)]
    for (w, h), (w2, h2) in zip(sizes, sizes[1:]):
        assert (w2, h2) == (math.ceil(w / 2), math.ceil(h / 2))
    with pytest.raises(ValueError):
        layout.level_size(layout.level_count)


def test_tile_bounds_carry_the_overlap_of_each_neighbour_only():
    layout = DeepZoomLayout(640, 480, tile_size=254, overlap=1)
    assert layout.tile_grid(10) == (3, 2)
    assert layout.tile_bounds(10, 0, 0) == (0, 0, 255, 255)  # right and bottom neighbour
    assert layout.tile_bounds(10, 1, 0) == (253, 0, 509, 255)  # both sides: 256 wide
    assert layout.tile_bounds(10, 2, 1) == (507, 253, 640, 480)  # last column and row: up to the edge
    assert layout.tile_grid(9) == (2, 1)  # 320×240
    assert layout.tile_bounds(9, 1, 0) == (253, 0, 320, 240)
    assert layout.tile_grid(0) == (1, 1) and layout.tile_bounds(0, 0, 0) == (0, 0, 1, 1)
    with pytest.raises(ValueError):
        layout.tile_bounds(10, 3, 0)


def test_written_pyramid_has_exactly_the_format_files_with_the_format_sizes(tmp_path):
    image = noise_image(600, 300, seed=1)
    layout = write_deep_zoom(image, tmp_path, "original", tile_size=128, overlap=2, format="png")

    root = ElementTree.parse(tmp_path / "original.dzi").getroot()
    assert root.tag == f"{{{DZI_NAMESPACE}}}Image"
    assert (root.get("Format"), root.get("Overlap"), root.get("TileSize")) == ("png", "2", "128")
    size = root.find(f"{{{DZI_NAMESPACE}}}Size")
    assert (size.get("Width"), size.get("Height")) == ("600", "300")

    files = tmp_path / "original_files"
    assert sorted(int(p.name) for p in files.iterdir()) == list(range(11))  # ceil(log2 600) = 10
    expected = set()
    for level in range(11):
        w, h = math.ceil(600 / 2 ** (10 - level)), math.ceil(300 / 2 ** (10 - level))
        cols, rows = math.ceil(w / 128), math.ceil(h / 128)
        for col in range(cols):
            for row in range(rows):
                expected.add(f"{level}/{col}_{row}.png")
                with Image.open(files / str(level) / f"{col}_{row}.png") as tile:
                    left = 2 if col else 0
                    top = 2 if row else 0
                    tw = min(128 + 2, w - col * 128) + left
                    th = min(128 + 2, h - row * 128) + top
                    assert tile.size == (tw, th), (level, col, row)
    written = {f"{p.parent.name}/{p.name}" for p in files.glob("*/*")}
    assert written == expected
    assert layout.tile_count == len(expected)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no work folder left behind


def test_full_level_tiles_put_back_together_are_the_image(tmp_path):
    image = noise_image(300, 200, seed=2)
    write_deep_zoom(image, tmp_path, "x", tile_size=64, overlap=1, format="png")
    layout = DeepZoomLayout.from_descriptor((tmp_path / "x.dzi").read_text())
    canvas = np.zeros_like(image)
    cols, rows = layout.tile_grid(layout.max_level)
    for col in range(cols):
        for row in range(rows):
            x0, y0, x1, y1 = layout.tile_bounds(layout.max_level, col, row)
            tile = np.asarray(Image.open(tmp_path / "x_files" / str(layout.max_level) / f"{col}_{row}.png"))
            assert tile.shape[:2] == (y1 - y0, x1 - x0)
            canvas[y0:y1, x0:x1] = tile
    np.testing.assert_array_equal(canvas, image)


def test_lower_levels_are_averages_of_the_image():
    image = np.zeros((64, 128, 3), np.uint8)
    image[:, :64] = (200, 0, 0)
    image[:, 64:] = (0, 0, 200)
    layout, tiles = deep_zoom_tiles(image, format="png")
    by_level = {level: data for level, col, row, data in tiles if (col, row) == (0, 0)}
    one_by_one = np.asarray(Image.open(io.BytesIO(by_level[0])))
    assert one_by_one.shape == (1, 1, 3)
    np.testing.assert_allclose(one_by_one[0, 0], (100, 0, 100), atol=2)
    two_by_one = np.asarray(Image.open(io.BytesIO(by_level[1])))
    assert two_by_one.shape == (1, 2, 3)
    np.testing.assert_allclose(two_by_one[0, 0], (200, 0, 0), atol=2)
    np.testing.assert_allclose(two_by_one[0, 1], (0, 0, 200), atol=2)


def test_jpeg_tiles_are_rgb_and_close_to_the_image_and_png_keeps_alpha(tmp_path):
    image = np.full((100, 80, 3), (180, 120, 200), np.uint8)
    write_deep_zoom(image, tmp_path, "j", format="jpeg", quality=90)
    with Image.open(tmp_path / "j_files" / "7" / "0_0.jpeg") as tile:
        assert tile.format == "JPEG" and tile.mode == "RGB" and tile.size == (80, 100)
        assert np.abs(np.asarray(tile).astype(int) - (180, 120, 200)).max() <= 3
    rgba = noise_image(50, 40, seed=3, channels=4)
    write_deep_zoom(rgba, tmp_path, "a", format="png")
    with Image.open(tmp_path / "a_files" / "6" / "0_0.png") as tile:
        assert tile.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(tile), rgba)


def test_a_second_run_replaces_the_first_pyramid_whole(tmp_path):
    write_deep_zoom(noise_image(700, 700), tmp_path, "p", tile_size=128)
    assert (tmp_path / "p_files" / "10" / "5_5.jpeg").exists()
    write_deep_zoom(noise_image(100, 60), tmp_path, "p", tile_size=128)
    assert DeepZoomLayout.from_descriptor((tmp_path / "p.dzi").read_bytes()).as_dict()["width"] == 100
    assert sorted(int(p.name) for p in (tmp_path / "p_files").iterdir()) == list(range(8))
    assert not (tmp_path / "p_files" / "10").exists()


@pytest.mark.parametrize(
    "kwargs",
    [{"width": 0, "height": 5}, {"width": 5, "height": 5, "overlap": 254}, {"width": 5, "height": 5, "format": "gif"}],
)
def test_bad_layouts_are_refused(kwargs):
    with pytest.raises(ValueError):
        DeepZoomLayout(**kwargs)


def test_bad_input_and_names_are_refused(tmp_path):
    with pytest.raises(ValueError):
        deep_zoom_tiles(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError):
        write_deep_zoom(noise_image(4, 4), tmp_path, "../escape")
    with pytest.raises(ValueError):
        DeepZoomLayout.from_descriptor('<Image xmlns="urn:other" TileSize="1" Overlap="0" Format="png"/>')
