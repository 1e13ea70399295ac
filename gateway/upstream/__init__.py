"""Upstream adapters, one per wire format, behind one interface (base.py)."""
