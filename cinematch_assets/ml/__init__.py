"""The recommender, in three layers; each imports only the layers above it:

- `models`: each model's parameters, its fit and its typed artifact (how it is stored in
  the lake). Nothing here builds a list or computes a metric.
- `lists`: the one list builder (rankers, the served order's policy, new-movie slots)
  and the Spark side of making lists from the models.
- `selection`: tuning, the champion, the evaluation and the studies: everything that
  compares models on held-out data, and all the refitting that comparison takes.
"""
