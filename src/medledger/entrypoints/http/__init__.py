"""The node's one ASGI app (FastAPI on uvicorn)."""
