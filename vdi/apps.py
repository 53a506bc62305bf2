from django.apps import AppConfig


class VdiConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "vdi"
    verbose_name = "Virtual desktops"
