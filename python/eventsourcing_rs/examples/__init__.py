"""Example applications and systems."""
