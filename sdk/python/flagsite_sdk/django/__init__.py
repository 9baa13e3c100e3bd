"""Django integration (optional; the rest of flagsite_sdk never imports Django).

Add ``"flagsite_sdk.django"`` to INSTALLED_APPS (for the template tags),
``"flagsite_sdk.django.middleware.FlagsiteMiddleware"`` after the authentication middleware,
and configure the client in settings::

    FLAGSITE = {
        "URL": "https://flags.example.com",
        "SERVER_KEY": env("FLAGSITE_SERVER_KEY"),
        "OPTIONS": {"cache_path": "/var/cache/flagsite/ruleset.json"},  # FlagsiteClient kwargs
        "USER_ATTRIBUTES": {"email": "email", "isStaff": "is_staff"},  # context <- user
        "CONTEXT_PROCESSOR": "myapp.flags.extra_context",  # optional: f(request, context)
    }
"""
