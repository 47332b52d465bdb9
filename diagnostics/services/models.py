"""The model registry: which checkpoint the workers use."""

from __future__ import annotations

from django.db import transaction

from diagnostics import audit
from diagnostics.models import AuditEvent, ModelVersion


def is_demo_version(version: ModelVersion | None) -> bool:
    """Results of this model must say "demo model, not for diagnosis". The one rule,
    for the image and the cell model alike: the registry flag, or what the model's
    card says (``ml.gates.is_demo_card``: flagged demo, or trained on synthetic data)."""
    from ml.gates import is_demo_card

    if version is None:
        return False
    return bool(version.is_demo) or (bool(version.card) and is_demo_card(version.card))


def active_models_demo() -> bool:
    """Any active model (image or cell) is a demo: every page says so."""
    return any(is_demo_version(version) for version in ModelVersion.objects.filter(is_active=True))


def active_model_version(task: str = "image") -> ModelVersion | None:
    return ModelVersion.objects.filter(task=task, is_active=True).first()


@transaction.atomic
def activate_model_version(version: ModelVersion, *, actor=None) -> ModelVersion:
    """Make ``version`` the one active model of its task. Workers compare the
    active version's SHA-256 with the one they hold at each batch, so the
    switch needs no restart."""
    ModelVersion.objects.select_for_update().filter(task=version.task, is_active=True).exclude(pk=version.pk).update(
        is_active=False
    )
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.refresh_from_db()
    audit.record(AuditEvent.Verb.MODEL_ACTIVATED, actor=actor, obj=version, model_version=version)
    return version


class RegistryError(ValueError):
    """A checkpoint or a model reference that cannot be used; the message says why."""


def register_checkpoint(
    path, *, name: str | None = None, activate: bool = False, actor=None, is_demo: bool | None = None
) -> tuple[ModelVersion, bool]:
    """Register a Marrow-Find checkpoint as a ModelVersion (idempotent on its SHA-256).

    Everything recorded comes from the file itself: the SHA-256 of its bytes,
    and arch, classes, binary map, task, metrics and the demo flag from its
    model card (``ml.checkpoint``). The checkpoint is fully loaded once, so a
    file that would fail in a worker fails here, with the reason, instead.
    Returns ``(version, created)``.
    """
    from pathlib import Path

    from ml.checkpoint import file_sha256, load_checkpoint
    from ml.errors import CheckpointError

    path = Path(path).expanduser().resolve()
    try:
        _model, card = load_checkpoint(path)
    except CheckpointError as exc:
        raise RegistryError(str(exc)) from exc
    del _model
    sha256 = file_sha256(path)
    card_dict = card.to_dict()
    with transaction.atomic():
        version, created = ModelVersion.objects.get_or_create(
            sha256=sha256,
            defaults={
                "name": (name or path.stem)[:120],
                "task": card.task,
                "arch": card.arch,
                "class_names": list(card.class_names),
                "binary_map": card.binary_map,
                "checkpoint_path": str(path),
                "metrics": card.metrics or {},
                "card": card_dict,
                "is_demo": bool(card.demo) if is_demo is None else is_demo,
            },
        )
        if not created and version.checkpoint_path != str(path) and not Path(version.checkpoint_path).is_file():
            # The same bytes moved: follow them.
            version.checkpoint_path = str(path)
            version.save(update_fields=["checkpoint_path"])
        if created:
            audit.record(
                AuditEvent.Verb.MODEL_REGISTERED,
                actor=actor,
                obj=version,
                model_version=version,
                arch=version.arch,
                task=version.task,
                sha256=sha256,
                demo=version.is_demo,
                path=str(path),
            )
        if activate and not version.is_active:
            version = activate_model_version(version, actor=actor)
    return version, created


def find_model_version(reference: str) -> ModelVersion:
    """A model version by id or by a prefix (at least 6 characters) of its SHA-256.

    Raises :class:`RegistryError` when nothing or more than one version matches.
    """
    reference = reference.strip().lower()
    candidates: dict[int, ModelVersion] = {}
    if reference.isdigit():
        for version in ModelVersion.objects.filter(pk=int(reference)):
            candidates[version.pk] = version
    if len(reference) >= 6 and all(ch in "0123456789abcdef" for ch in reference):
        for version in ModelVersion.objects.filter(sha256__startswith=reference):
            candidates[version.pk] = version
    if not candidates:
        raise RegistryError(f"no model version with id or SHA-256 prefix {reference!r}")
    if len(candidates) > 1:
        listing = ", ".join(f"#{v.pk} {v.short_sha}" for v in candidates.values())
        raise RegistryError(f"{reference!r} matches several model versions ({listing}); give more of the SHA-256")
    return next(iter(candidates.values()))
