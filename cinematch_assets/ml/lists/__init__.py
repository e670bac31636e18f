"""Lists from the models: the one list builder and its rankers, the served order's policy,
the slots for new movies, and the Spark side of making lists for many users."""
