"""ml.analysis.scope_reference: which model's features place an image against its
training distribution (the out-of-scope check of the case pipeline and the instant check)."""

from types import SimpleNamespace

import numpy as np

from ml.analysis import ActiveModels, scope_reference

RGB = np.zeros((8, 8, 3), np.uint8)
STATS = {"feature_stats": {"mean": [0.0], "inv_cov": [[1.0]], "threshold": 3.0}}


class _CellModel:
    def __init__(self, scope):
        self.card = SimpleNamespace(scope=scope)
        self.calls = 0

    def image_features(self, rgb):
        self.calls += 1
        return np.full(4, 7.0, np.float32)


def _image_model(scope):
    return SimpleNamespace(card=SimpleNamespace(scope=scope))


def test_the_image_models_features_when_its_card_has_the_training_statistics():
    prediction = SimpleNamespace(features=np.ones(4, np.float32))
    cells = _CellModel(STATS)
    ref = scope_reference(RGB, prediction, ActiveModels(image=_image_model(STATS), cells=cells))
    assert ref["features"] is prediction.features
    assert cells.calls == 0


def test_the_cell_models_features_when_only_its_card_has_them():
    prediction = SimpleNamespace(features=np.ones(4, np.float32))
    cells = _CellModel(STATS)
    ref = scope_reference(RGB, prediction, ActiveModels(image=_image_model({}), cells=cells))
    assert cells.calls == 1
    assert ref["card"] is cells.card
    assert float(ref["features"][0]) == 7.0


def test_no_features_when_no_card_has_them():
    prediction = SimpleNamespace(features=np.ones(4, np.float32))
    ref = scope_reference(RGB, prediction, ActiveModels(image=_image_model(None), cells=_CellModel({})))
    assert ref["features"] is None
