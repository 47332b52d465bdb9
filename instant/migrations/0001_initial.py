"""The instant models, taken over from diagnostics (state only: the tables keep their names)."""

import uuid

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import instant.models

MOVED = ['instantcheck']


def move_content_types(apps, schema_editor):
    """Admin history and permissions follow the models: their content types change app."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label="instant", model=model).exists():
            ContentType.objects.filter(app_label="diagnostics", model=model).update(app_label="instant")


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
                    name='InstantCheck',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('file', models.FileField(max_length=300, upload_to=instant.models.instant_check_path)),
                        ('original_filename', models.CharField(max_length=255)),
                        ('sha256', models.CharField(max_length=64)),
                        ('width', models.PositiveIntegerField()),
                        ('height', models.PositiveIntegerField()),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('processing', 'Processing'), ('done', 'Done'), ('failed', 'Failed')], db_index=True, default='queued', max_length=20)),
                        ('error', models.TextField(blank=True)),
                        ('label', models.CharField(blank=True, max_length=40)),
                        ('probabilities', models.JSONField(blank=True, default=dict)),
                        ('confidence', models.FloatField(blank=True, null=True)),
                        ('low_confidence', models.BooleanField(default=False)),
                        ('all_probability', models.FloatField(blank=True, null=True)),
                        ('cam_overlay', models.FileField(blank=True, max_length=300, upload_to=instant.models.instant_check_path)),
                        ('segmentation_overlay', models.FileField(blank=True, max_length=300, upload_to=instant.models.instant_check_path)),
                        ('cell_counts', models.JSONField(blank=True, default=dict)),
                        ('blasts', models.PositiveIntegerField(blank=True, null=True)),
                        ('timings', models.JSONField(blank=True, default=dict)),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('created_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                        ('lab', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='instant_checks', to='diagnostics.lab')),
                        ('model_version', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, to='diagnostics.modelversion')),
                    ],
                    options={
                        'db_table': 'diagnostics_instantcheck',
                        'ordering': ['-created_at'],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, migrations.RunPython.noop),
    ]
