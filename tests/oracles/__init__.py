"""Independent oracles for tests: third-party implementations that cannot live in the project's venv."""
