"""Configuration: one YAML file validated once into an immutable `StreamdriftConfig`."""

from streamdrift.config.loader import load_config, parse_config
from streamdrift.config.model import StreamdriftConfig

__all__ = ["StreamdriftConfig", "load_config", "parse_config"]
