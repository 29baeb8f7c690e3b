"""The Outpost caching proxy (node, site and central tiers): not built yet."""
