"""Total Selfie's pre/post-processing tools (thesis 3.2.1, 3.5.3, 3.5.6).

- ``align``: FFHQ face alignment as a crop; ``crop``: crop geometry (RECOMPOSE_CROP), crop and
  paste back; ``regions``: face / hands / shoes boxes; ``person``: mediapipe person mask, pose
  and coarse parts; ``ranking``: reference-photo ranking by shared clothing labels.
mediapipe is imported lazily (``mediapipe_runtime``).
"""
