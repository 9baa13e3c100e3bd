from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Analytics"

    def ready(self) -> None:
        # flags cannot import analytics, so the previews it shows get their exposure-based
        # impact estimate through this hook.
        from analytics.impact import estimate
        from flags.preview import register_impact_estimator

        register_impact_estimator(estimate)
