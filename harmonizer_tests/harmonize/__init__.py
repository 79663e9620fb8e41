"""Rules, mapping, the staged layer, the merge, match candidates."""
