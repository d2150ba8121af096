"""Runnable protocols (installed as ``hal.protocols``), each driven by one config file."""
