"""The models: training, tuning and metrics on Spark; scoring, top-N and fold-in in numpy."""
