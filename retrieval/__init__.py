"""Retrieval: embeddings, FAISS and BM25 indexes, the KB and customer history."""
