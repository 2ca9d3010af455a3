"""Training the SVC model on a corpus made by ``autovoice make-dataset`` (CPU-friendly, resumable)."""
