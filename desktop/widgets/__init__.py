"""Reusable widgets: live plots, the error banner, the trace view, form fields, pickers."""
