from django.apps import AppConfig


class DragonflyConfig(AppConfig):
    name = "dragonfly"
    verbose_name = "Dragonfly"

    def ready(self) -> None:
        from dragonfly import checks  # noqa: F401 - registers the deployment checks
