"""Review, SignOut, Report, Conversation, ChatMessage and InstantCheck move to their own apps
(review, reports, assistant, instant). Their tables and rows stay where they are:
this migration only takes them out of the diagnostics state; each app's 0001
puts them in its own (tests/migrations/test_app_split_keeps_rows.py)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('diagnostics', '0003_reports_content_sha256'),
    ]

    # State only: the tables keep their diagnostics_* names (Meta.db_table), so no row moves.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='conversation',
                    name='case',
                ),
                migrations.RemoveField(
                    model_name='conversation',
                    name='user',
                ),
                migrations.RemoveField(
                    model_name='instantcheck',
                    name='created_by',
                ),
                migrations.RemoveField(
                    model_name='instantcheck',
                    name='lab',
                ),
                migrations.RemoveField(
                    model_name='instantcheck',
                    name='model_version',
                ),
                migrations.RemoveField(
                    model_name='report',
                    name='case',
                ),
                migrations.RemoveField(
                    model_name='report',
                    name='created_by',
                ),
                migrations.RemoveField(
                    model_name='report',
                    name='signed_by',
                ),
                migrations.RemoveField(
                    model_name='report',
                    name='superseded_by',
                ),
                migrations.RemoveField(
                    model_name='review',
                    name='analysis',
                ),
                migrations.RemoveField(
                    model_name='review',
                    name='image',
                ),
                migrations.RemoveField(
                    model_name='review',
                    name='reviewer',
                ),
                migrations.RemoveField(
                    model_name='signout',
                    name='case',
                ),
                migrations.RemoveField(
                    model_name='signout',
                    name='signed_by',
                ),
                migrations.DeleteModel(
                    name='ChatMessage',
                ),
                migrations.DeleteModel(
                    name='Conversation',
                ),
                migrations.DeleteModel(
                    name='InstantCheck',
                ),
                migrations.DeleteModel(
                    name='Report',
                ),
                migrations.DeleteModel(
                    name='Review',
                ),
                migrations.DeleteModel(
                    name='SignOut',
                ),
            ],
            database_operations=[],
        ),
    ]
