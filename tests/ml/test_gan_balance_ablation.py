"""--balance gan tops up minority classes from the cGAN, and the ablation compares both runs."""

from __future__ import annotations

import pytest

from ml.checkpoint import load_checkpoint
from ml.gan import gan_ablation, train_gan
from ml.train import TrainConfig, train
from tests.ml._evalkit import write_colour_folder


@pytest.fixture(scope="module")
def unbalanced(tmp_path_factory):
    root = tmp_path_factory.mktemp("unbalanced")
    write_colour_folder(root / "data", n_per_class=12, size=40)
    for extra in range(5, 13):  # class "a" keeps only 4 images
        (root / "data" / "a" / f"a-{extra:03d}.png").unlink()
    return root


def test_balance_gan_tops_up_the_training_split(unbalanced):
    gan = train_gan(unbalanced / "data", unbalanced / "gan.pt", epochs=1, batch_size=8, ngf=8, ndf=8,
                    max_steps=2, progress=False)
    result = train(TrainConfig(
        data=unbalanced / "data", out=unbalanced / "m.pt", arch="resnet18", weights=None, img_size=32,
        epochs=1, batch_size=8, balance="gan", gan_model=gan, progress=False,
        val_fraction=0.25, test_fraction=0.0,
    ))
    _, card = load_checkpoint(result.checkpoint)
    counts = card.training["train_counts"]
    topup = card.training["gan_topup"]
    assert set(topup) == {"a"}  # only the minority class is topped up
    assert counts["a"] + topup["a"] == max(counts.values())


def test_ablation_runs_both_arms_on_one_split(unbalanced):
    result = gan_ablation(unbalanced / "data", unbalanced / "ablation", arch="resnet18", weights=None,
                          img_size=32, epochs=1, gan_epochs=1, batch_size=8, progress=False)
    assert result["baseline"]["balance"] == "weights" and result["gan"]["balance"] == "gan"
    for arm in ("baseline", "gan"):
        assert 0.0 <= result[arm]["accuracy"] <= 1.0
    assert result["delta_accuracy"] == pytest.approx(result["gan"]["accuracy"] - result["baseline"]["accuracy"])
    assert isinstance(result["helped"], bool)
