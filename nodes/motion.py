"""motion nodes."""
NODES = []
