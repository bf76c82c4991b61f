from django.apps import AppConfig


class FlagshipConfig(AppConfig):
    name = "flagship"
    verbose_name = "Organizations and people"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from flagship import schema  # noqa: F401  (registers the bearer scheme for the schema)
