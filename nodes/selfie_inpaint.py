"""selfie_inpaint nodes."""
NODES = []
