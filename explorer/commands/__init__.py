"""One module per ``nfx`` subcommand; each exposes ``main(args) -> int``."""
