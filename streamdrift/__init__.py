"""streamdrift: online drift detection for ML models in production, over Kafka."""

__version__ = "0.1.0"
