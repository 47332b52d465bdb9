"""The one-off instant check (the table keeps its ``diagnostics_instantcheck`` name)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from diagnostics.models import ImageStatus, Lab, ModelVersion


def instant_check_path(instance: InstantCheck, filename: str) -> str:
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return f"labs/{instance.lab_id}/instant/{instance.id}/{uuid.uuid4().hex}{suffix}"


class InstantCheck(models.Model):
    """A one-off single-image check (the quick path): not part of any case,
    analysed on the priority queue, visible to the members of its lab."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="instant_checks")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    file = models.FileField(upload_to=instant_check_path, max_length=300)
    original_filename = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=ImageStatus.choices, default=ImageStatus.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, null=True, blank=True)
    label = models.CharField(max_length=40, blank=True)
    probabilities = models.JSONField(default=dict, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    low_confidence = models.BooleanField(default=False)
    all_probability = models.FloatField(null=True, blank=True)
    cam_overlay = models.FileField(upload_to=instant_check_path, max_length=300, blank=True)
    segmentation_overlay = models.FileField(upload_to=instant_check_path, max_length=300, blank=True)
    cell_counts = models.JSONField(default=dict, blank=True)
    blasts = models.PositiveIntegerField(null=True, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "diagnostics_instantcheck"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"instant {self.id} ({self.status})"
