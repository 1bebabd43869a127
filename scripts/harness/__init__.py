"""Drive a real ComfyUI server: start/stop it, convert UI workflows, queue and wait."""
