"""Fixtures for the ml tests.

``one_torch_thread``: one intra-op thread and a fixed torch seed for the
test, restoring the thread count after. The machine's few cores are shared
with other test runs, and a fixed seed keeps model-building tests
reproducible. Opt in per module with
``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    import torch  # here, not at import: most ml tests never build a model

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(previous)
