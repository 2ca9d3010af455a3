"""Training data: an offline multi-speaker singing (and speech) corpus rendered from Debian voices.

Start at :func:`engine.data.corpus.make_dataset` (CLI: ``autovoice make-dataset``).
"""
