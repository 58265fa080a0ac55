"""The two spawners and what they share: a local process (``local.py``) or a pod
(``kube.py``), both on ``core.py``; the starter form, server names, progress messages, and
the preview route both keep in their state for the preview gateway (``previewroute.py``)."""
