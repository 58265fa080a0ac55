"""Classes: teachers and students as hub groups (``groups.py``), and their login
(``login.py``)."""
