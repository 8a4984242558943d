"""The one-line migration: the app's entry module starts with the line
below; nothing else changes. (This file wraps app.py so that one app.py
serves the three setups of this example.)"""
import gospool; gospool.install()  # noqa: E702  <- the one line

from app import application  # noqa: E402,F401
