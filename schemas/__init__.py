"""The JSON Schema files of edcore, shipped as package data (edcore.schemas)."""
