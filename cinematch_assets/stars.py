"""MovieLens' star scale: half stars from 0.5 to 5.0. No Spark, so the app can use it."""

MIN_RATING, MAX_RATING = 0.5, 5.0
