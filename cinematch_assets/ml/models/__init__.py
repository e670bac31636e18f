"""The models: parameters, fit and the typed artifact of each (ALS rating and ranking
models, EASE, content vectors, the fold-in of a new user). No lists, no metrics."""
