"""The Kafka adapter: the only package that imports kafka-python. Its errors become streamdrift's here."""
