"""painting nodes."""
NODES = []
