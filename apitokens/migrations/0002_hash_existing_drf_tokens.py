"""Existing DRF tokens (stored in clear in ``authtoken_token``) keep working:
each becomes an ApiToken holding its digest, and the clear copy is deleted."""

import hashlib

from django.db import migrations


def hash_existing_tokens(apps, schema_editor):
    Token = apps.get_model("authtoken", "Token")
    ApiToken = apps.get_model("apitokens", "ApiToken")
    for token in Token.objects.all().iterator():
        ApiToken.objects.update_or_create(
            user_id=token.user_id,
            defaults={"digest": hashlib.sha256(token.key.encode("utf-8")).hexdigest(), "prefix": token.key[:8]},
        )
        ApiToken.objects.filter(user_id=token.user_id).update(created=token.created)
    Token.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("apitokens", "0001_initial"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(hash_existing_tokens, migrations.RunPython.noop)]
