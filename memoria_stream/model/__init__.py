"""Backend-free knowledge of Memoria's data: the catalogue of its 14 tables, canonical column types and value rules."""
