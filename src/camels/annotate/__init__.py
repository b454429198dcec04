"""Human pairwise evaluation: a web app where annotators compare two systems' responses to one prompt.

``create_app`` (camels.annotate.app) builds the Flask app on a store (camels.annotate.store: SQLAlchemy,
SQLite by default, Alembic migrations); ``sources`` reads the runs and judge files it compares;
``service`` holds accounts, assignment and saving, free of the web layer. It reads files and never loads a
model. See docs/human-eval.md.
"""
