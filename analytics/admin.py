from django.contrib import admin

from analytics.models import EventBatch, Rollup


@admin.register(EventBatch)
class EventBatchAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["batch_id", "environment", "event_count", "received_at"]
    list_filter = ["environment"]
    search_fields = ["batch_id"]
    # Batches are evidence of what was ingested: read-only.
    readonly_fields = ["environment", "batch_id", "event_count", "received_at"]


@admin.register(Rollup)
class RollupAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["flag_key", "variant", "metric", "bucket_start", "events", "users"]
    list_filter = ["environment", "metric"]
    search_fields = ["flag_key"]
    exclude = ["histogram"]
    readonly_fields = ["environment", "flag_key", "variant", "metric", "bucket_start"]


# Exporters register their own admin.
from analytics.exports import admin as exports_admin  # noqa: E402, F401
