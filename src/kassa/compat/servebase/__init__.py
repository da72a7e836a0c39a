"""@servebase/payment's gateway contract (docs/compat/servebase.md).

The router lives in `kassa.compat.servebase.routes`; `settings` is imported by `kassa.config`, so
this package imports nothing of Kassa's services.
"""
