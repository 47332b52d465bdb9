from __future__ import annotations

from diagnostics.models import ModelVersion
from diagnostics.services.models import active_models_demo


def marrowfind(request) -> dict:
    """Puts the active image model in every template, and whether any active model
    (image or cell) is a demo, so pages can say "demo model"."""
    active = ModelVersion.objects.filter(task="image", is_active=True).only("name", "is_demo", "sha256").first()
    return {"active_model": active, "demo_model_active": active_models_demo()}
