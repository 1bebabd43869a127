# Two commands for a fresh machine:
#   make demo   set everything up, run the default workflows headless, results in output/
#   make test   set everything up, run the whole test suite
PY := .venv/bin/python

.PHONY: setup demo test unit e2e bench workflows mutation

setup:
	bash scripts/setup_env.sh

demo: setup
	$(PY) scripts/demo.py

test: setup
	$(PY) -m pytest -q -rs tests

unit: setup
	$(PY) -m pytest -q tests/unit

e2e: setup
	$(PY) -m pytest -q -rs tests/e2e

workflows: setup
	$(PY) scripts/build_workflows.py

# Mutation score of the core maths (mutmut; takes a while, not part of CI).
mutation: setup
	$(PY) scripts/mutation.py
