from __future__ import annotations

from diagnostics.models import ModelVersion


def marrowfind(request) -> dict:
    """Puts the active model in every template, so pages can say "demo model"."""
    active = ModelVersion.objects.filter(task="image", is_active=True).only("name", "is_demo", "sha256").first()
    return {"active_model": active, "demo_model_active": bool(active and active.is_demo)}
