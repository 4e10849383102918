"""Checks of the deployment: rendered manifests, Dockerfiles, and their drift from the code.

``python -m tests.deploy.validate`` is the CLI that ``make k8s-validate`` runs; the ``test_*``
modules are the pytest side of the same checks.
"""
