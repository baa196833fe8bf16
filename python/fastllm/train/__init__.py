"""Training: corpus preparation, pre-training, SFT, DPO and the end-to-end demo.

Every sub-module imports torch lazily or is torch-free where it can be, so the
``fastllm`` CLI starts fast; import what you need from the sub-modules, e.g.
``from fastllm.train.prepare import prepare_documents``.
"""
