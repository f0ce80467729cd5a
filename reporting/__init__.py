"""Collecting scores into a summary and rendering the paper tables (reports/tables.md)."""
