"""The one checkpoint format: model weights plus the card that says what they are.

A checkpoint is a ``torch.save`` file holding only plain containers and tensors::

    {"format": "marrowfind-checkpoint", "format_version": 1,
     "card": {...JSON-compatible model card...},
     "state_dict": {name: tensor, ...}}

so :func:`load_checkpoint` can read it with ``torch.load(weights_only=True)``:
a hostile file cannot run code when a lab server opens it. The card is kept
JSON-compatible on save (NumPy scalars become numbers, tuples become lists)
so it also fits a database column or an API response unchanged.

The SHA-256 of the file (returned by :func:`save_checkpoint`, computed by
:func:`file_sha256`) is the model version recorded next to every prediction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from ml.errors import CheckpointError
from ml.models import (
    ARCHS,
    MarrowClassifier,
    build_model,
    imagenet_normalization,
    input_size_for,
)

CHECKPOINT_FORMAT = "marrowfind-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class ModelCard:
    """What a checkpoint is: enough to rebuild, preprocess for, and judge the model."""

    arch: str
    class_names: list[str]
    binary_map: dict[str, int] | None
    input_size: int
    mean: list[float]
    std: list[float]
    task: str = "image"  # "image" (smear/subtype) or "cell" (blast-or-not crops)
    demo: bool = False  # True when trained on synthetic data: "demo model, not for diagnosis"
    training: dict = field(default_factory=dict)  # data summary, layout, split, epochs, seed, ...
    metrics: dict = field(default_factory=dict)  # validation metrics: accuracy, kappa, f1_weighted, ...
    # Held-out figures the gates read (ml.gates), e.g. {"pbc_accuracy": 0.95, "cnmc_blast_auc": ...,
    # "held_out": True}; empty on cards written before it existed.
    validation: dict = field(default_factory=dict)
    # What the model is for and how far from its training data an input may be (ml.scope):
    # {"kinds": [...], "feature_stats": {...}}; empty on old cards.
    scope: dict = field(default_factory=dict)
    created_at: str = field(default_factory=_utc_now)
    format_version: int = CHECKPOINT_FORMAT_VERSION

    @classmethod
    def for_model(cls, model: MarrowClassifier, **fields: Any) -> ModelCard:
        """A card whose arch, classes, input size and normalisation come from ``model``'s arch."""
        mean, std = imagenet_normalization(model.arch)
        defaults: dict[str, Any] = {
            "arch": model.arch,
            "class_names": list(model.class_names),
            "binary_map": dict(model.binary_map) if model.binary_map is not None else None,
            "input_size": input_size_for(model.arch),
            "mean": list(mean),
            "std": list(std),
        }
        return cls(**{**defaults, **fields})

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (raises CheckpointError for values JSON cannot hold)."""
        return _json_compatible(dataclasses.asdict(self), "the model card")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"the model card has unknown fields {unknown}")
        try:
            return cls(**data)
        except TypeError as exc:  # a required field is missing
            raise CheckpointError(f"the model card is incomplete: {exc}") from exc


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks (checkpoints are hundreds of MB)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def save_checkpoint(path: str | Path, model: MarrowClassifier, card: ModelCard) -> str:
    """Write ``model`` and ``card`` to ``path`` atomically; return the file's SHA-256.

    The card must describe the model (same arch, class names and binary map),
    so a checkpoint can never claim classes its weights do not have.
    """
    if not isinstance(model, MarrowClassifier):
        raise TypeError(f"save_checkpoint needs a MarrowClassifier, got {type(model).__name__}")
    if card.arch != model.arch or list(card.class_names) != model.class_names or card.binary_map != model.binary_map:
        raise CheckpointError(
            f"the card (arch={card.arch!r}, classes={list(card.class_names)}, binary_map={card.binary_map}) "
            f"does not describe the model (arch={model.arch!r}, classes={model.class_names}, "
            f"binary_map={model.binary_map})"
        )
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "card": card.to_dict(),
        # contiguous CPU copies: loadable on any machine, whatever the training device/layout
        "state_dict": {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then rename: a crash never leaves half a checkpoint under its name.
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(payload, stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return file_sha256(path)


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> tuple[MarrowClassifier, ModelCard]:
    """Rebuild the model from the card (no pretrained download) and load its weights strictly.

    Returns the model in eval mode. Raises :class:`CheckpointError` with the
    reason for a missing file, a file that is not a PyTorch file, a file with
    disallowed (possibly malicious) objects, another format, an unknown arch
    or weights that do not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint file at {path}.")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path} contains objects other than tensors and plain data; it was not loaded, "
                f"because unpickling them could run code. Only load checkpoints saved by Marrow-Find."
            ) from exc
        raise CheckpointError(f"{path} is not a PyTorch checkpoint file ({type(exc).__name__}: {exc}).") from exc

    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path} is not a Marrow-Find checkpoint (format tag {found!r}, expected {CHECKPOINT_FORMAT!r}). "
            f"Raw state dicts are loaded with build_model(weights=path) instead."
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or version > CHECKPOINT_FORMAT_VERSION or version < 1:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this Marrow-Find reads up to "
            f"{CHECKPOINT_FORMAT_VERSION}. Upgrade Marrow-Find to load it."
        )
    card_data, state_dict = payload.get("card"), payload.get("state_dict")
    if not isinstance(card_data, dict) or not isinstance(state_dict, dict):
        raise CheckpointError(f"{path} lacks its card or its state dict.")
    try:
        card = ModelCard.from_dict(card_data)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}.") from exc
    if card.arch not in ARCHS:
        raise CheckpointError(f"{path} holds an unknown arch {card.arch!r}; known: {', '.join(ARCHS)}.")
    try:
        model = build_model(card.arch, card.class_names, binary_map=card.binary_map, weights=None)
    except ValueError as exc:
        raise CheckpointError(f"{path} has an unusable card: {exc}.") from exc
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"The weights in {path} do not fit a {card.arch} with its card's classes: {exc}") from exc
    model.weights_source = f"checkpoint:{path}"
    return model.eval(), card


def _json_compatible(value: Any, what: str) -> Any:
    """Round-trip through JSON so only dict/list/str/int/float/bool/None remain."""

    def convert(obj: Any) -> Any:
        if hasattr(obj, "tolist"):  # NumPy scalars and arrays, tensors
            return obj.tolist()
        if isinstance(obj, (set, frozenset)):
            return sorted(obj)
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON-compatible")

    try:
        return json.loads(json.dumps(value, default=convert))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{what} can only hold JSON-compatible values: {exc}") from exc
