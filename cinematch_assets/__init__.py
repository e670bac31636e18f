"""CineMatch: a Dagster-orchestrated Spark + Delta Lake lakehouse for movie recommendations."""
