"""The Gradio chat UI, installed as rag.ui; it uses only the library's public API. A process that opens the UI is
the program's own: it is told to stay offline before Gradio is imported (Gradio reads its analytics switch then)."""

from rag.config import apply_offline_environment

apply_offline_environment()
