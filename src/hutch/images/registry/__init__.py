"""The registry client: the OCI distribution API v2 (pull, push, auth).

The only package that imports httpx (DESIGN.md): import its modules where a
registry is spoken to, never at start-up. ``reference`` and ``auth``'s parsers
are stdlib only.
"""
