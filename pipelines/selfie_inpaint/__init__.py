"""Total Selfie's selfie-conditioned inpainting (thesis 3.2.1, 3.5.2-3.5.4).

encoder.py (four selfies -> tokens), loader.py (Paint-by-Example folders), pipeline.py
(sampler), blending.py (eq. 3.4), controlnet.py (ControlNet fed the selfie embedding).
Heavy libraries are imported inside these modules; import them from nodes' ``execute``.
"""
