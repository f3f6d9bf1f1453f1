"""The fcnkit command line (see fcnkit.cli.main)."""
