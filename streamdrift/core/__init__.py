"""The pure, deterministic core: events in, alerts out. No Kafka, no clock, no threads."""
