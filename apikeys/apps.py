from django.apps import AppConfig


class ApikeysConfig(AppConfig):
    name = "apikeys"
    verbose_name = "API keys"

    def ready(self) -> None:
        # Registers the OpenAPI description of key authentication with drf-spectacular.
        from apikeys import schema  # noqa: F401
        from apikeys.authentication import (
            aresolve_key,
            peek_key,
            register_cache_guard,
            set_invalidation_live,
        )
        from apikeys.invalidation import apply_message, revalidate_cached_keys, revoked_channel
        from flags import evaluation, healing
        from flags.api import keys

        # flags does not import this app: the evaluation API resolves keys, and the ruleset
        # listener carries revocations, through what is plugged in here.
        keys.register_resolver(aresolve_key)
        keys.register_peeker(peek_key)
        evaluation.add_channel(
            evaluation.Channel(
                name=revoked_channel, apply=apply_message, set_live=set_invalidation_live
            )
        )
        # The periodic check re-reads cached keys, so a revocation without a message (the
        # embedded mode, a shell) still stops the key within two seconds; caching a key starts
        # the checker in a process that only authenticates (the management API).
        healing.register_check(revalidate_cached_keys)
        register_cache_guard(healing.ensure_started)
