"""Dragonfly project package: settings, URL and ASGI routing, the Celery app (dragonfly/celery.py).

The Celery app is not imported here: Celery, kombu and their dependencies cost a web process
about 5 MB of resident memory, and a web process needs them only to enqueue a task
(market/services.py imports the task module, which imports the app). Workers and beat find the app
as `celery -A dragonfly` finds `dragonfly.celery.app`.
"""
