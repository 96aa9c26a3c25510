"""The end-to-end demo: synthetic inference events with scheduled changes, detected live."""
