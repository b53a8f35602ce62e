"""The names the command line offers as choices, in a module free of torch so that building the parser (`nipad
--help`, `nipad --version`, `nipad data`) imports none: the modules that implement them take their names from here."""

MODELS = ("onenip", "uniad", "anomalysd", "patchcore", "padim", "knn")  # nipad.families.all_models() (a test)
RECONSTRUCTION = "reconstruction"  # the family of OneNIP / UniAD runs; also of runs whose config.json names none
NECKS = ("mfcn", "pooled")  # nipad.models.neck
MODES = ("separate", "unified")  # nipad.models.baselines.template: one model per class, or one for all classes
SEED = 133  # every model's and training's default seed (`--seed`)
