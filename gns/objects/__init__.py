"""Rigid-object scenes, the object domain (``docs/objects.md``)."""
