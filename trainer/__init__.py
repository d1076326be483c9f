"""Multitask Qwen-Audio trainer: shards -> batches -> Whisper encoder + Qwen LM -> scores.

Modules: ``tokenizer`` (Qwen vocabulary + the released special tokens), ``reader`` (lazy
shard reading, only ``flac`` and ``json``), ``data`` (deterministic training streams and
once-through validation), ``features`` (log-mel + token/label batches), ``model`` (plain
``nn.Module``s and the loss), ``module`` (the LightningModule), ``scoring`` and
``evaluate`` (greedy decoding + per-task scores), ``fit`` (the Hydra entry point).
The trainer knows only the shard format; it never imports ``dataset_recipes``.
"""
