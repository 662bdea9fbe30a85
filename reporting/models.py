"""Reporting models (KPI rollups and alerts)."""
