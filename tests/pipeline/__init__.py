"""Tests of camels.pipeline: camels run, camels sweep."""
