"""Template filters for money (`{% load money %}`)."""
