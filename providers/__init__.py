"""Providers: one package per backend behind the interfaces in :mod:`providers.base`.

Use :func:`providers.registry.get_provider` to load one by name.
"""
