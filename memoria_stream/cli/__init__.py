"""The ``memoria-stream`` command line: the only package that parses arguments or draws progress."""
