"""A member's profile: how they are named on what they sign."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Profile(models.Model):
    """The signer's credentials as printed after their name on a report ("MD, FRCPath").
    The full name itself is the user's first and last name."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    credentials = models.CharField(max_length=120, blank=True, help_text='Printed after the name, e.g. "MD, FRCPath"')
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.user} ({self.credentials or 'no credentials'})"
