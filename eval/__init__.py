"""Evaluation of answers on a question set (the development questions by default), installed as
rag.evaluation: retrieval, citations (ALCE), faithfulness, key facts, abstention, latency; offline and LLM
judges; reports."""
