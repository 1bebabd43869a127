"""painting_tools nodes."""
NODES = []
