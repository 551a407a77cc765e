"""Providers: one package per backend behind the interfaces in :mod:`providers.base`.

Use :func:`providers.catalogue.get_provider` to load one by name; :mod:`providers.catalogue`
lists them all.
"""
