from django.apps import AppConfig


class FlagsiteSdkConfig(AppConfig):
    name = "flagsite_sdk.django"
    label = "flagsite_sdk"
    verbose_name = "Flagsite SDK"
