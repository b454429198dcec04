"""One pure converter per source: raw row -> conversations (no I/O)."""
