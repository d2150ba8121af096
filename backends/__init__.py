"""Committee backends (installed as ``hal.backends``): turn labelled data into a committee."""
