"""Every recipe module is registered once, with a fixture and a test of its own."""

from pathlib import Path

import dataset_recipes
from dataset_recipes import RECIPES
from pipeline import tags

ROOT = Path(__file__).resolve().parents[1]
NOT_RECIPES = {"__init__", "common", "build", "download", "hf_sources", "textfiles", "jsonfiles",
               "lhotse_plain", "lhotse_audio"}
MODULE_NAMES = {"lhotse": "lhotse_manifests"}


def test_every_recipe_module_is_registered_with_a_fixture_and_a_test():
    modules = {p.stem for p in (ROOT / "dataset_recipes").glob("*.py")} - NOT_RECIPES
    registered = {MODULE_NAMES.get(name, name) for name in RECIPES}
    assert modules == registered
    for name, recipe in RECIPES.items():
        assert recipe.info.name == name
        assert (ROOT / "tests" / "fixtures" / name).is_dir(), f"no fixture for {name}"
        assert (ROOT / "tests" / f"test_recipe_{name}.py").is_file(), f"no test for {name}"
        assert recipe.info.licence
        if name != "manifest":  # a user's own corpus: the user cites it
            assert recipe.info.citation.strip().startswith("@"), name
        assert set(recipe.info.tasks) <= set(tags.TASKS)
        assert recipe.info.splits or name in ("lhotse", "manifest")


def test_the_package_exports_only_the_registry():
    assert dataset_recipes.get_recipe("clotho") is RECIPES["clotho"]
