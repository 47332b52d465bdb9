from django.contrib import admin

from review import models


@admin.register(models.Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ("image", "reviewer", "label", "agrees_with_ai", "created_at")
