"""Sample corpora material: bundled recordings and :mod:`.synth` sound generators."""
