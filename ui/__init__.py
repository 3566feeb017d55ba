"""The Gradio chat UI, installed as rag.ui; it uses only the library's public API."""
