"""Training, as a library: data, optimisation, runtime, checkpoints and the training loops.

``data`` (token shards, the batch loader, JSONL), ``prepare`` (text -> shards), ``optim`` (AdamW
groups, schedule, the optimizer step), ``runtime`` (device, torchrun, autocast, seeding, the run
directory lock), ``checkpoint``, ``config`` (``TrainConfig``), ``metrics``, ``pretrain``, and the
fine-tuning loops ``finetune`` (shared), ``sft`` and ``dpo`` with ``chat_template``. The
applications built on it live apart: ``fastllm.demos`` and the ``fastllm`` CLI (``fastllm.cli``).

Sub-modules import torch lazily or are torch-free where they can be, so the CLI starts fast.
"""
