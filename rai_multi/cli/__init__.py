"""The ``rai-multi`` command line: thin typer modules that parse and call library code."""
