"""Redis clients: REDIS_URL to clients, and the embedded default's substitute."""
