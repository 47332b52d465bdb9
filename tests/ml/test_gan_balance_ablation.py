"""--balance gan tops up minority classes from the cGAN; the ablation compares both arms on one split,
and over seeds calls a gain only where it exceeds its own spread."""

from __future__ import annotations

import pytest

from ml.checkpoint import load_checkpoint
from ml.gan import BALANCE_GAN_VERDICT, gan_ablation, summarise_ablation, train_gan
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
    assert card.training["balance_gan_verdict"] == BALANCE_GAN_VERDICT  # the measured verdict travels


def test_ablation_trains_one_arm_with_and_one_without_gan_images_on_the_same_split(unbalanced):
    result = gan_ablation(unbalanced / "data", unbalanced / "ablation", arch="resnet18", weights=None,
                          img_size=32, epochs=1, gan_epochs=1, batch_size=8, progress=False)
    cards = {arm: load_checkpoint(result[arm]["checkpoint"])[1] for arm in ("baseline", "gan")}
    assert cards["baseline"].training["gan_topup"] == {}
    topup = cards["gan"].training["gan_topup"]
    counts = cards["gan"].training["train_counts"]
    assert set(topup) == {"a"} and counts["a"] + topup["a"] == max(counts.values())
    assert cards["baseline"].training["split"] == cards["gan"].training["split"]
    assert result["delta_kappa"] == pytest.approx(result["gan"]["kappa"] - result["baseline"]["kappa"])
    assert result["helped"] == (result["delta_kappa"] > 0)


def _arm(acc, kappa):
    return {"accuracy": acc, "kappa": kappa, "f1_macro": acc}


def _seed(seed, base, gan):
    return {"seed": seed, "baseline": _arm(*base), "gan": _arm(*gan),
            "delta_accuracy": gan[0] - base[0], "delta_kappa": gan[1] - base[1]}


def test_a_consistent_gain_over_seeds_is_called_a_gain():
    summary = summarise_ablation([_seed(0, (0.80, 0.70), (0.82, 0.73)), _seed(1, (0.85, 0.78), (0.86, 0.80)),
                                  _seed(2, (0.83, 0.76), (0.85, 0.79))])
    assert summary["delta_kappa_mean"] == pytest.approx((0.03 + 0.02 + 0.03) / 3)
    assert summary["baseline_kappa_mean"] == pytest.approx((0.70 + 0.78 + 0.76) / 3)
    assert summary["helped"] is True


def test_a_gain_smaller_than_its_spread_is_not_called_a_gain():
    summary = summarise_ablation([_seed(0, (0.80, 0.70), (0.86, 0.79)), _seed(1, (0.85, 0.78), (0.80, 0.72)),
                                  _seed(2, (0.83, 0.76), (0.84, 0.77))])
    assert summary["delta_kappa_mean"] > 0  # positive on average ...
    assert summary["delta_kappa_sd"] > summary["delta_kappa_mean"]
    assert summary["helped"] is False  # ... but within the seed-to-seed spread
    assert summarise_ablation([_seed(0, (0.8, 0.7), (0.9, 0.8))])["helped"] is False  # one seed proves nothing
