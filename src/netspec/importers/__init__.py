"""Readers of other frameworks' model definitions, each turning one into a netspec spec (YAML text).

``hf``: a Hugging Face ``config.json`` (``netspec import hf``).
"""
