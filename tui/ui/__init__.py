"""The Textual front end (``llmdeck`` with no command). The core never imports this package."""
