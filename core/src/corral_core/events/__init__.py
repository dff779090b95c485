"""The durable event log and its live fan-out."""
