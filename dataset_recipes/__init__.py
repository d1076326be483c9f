"""Corpus recipes, registered explicitly in :data:`RECIPES` (no import-time scanning)."""

from __future__ import annotations

from dataset_recipes import (
    aishell1,
    audioset,
    clotho,
    clotho_aqa,
    cochlscene,
    covost2,
    esc50,
    gtzan,
    lhotse_manifests,
    librispeech,
    manifest,
    meld,
    musiccaps,
    nsynth,
    tut2017,
    vocalsound,
)
from pipeline.recipe import Recipe

#: Every recipe by name; ``make build-dataset RECIPE=<name>`` looks names up here.
RECIPES: dict[str, Recipe] = {
    "librispeech": librispeech.RECIPE,
    "clotho": clotho.RECIPE,
    "cochlscene": cochlscene.RECIPE,
    "esc50": esc50.RECIPE,
    "tut2017": tut2017.RECIPE,
    "gtzan": gtzan.RECIPE,
    "nsynth": nsynth.RECIPE,
    "clotho_aqa": clotho_aqa.RECIPE,
    "vocalsound": vocalsound.RECIPE,
    "aishell1": aishell1.RECIPE,
    "musiccaps": musiccaps.RECIPE,
    "audioset": audioset.RECIPE,
    "meld": meld.RECIPE,
    "lhotse": lhotse_manifests.RECIPE,
    "covost2": covost2.RECIPE,
    "manifest": manifest.RECIPE,
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; the error lists the available names."""
    try:
        return RECIPES[name]
    except KeyError:
        choices = ", ".join(sorted(RECIPES))
        raise KeyError(f"unknown recipe {name!r}; choose one of {choices}") from None
