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
from pipeline.errors import UnknownName
from pipeline.recipe import Recipe

#: Every recipe by name; ``make build-dataset RECIPE=<name>`` looks names up here.
RECIPES: dict[str, Recipe] = {
    # speech
    "librispeech": librispeech.RECIPE,
    "aishell1": aishell1.RECIPE,
    "covost2": covost2.RECIPE,
    "meld": meld.RECIPE,
    "vocalsound": vocalsound.RECIPE,
    # sounds
    "clotho": clotho.RECIPE,
    "clotho_aqa": clotho_aqa.RECIPE,
    "cochlscene": cochlscene.RECIPE,
    "tut2017": tut2017.RECIPE,
    "esc50": esc50.RECIPE,
    "audioset": audioset.RECIPE,
    # music
    "nsynth": nsynth.RECIPE,
    "gtzan": gtzan.RECIPE,
    "musiccaps": musiccaps.RECIPE,
    # any corpus
    "lhotse": lhotse_manifests.RECIPE,
    "manifest": manifest.RECIPE,
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; the error lists the available names."""
    try:
        return RECIPES[name]
    except KeyError:
        choices = ", ".join(sorted(RECIPES))
        raise UnknownName(f"unknown recipe {name!r}; choose one of {choices}") from None
