"""Corpus recipes, registered explicitly in :data:`RECIPES` (no import-time scanning)."""

from __future__ import annotations

from dataset_recipes import clotho, librispeech
from pipeline.recipe import Recipe

#: Every recipe by name; ``make build-dataset RECIPE=<name>`` looks names up here.
RECIPES: dict[str, Recipe] = {
    "librispeech": librispeech.RECIPE,
    "clotho": clotho.RECIPE,
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; the error lists the available names."""
    try:
        return RECIPES[name]
    except KeyError:
        raise KeyError(f"unknown recipe {name!r}; choose one of {', '.join(sorted(RECIPES))}") from None
