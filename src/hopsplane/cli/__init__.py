"""The operator's command line (typer), one module per domain."""
