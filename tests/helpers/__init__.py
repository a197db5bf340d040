"""Callbacks the tests inject through Hydra overrides (`+callbacks.x._target_=tests.helpers.X`)."""
