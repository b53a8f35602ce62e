"""A quick command line: `import nipad`, building the parser, `nipad --help`, `--version`, `nipad train --help` and
`nipad data` import no torch (each checked in a fresh interpreter, as a user's shell starts one)."""

from __future__ import annotations

import subprocess
import sys

from nipad import __version__
from nipad.families import all_models
from nipad.models import names


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_import_nipad_and_building_the_parser_import_no_torch():
    done = _python("import sys; from nipad.cli.main import build_parser; build_parser(); import nipad; "
                   "print('torch' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_help_and_version_exit_0_without_torch():
    for flag, expected in (("--help", "train"), ("--version", f"nipad {__version__}")):
        done = _python(f"import sys\nfrom nipad.cli.main import main\ntry:\n    main([{flag!r}])\n"
                       f"except SystemExit as end:\n    print('exit', end.code, 'torch' in sys.modules)")
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout and done.stdout.strip().endswith("exit 0 False"), done.stdout
    done = subprocess.run([sys.executable, "-m", "nipad.cli.main", "--version"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and f"nipad {__version__}" in done.stdout


def test_train_help_of_every_model_exits_0_without_torch():
    for model in ("onenip", "anomalysd", "patchcore"):
        done = _python(f"import sys\nfrom nipad.cli.main import main\ntry:\n    main(['train', '--model', {model!r}, "
                       f"'--help'])\nexcept SystemExit as end:\n    print('exit', end.code, 'torch' in sys.modules)")
        assert done.returncode == 0, done.stderr
        assert f"{model} (--model {model})" in done.stdout and done.stdout.strip().endswith("exit 0 False"), done.stdout


def test_nipad_data_imports_no_torch(tiny_mvtec):
    done = _python(f"import sys\nfrom nipad.cli.main import main\nrc = main(['data', '--data', {str(tiny_mvtec)!r}])\n"
                   f"print('exit', rc, 'torch' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert "stripes" in done.stdout and done.stdout.strip().endswith("exit 0 False"), done.stdout


def test_the_light_names_are_the_ones_the_models_use():
    from nipad.models.baselines.template import MODES
    from nipad.models.neck import NECKS

    assert tuple(all_models()) == names.MODELS
    assert NECKS is names.NECKS and MODES is names.MODES
