"""Assistant conversations (tables keep their ``diagnostics_*`` names)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from diagnostics.models import Case


class Conversation(models.Model):
    """An assistant conversation, stored per user (and per case when asked from a case page)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "diagnostics_conversation"


class ChatMessage(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=[("user", "user"), ("assistant", "assistant")])
    text = models.TextField()
    sources = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "diagnostics_chatmessage"
        ordering = ["created_at", "id"]
