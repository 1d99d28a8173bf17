"""The panes and their pieces; each renders what it is handed and reads nothing itself."""
