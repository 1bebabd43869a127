"""Inverse Painting (thesis chapter 6): text instruction -> mask instruction -> canvas rendering,
repeated from a blank canvas toward a target painting. ``interfaces.py`` holds the contracts;
heavy modules (diffusers/transformers) are imported only by the modules that need them."""
