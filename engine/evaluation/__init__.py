"""Quality evaluation of voice conversion against a parallel corpus, independent of the model's own parts.

- :mod:`engine.evaluation.metrics`: F0 error, voicing agreement, speaker similarity, DNSMOS, duration ratio.
- :mod:`engine.evaluation.mcd`: mel-cepstral distortion between time-aligned renditions.
- :mod:`engine.evaluation.baselines`: the WORLD envelope-swap converter and the oracle.
- :mod:`engine.evaluation.corpus`: held-out pairs, oracles and reference clips from a corpus.
- :mod:`engine.evaluation.cache`: on-disk cache of per-clip measurements (embeddings, scores, envelopes).
- :mod:`engine.evaluation.runner`: runs every system on every pair and measures each output.
- :mod:`engine.evaluation.report`: summary per system and target group, threshold checks, tables.
"""
