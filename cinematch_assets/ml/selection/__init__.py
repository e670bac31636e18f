"""Choosing and judging: metrics, tuning, the champion, the held-out evaluation of what is
served, and the studies (ablation, cold-movie protocol, candidates on the test split)."""
