"""The one install line for mediapipe, shown by every node that needs it and in the README.

mediapipe 0.10.21 is the last release with the offline ``solutions`` models. ``--no-deps`` keeps out
jax/jaxlib and its ``numpy<2`` pin; the second command installs what the solutions really import.
protobuf: 4.25.x and 6.x run it (5.x and 7.x fail to parse its graphs), so an installed 6.x is kept.
opencv-python-headless instead of its declared opencv-contrib-python, which clashes with other
packs' opencv-python. README "Install" lists what `pip check` reports afterwards.
"""
MEDIAPIPE_INSTALL = ('pip install --no-deps mediapipe==0.10.21 && pip install "protobuf>=4.25.3,!=5.*,<7" '
                     "absl-py attrs flatbuffers opencv-python-headless matplotlib sounddevice")
