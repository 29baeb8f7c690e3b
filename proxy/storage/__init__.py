"""Where the proxy keeps responses: memory (L1, per process), Redis (L2, shared by a site),
and the tiered store that composes them. All speak `Store` (`proxy.storage.base`)."""
