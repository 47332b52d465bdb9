"""The reports models, taken over from diagnostics (state only: the tables keep their names)."""

import uuid

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

MOVED = ['report']


def move_content_types(apps, schema_editor):
    """Admin history and permissions follow the models: their content types change app."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label="reports", model=model).exists():
            ContentType.objects.filter(app_label="diagnostics", model=model).update(app_label="reports")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('diagnostics', '0004_move_models_to_apps'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    # State only: the tables keep their diagnostics_* names (Meta.db_table), so no row moves.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Report',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('version', models.PositiveIntegerField()),
                        ('status', models.CharField(choices=[('draft', 'Draft'), ('final', 'Final'), ('superseded', 'Superseded')], max_length=12)),
                        ('pdf', models.BinaryField()),
                        ('sha256', models.CharField(db_index=True, max_length=64)),
                        ('signed_at', models.DateTimeField(blank=True, null=True)),
                        ('demo', models.BooleanField(default=False)),
                        ('content_sha256', models.CharField(blank=True, db_index=True, help_text="SHA-256 of the report's canonical content; its first 16 hex digits are in the QR code", max_length=64)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('case', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='reports', to='diagnostics.case')),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                        ('signed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='reports_signed', to=settings.AUTH_USER_MODEL)),
                        ('superseded_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to='reports.report')),
                    ],
                    options={
                        'db_table': 'diagnostics_report',
                        'ordering': ['-created_at'],
                        'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'draft'), _negated=True), fields=('case', 'version'), name='one_final_report_per_case_version')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, migrations.RunPython.noop),
    ]
