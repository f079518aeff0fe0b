from django.apps import AppConfig


class FrontConfig(AppConfig):
    """The pages that compose several apps (docs/architecture.md): the top layer, imported only by the URLs."""

    name = "front"
