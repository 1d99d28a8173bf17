"""The headless CLI: argparse over the core. Rich output on a terminal, plain/JSON otherwise."""
