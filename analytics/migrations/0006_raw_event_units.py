# The randomization units an event carries (issue 23). A constant default: on PostgreSQL 11+
# the column is added without rewriting the table, however many raw events it holds.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0005_names_and_reasons"),
    ]

    operations = [
        migrations.AddField(
            model_name="rawevent",
            name="units",
            field=models.JSONField(default=dict),
        ),
    ]
