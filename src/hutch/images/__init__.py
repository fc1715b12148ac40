"""Images: the content-addressed store, OCI layout import/export, templates.

Today it holds only the built-in templates (``hutch.images.templates``); the
store builds on them later.
"""
