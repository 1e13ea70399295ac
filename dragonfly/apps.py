from django.apps import AppConfig


class DragonflyConfig(AppConfig):
    name = "dragonfly"
    verbose_name = "Dragonfly"
