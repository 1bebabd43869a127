"""fitcheck nodes."""
NODES = []
