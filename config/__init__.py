"""Typed configuration: schema, loading with precise errors, secrets from env or files.

Public surface: :func:`load_config`, :func:`parse_config`, :class:`TagsweepConfig`,
:class:`ConfigError` and :class:`ConfigProblem`.
"""

from tagsweep.config.loader import ConfigError, ConfigProblem, load_config, parse_config
from tagsweep.config.schema import TagsweepConfig

__all__ = ["ConfigError", "ConfigProblem", "TagsweepConfig", "load_config", "parse_config"]
