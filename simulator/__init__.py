"""Simulated upstream provider (OpenAI-compatible chat/embeddings, MiniMax TTS) for
development, tests and benchmarks. No production module imports it; see docs/simulator.md."""
