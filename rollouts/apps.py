from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "rollouts"
    verbose_name = "Staged rollouts"

    def ready(self) -> None:
        # The flag's admin page shows the current stage and guardrails (flags cannot import
        # rollouts: it renders what is registered here).
        from flags.admin_panels import register_flag_panel
        from rollouts import approval
        from rollouts.admin_panel import flag_rollouts_panel

        register_flag_panel("rollouts", flag_rollouts_panel)
        # A plan's approval is a change request of the flags app's one review flow.
        approval.register()
