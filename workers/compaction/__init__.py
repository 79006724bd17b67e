"""Cold prompt groups out of Redis and back: ``compact`` writes unchanged, archived and exported
groups to snapshot segments in the archive and deletes their keys; ``restore`` brings one back
when late feedback arrives; ``snapshot`` is the one format both read and write."""
