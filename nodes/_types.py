"""Custom socket types shared by several families (one definition each)."""
from comfy_api.latest import io

PoseKeypoint = io.Custom("POSE_KEYPOINT")  # the community OpenPose JSON list (comfyui_controlnet_aux)
CoreFaceLandmarks = io.Custom("FACE_LANDMARKS")  # newer core ComfyUI's face landmarker output
PainterType = io.Custom("RECOMPOSE_PAINTER")  # Inverse Painting: learned renderer or baseline painter
MaskGeneratorType = io.Custom("RECOMPOSE_MASK_GENERATOR")
InstructionsType = io.Custom("RECOMPOSE_INSTRUCTIONS")
SelfiePipeType = io.Custom("RECOMPOSE_SELFIE_PIPE")  # Total Selfie: inpainting pipeline (base or fine-tuned)
