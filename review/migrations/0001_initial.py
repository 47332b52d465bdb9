"""The review models, taken over from diagnostics (state only: the tables keep their names)."""

import uuid

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

MOVED = ['review', 'signout']


def move_content_types(apps, schema_editor):
    """Admin history and permissions follow the models: their content types change app."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label="review", model=model).exists():
            ContentType.objects.filter(app_label="diagnostics", model=model).update(app_label="review")


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
                    name='Review',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('label', models.CharField(max_length=40)),
                        ('agrees_with_ai', models.BooleanField(default=True)),
                        ('comment', models.TextField(blank=True)),
                        ('submission_token', models.UUIDField(default=uuid.uuid4, unique=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('analysis', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='reviews', to='diagnostics.analysis')),
                        ('image', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='reviews', to='diagnostics.slideimage')),
                        ('reviewer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='reviews', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'diagnostics_review',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='SignOut',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('version', models.PositiveIntegerField()),
                        ('signed_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('labels', models.JSONField(default=dict)),
                        ('summary', models.JSONField(blank=True, default=dict, help_text='Case summary at the moment of signing')),
                        ('amendment_reason', models.TextField(blank=True, help_text='Why the previous version was amended (version > 1)')),
                        ('mfa_authenticated_at', models.DateTimeField(blank=True, null=True)),
                        ('case', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='sign_outs', to='diagnostics.case')),
                        ('signed_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='sign_outs', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'diagnostics_signout',
                        'ordering': ['case', '-version'],
                        'constraints': [models.UniqueConstraint(fields=('case', 'version'), name='one_sign_out_per_case_version')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, migrations.RunPython.noop),
    ]
