"""``manage.py simulate_upstream``: run the simulated upstream provider (no database needed)."""

from django.core.management.base import BaseCommand, CommandError

from simulator.cli import add_arguments, defaults_from, run
from simulator.knobs import KnobError


class Command(BaseCommand):
    help = "Run the simulated upstream LLM provider (OpenAI-compatible + MiniMax TTS)."
    requires_system_checks: list = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        add_arguments(parser)

    def handle(self, *args, **options):
        try:
            defaults = defaults_from(options)
        except KnobError as exc:
            raise CommandError(str(exc)) from exc

        def announce(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        run(
            host=options["host"],
            port=options["port"],
            defaults=defaults,
            server=options["server"],
            announce=announce,
        )
