from django.contrib import admin

from diagnostics import models


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 0


@admin.register(models.Lab)
class LabAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [MembershipInline]


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "lab", "role")
    list_filter = ("role", "lab")


@admin.register(models.Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("accession_number", "lab", "specimen", "status", "who_flag", "created_at")
    list_filter = ("status", "specimen", "who_flag", "lab")
    search_fields = ("accession_number", "patient_pseudonym")


@admin.register(models.Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ("id", "case", "uploaded_by", "accepted_count", "created_at")


@admin.register(models.SlideImage)
class SlideImageAdmin(admin.ModelAdmin):
    list_display = ("case", "position", "original_filename", "status", "error_code", "attempts")
    list_filter = ("status", "error_code")
    search_fields = ("original_filename", "sha256")


@admin.register(models.ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "task", "arch", "short_sha", "is_active", "is_demo", "created_at")
    list_filter = ("task", "is_active", "is_demo")
    actions = ["activate"]

    @admin.action(description="Make the selected model the active one for its task")
    def activate(self, request, queryset):
        """Switch the active model (forward or back). Workers pick it up at their next batch."""
        from django.contrib import messages

        from diagnostics.services.models import activate_model_version

        versions = list(queryset)
        tasks = [version.task for version in versions]
        if len(tasks) != len(set(tasks)):
            self.message_user(request, "Select one model per task: only one can be active.", messages.ERROR)
            return
        for version in versions:
            activate_model_version(version, actor=request.user)
            self.message_user(request, f"{version.name} ({version.task}) is now the active model; "
                                       "workers use it from their next batch.", messages.SUCCESS)


@admin.register(models.Analysis)
class AnalysisAdmin(admin.ModelAdmin):
    list_display = ("image", "model_version", "label", "confidence", "low_confidence", "blasts", "created_at")
    list_filter = ("label", "low_confidence")


@admin.register(models.AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "verb", "actor", "actor_label", "case", "object_type", "object_id")
    list_filter = ("verb",)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(models.TaskRun)
class TaskRunAdmin(admin.ModelAdmin):
    list_display = ("task_name", "queue", "worker", "ok", "retries", "started_at", "finished_at")
    list_filter = ("task_name", "ok", "queue")
