"""Ponder's Qt front end: reads the run store, starts workers; never holds a model."""
