"""The local control API: JSON schema (shared with the console), metrics, the HTTP server.

Importing this package must stay cheap and dependency-free: the console imports
`overlay_core.api.schema`, which runs this file first.
"""
