"""A task module that cannot be imported."""
import uwsgi  # noqa: F401

raise RuntimeError("badimport: this module fails on purpose")
