"""Plotly figures and the files they are written to: EDA, model evaluation, model card."""
