"""Sub-commands (being written)."""


def register(subparsers) -> None:
    """Adds this module's sub-commands to the ``fastllm`` parser."""
