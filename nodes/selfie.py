"""selfie nodes."""
NODES = []
