# Every target installs what it needs into .venv first (see scripts/setup.sh).
.PHONY: setup test test-slow demo bench

setup:
	bash scripts/setup.sh

test: setup
	.venv/bin/python -m pytest -q

test-slow: setup
	.venv/bin/python -m pytest -q -m slow

demo: setup
	.venv/bin/polyhead demo

# Speed goals P1-P5 (docs/performance.md): polyhead vs its anchors, interleaved in one command. ~10 min on 2 cores.
# `make bench QUICK=1` for a smoke run; BENCH_ARGS passes more options (e.g. --only encode --models minilm-l6).
bench: setup
	.venv/bin/python -c "import sentence_transformers, psutil" 2>/dev/null || .venv/bin/python -m pip install -q -e ".[bench]"
	.venv/bin/python benchmarks/run_all.py $(if $(QUICK),--quick) $(BENCH_ARGS)
