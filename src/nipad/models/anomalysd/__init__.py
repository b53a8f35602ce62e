"""AnomalySD (few-shot multi-class anomaly detection by Stable Diffusion inpainting): masks, prototypes, prompts,
fine-tuning, inference and building the detector (the "anomalysd" family that trains and loads runs is
nipad.engine.anomalysd). diffusers and transformers are imported only when used."""
