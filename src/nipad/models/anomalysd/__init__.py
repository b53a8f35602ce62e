"""AnomalySD (few-shot multi-class anomaly detection by Stable Diffusion inpainting): masks, prototypes, prompts,
fine-tuning, inference and the "anomalysd" model family. diffusers and transformers are imported only when used."""
