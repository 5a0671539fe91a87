# Per-level labels of the draft and the signed text on each condition outcome; existing rows are filled from the
# stored versions with the same labeler the sign-time receiver uses.

from django.db import migrations, models


def backfill_levels(apps, schema_editor):
    from spine_labels import STUDY_LEVEL, extract_labels

    EditMetrics = apps.get_model("analytics", "EditMetrics")
    ConditionOutcome = apps.get_model("analytics", "ConditionOutcome")
    ReportVersion = apps.get_model("reports", "ReportVersion")
    for m in EditMetrics.objects.order_by("pk").iterator(chunk_size=200):
        texts = dict(ReportVersion.objects.filter(report_id=m.report_id, number__in=[m.draft_number, m.signed_number])
                     .values_list("number", "text"))
        if m.draft_number not in texts or m.signed_number not in texts:
            continue  # left null: compute_edit_metrics rebuilds such a row from the report
        draft, signed = extract_labels(texts[m.draft_number] or ""), extract_labels(texts[m.signed_number] or "")
        for o in ConditionOutcome.objects.filter(metrics_id=m.pk):
            d, s = draft.labels.get(o.condition), signed.labels.get(o.condition)
            o.draft_levels = d.level_values() if d else {STUDY_LEVEL: 0}
            o.signed_levels = s.level_values() if s else {STUDY_LEVEL: 0}
            o.save(update_fields=["draft_levels", "signed_levels"])


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0003_edit_burden"),
        ("reports", "0002_report_ai_priority"),
    ]

    operations = [
        migrations.AddField(model_name="conditionoutcome", name="draft_levels",
                            field=models.JSONField(blank=True, null=True)),
        migrations.AddField(model_name="conditionoutcome", name="signed_levels",
                            field=models.JSONField(blank=True, null=True)),
        migrations.RunPython(backfill_levels, migrations.RunPython.noop),
    ]
