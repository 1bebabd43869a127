"""facevid2vid (Wang et al., "One-Shot Free-View Neural Talking-Head Synthesis", CVPR 2021) as
fine-tuned by Total Selfie for face undistortion: our implementation, with the parameter names
of the published checkpoint ``00000196-checkpoint.pth.tar`` so it loads strictly."""
from .model import Correction, FaceCorrectorNetworks, build_networks

__all__ = ["Correction", "FaceCorrectorNetworks", "build_networks"]
