from django.apps import AppConfig


class FlagsConfig(AppConfig):
    name = "flags"
    verbose_name = "Projects, environments and flags"
    default_auto_field = "django.db.models.BigAutoField"
