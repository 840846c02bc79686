"""Memoria schema migration scripts, shipped as package data (see memoria_stream.migrations.discover)."""
