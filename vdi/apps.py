from django.apps import AppConfig


class VdiConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "vdi"
    verbose_name = "Virtual desktops"

    def ready(self) -> None:
        from vdi import signals  # noqa: F401  (connects the receivers)
