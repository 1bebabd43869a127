"""Fit Check motion and background retrieval (thesis 4.4): IMU recordings, a motion
database of pose sequences, DTW retrieval, ground-plane background ranking."""
