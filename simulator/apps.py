"""Django app config for the simulated upstream (it only contributes a management command)."""

from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    name = "simulator"
    label = "simulator"
    verbose_name = "Simulated upstream"
