"""Dialogs over the main screen: confirm, help, model details."""
