"""Backups that restore: create/restore/list, backup files and retention, and ``backup_guard``."""
