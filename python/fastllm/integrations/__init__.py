"""fastllm inside other projects.

* :mod:`.transformers`: Hugging Face ``transformers`` models on fastllm's attention kernels
  (``attn_implementation="fastllm"``) and fused loss (:func:`fastllm.integrations.transformers.apply`).

Nothing here is imported by ``import fastllm``: each integration imports its project only
when it is imported itself.
"""
