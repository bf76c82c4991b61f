from django.apps import AppConfig


class FlagshipConfig(AppConfig):
    name = "flagship"
    verbose_name = "Organizations and people"
    default_auto_field = "django.db.models.BigAutoField"
