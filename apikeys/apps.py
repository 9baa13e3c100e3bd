from django.apps import AppConfig


class ApikeysConfig(AppConfig):
    name = "apikeys"
    verbose_name = "API keys"

    def ready(self) -> None:
        # Registers the OpenAPI description of key authentication with drf-spectacular.
        from apikeys import schema  # noqa: F401
        from apikeys.authentication import aresolve_key, set_invalidation_live
        from apikeys.invalidation import apply_message, revoked_channel
        from flags import evaluation
        from flags.api import keys

        # flags does not import this app: the evaluation API resolves keys, and the ruleset
        # listener carries revocations, through what is plugged in here.
        keys.register_resolver(aresolve_key)
        evaluation.add_channel(
            evaluation.Channel(
                name=revoked_channel, apply=apply_message, set_live=set_invalidation_live
            )
        )
