"""Keeping results: results files, the reuse store, history, shards and comparison.

Reads and writes versioned files; never runs an implementation.
"""
