"""Prompt templates, one per file, installed as the package `rag.prompts` (see pyproject.toml)."""
