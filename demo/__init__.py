"""The demo identities `seed_demo` creates and `make run` prints."""
