"""The apps floor: the online endpoint's server (``apps.serving``) and the UI pages (``apps.ui``)."""
