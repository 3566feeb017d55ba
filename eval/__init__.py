"""Evaluation of answers on held-out questions, installed as rag.evaluation: retrieval, citations (ALCE),
faithfulness, key facts, abstention, latency; offline and LLM judges; reports."""
