"""The conditional GAN trains, saves, loads and samples images of the right class and shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ml.errors import CheckpointError, DatasetError
from ml.gan import (
    GAN_SIZE,
    Discriminator,
    Generator,
    load_gan,
    sample_images,
    save_samples,
    train_gan,
    write_class_grids,
)
from tests.ml._evalkit import write_colour_folder


def test_networks_shapes():
    gen, disc = Generator(3, ngf=8), Discriminator(3, ndf=8)
    labels = torch.tensor([0, 2, 1, 1])
    images = gen(torch.randn(4, gen.nz), labels)
    assert images.shape == (4, 3, GAN_SIZE, GAN_SIZE)
    assert images.min() >= -1 and images.max() <= 1
    assert disc(images, labels).shape == (4,)


@pytest.fixture(scope="module")
def gan_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("gan")
    data = write_colour_folder(root / "data", n_per_class=8, size=48)
    return train_gan(data, root / "gan.pt", epochs=1, batch_size=8, ngf=8, ndf=8, max_steps=3,
                     progress=False, train_split_only=False)


def test_trains_a_few_steps_and_round_trips(gan_file):
    gan = load_gan(gan_file)
    assert gan.class_names == ["a", "b", "c"]
    assert gan.training["steps"] == 3 and len(gan.history) == 1
    assert np.isfinite(gan.history[0]["d_loss"]) and np.isfinite(gan.history[0]["g_loss"])


def test_samples_have_the_right_shape_and_are_seeded(gan_file):
    gan = load_gan(gan_file)
    first = sample_images(gan, "b", 5, seed=1)
    assert len(first) == 5
    assert all(img.shape == (GAN_SIZE, GAN_SIZE, 3) and img.dtype == np.uint8 for img in first)
    np.testing.assert_array_equal(first[0], sample_images(gan, "b", 5, seed=1)[0])
    assert not np.array_equal(first[0], first[1])  # different noise, different image
    resized = sample_images(gan, "a", 2, size=96)
    assert resized[0].shape == (96, 96, 3)


def test_class_condition_changes_the_output(gan_file):
    gan = load_gan(gan_file)
    a, c = sample_images(gan, "a", 1, seed=4)[0], sample_images(gan, "c", 1, seed=4)[0]
    assert not np.array_equal(a, c)


def test_sample_files_and_grids(gan_file, tmp_path):
    gan = load_gan(gan_file)
    written = save_samples(gan, "a", 3, tmp_path / "out", grid=True)
    assert [p.name for p in written] == ["a-gan-0001.png", "a-gan-0002.png", "a-gan-0003.png"]
    assert Image.open(written[0]).size == (GAN_SIZE, GAN_SIZE)
    assert (tmp_path / "out" / "grid.png").is_file()
    grids = write_class_grids(gan_file, tmp_path / "grids", n=4)
    assert sorted(p.name for p in grids) == ["grid_a.png", "grid_b.png", "grid_c.png"]
    assert Image.open(grids[0]).size == (2 * (GAN_SIZE + 2) + 2,) * 2


def test_unknown_class_and_bad_file(gan_file, tmp_path):
    with pytest.raises(DatasetError, match="not one of"):
        sample_images(load_gan(gan_file), "zebra", 1)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(CheckpointError):
        load_gan(bad)


def test_diff_augment_keeps_shape_and_gradient():
    from ml.gan import diff_augment

    images = torch.rand(4, 3, GAN_SIZE, GAN_SIZE, requires_grad=True)
    out = diff_augment(images * 2 - 1)
    assert out.shape == images.shape
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert (out == 0).float().mean() > 0.2  # the cutout square (a quarter of each image) is zeroed
