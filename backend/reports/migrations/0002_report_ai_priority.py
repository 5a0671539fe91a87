from django.db import migrations, models


def fill_priority(apps, schema_editor):
    """Reports drafted before the field existed: the priority of their study's latest result."""
    from backend.reports.priority import priority_of

    Report = apps.get_model("reports", "Report")
    InferenceResult = apps.get_model("inference", "InferenceResult")
    for report in Report.objects.filter(ai_priority__isnull=True).iterator():
        result = InferenceResult.objects.filter(study_id=report.study_id).order_by("-pk").first()
        if result is not None:
            Report.objects.filter(pk=report.pk).update(ai_priority=priority_of(result))


class Migration(migrations.Migration):

    dependencies = [
        ('inference', '0001_initial'),
        ('reports', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='report',
            name='ai_priority',
            field=models.SmallIntegerField(blank=True, db_index=True, null=True),
        ),
        migrations.RunPython(fill_priority, migrations.RunPython.noop),
    ]
