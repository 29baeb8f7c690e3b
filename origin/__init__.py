"""The Outpost origin: conditions database behind deterministic, cacheable GET URLs."""
