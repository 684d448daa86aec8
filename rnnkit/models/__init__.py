"""Task models built from rnnkit.nn layers: the language model (more tasks to come)."""
