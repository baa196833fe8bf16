"""``python -m fastllm`` (and ``torchrun -m fastllm``) run the CLI."""

from fastllm.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
