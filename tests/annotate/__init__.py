"""Tests of camels.annotate (a package, so its conftest and modules do not clash with other test folders)."""
