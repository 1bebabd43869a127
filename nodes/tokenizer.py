"""tokenizer nodes."""
NODES = []
