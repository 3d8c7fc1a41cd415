"""Hessian spectrum diagnostic (filled below)."""
