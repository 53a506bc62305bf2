from django.apps import AppConfig
from django.db.models.signals import post_migrate


class VdiConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "vdi"
    verbose_name = "Virtual desktops"

    def ready(self) -> None:
        from vdi import receivers  # noqa: F401  (connects them)
        from vdi.roles import sync_roles

        post_migrate.connect(sync_roles, sender=self, dispatch_uid="vdi.sync_roles")
