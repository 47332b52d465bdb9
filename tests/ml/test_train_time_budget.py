"""--time-budget: a run stops before an epoch that would overrun, and the schedule fits the budget."""

from __future__ import annotations

from ml.train import TrainConfig, planned_epochs, train
from tests.ml._evalkit import write_colour_folder


def test_planned_epochs_counts_what_fits():
    assert planned_epochs(1, 100.0, 950.0, 15) == 10  # 1 done + 9 whole epochs of 100 s
    assert planned_epochs(2, 100.0, 5000.0, 15) == 15  # never past --epochs
    assert planned_epochs(3, 100.0, 50.0, 15) == 3  # never fewer than those already run
    assert planned_epochs(1, 0.0, 10.0, 7) == 7


def test_a_tiny_budget_stops_after_the_first_epoch_and_keeps_it(tmp_path):
    data = write_colour_folder(tmp_path / "data", n_per_class=8)
    config = TrainConfig(data=data, out=tmp_path / "m.pt", arch="resnet18", weights=None, img_size=32, epochs=5,
                         batch_size=8, progress=False, val_fraction=0.25, test_fraction=0.25, seed=5,
                         time_budget_s=1e-3)
    result = train(config)
    assert [h["epoch"] for h in result.history] == [1]
    assert result.stopped_early and result.best_epoch == 1
    assert result.checkpoint.is_file()
