"""The long-running service: run loop, checkpoints, shutdown, logs."""
