"""The native REST API (`/api/v1`) and the ASGI application."""
