"""The names a run directory is made of, written once, in a module free of torch (the command line reads them): its
files, and the key its config.json and calibration.json give all classes together."""

CONFIG = "config.json"  # the run record (nipad.runs.run_info)
WEIGHTS = "model.safetensors"  # what the family's loader needs besides the settings
CALIBRATION = "calibration.json"  # the thresholds (nipad.engine.calibration)
TRAIN_STATE = "train_state.pt"  # a resumable training's state, deleted once the run is finished
TRAINED_IMAGES = "trained_images.json"  # the images the model was fitted on (nipad.runs.trained_images)
MANIFEST = "manifest.json"  # the sha256 of every file above (nipad.runs.integrity)
RUN_FILES = (CONFIG, WEIGHTS, CALIBRATION, TRAIN_STATE, TRAINED_IMAGES)  # the files nipad reads back (all hashed)
METRICS, REPORT = "metrics.json", "report.html"  # `nipad test`'s and `nipad demo`'s outputs, never read back
ALL = "__all__"  # calibration.json's pooled thresholds; config.json's one group of a unified baseline
