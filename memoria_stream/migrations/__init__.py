"""Schema migrations: discover the scripts, run each in its own process, record what ran."""
