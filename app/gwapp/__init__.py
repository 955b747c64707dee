"""Helpers of the gwviz Streamlit app (cached resources, sidebar settings, figures)."""
