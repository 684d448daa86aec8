"""Run directories: ``rundir.py`` (config, vocabularies, weights, checkpoints checked by their
checksums, metrics, written atomically) and ``lock.py`` (one writer at a time)."""
