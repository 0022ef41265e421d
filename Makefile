# Every target installs what it needs into .venv first (see scripts/setup.sh).
.PHONY: setup test test-slow demo

setup:
	bash scripts/setup.sh

test: setup
	.venv/bin/python -m pytest -q

test-slow: setup
	.venv/bin/python -m pytest -q -m slow

demo: setup
	.venv/bin/polyhead demo
