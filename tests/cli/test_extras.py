import builtins

import pytest

from nipad.cli import main as cli


@pytest.mark.parametrize("module, extra", [("fastapi", "serve"), ("onnxruntime", "export"),
                                           ("diffusers.pipelines", "anomalysd"), ("elpv_dataset", "demo")])
def test_a_missing_optional_package_names_the_extra_that_installs_it(module, extra):
    hint = cli.missing_extra(ModuleNotFoundError(f"No module named '{module}'", name=module))
    assert f"pip install 'nipad[{extra}]'" in hint and module.split(".")[0] in hint


def test_any_other_missing_module_is_not_blamed_on_an_extra():
    assert cli.missing_extra(ModuleNotFoundError("No module named 'torch'", name="torch")) is None


def test_serve_without_its_extra_exits_2_with_the_install_command(monkeypatch, capsys, tmp_path):
    real_import = builtins.__import__

    def without_fastapi(name, *args, **kwargs):
        if name.split(".")[0] == "fastapi":
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_fastapi)
    for name in [m for m in list(__import__("sys").modules) if m.startswith(("fastapi", "nipad.serve"))]:
        monkeypatch.delitem(__import__("sys").modules, name)
    assert cli.main(["serve", str(tmp_path)]) == 2
    assert "pip install 'nipad[serve]'" in capsys.readouterr().err
