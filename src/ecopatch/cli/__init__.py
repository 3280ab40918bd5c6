"""The ``ecopatch`` command line (click); nothing in the library imports it."""
