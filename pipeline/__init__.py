"""Library for turning corpus records into Qwen-Audio-tagged WebDataset shards.

Modules: ``record`` (the one record type and sample schema), ``tags`` (the released
Qwen-Audio tag format), ``audio`` (decode, normalize, encode), ``shards`` (deterministic
tar writing), ``build`` (the driver: Ray tasks or one process, over the same stages),
``card`` (report and dataset card). Nothing here imports ``dataset_recipes`` or ``trainer``.
"""
