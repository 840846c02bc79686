"""Moving rows: per-table plans and limits, schema creation, bounded pipelines, export, load, copy, resume, verify and reports."""
