"""Everything that loads or runs a model: the registry, preparation, and the engines."""
