"""Region-of-interest crops at several fields of view (Mei et al.'s multi-scale ensemble)."""
