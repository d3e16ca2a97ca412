"""The reconciliation engine: freeze → normalize → match → classify → outputs."""
