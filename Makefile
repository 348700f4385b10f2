# Thin aliases for ./run, which works even where make is not installed.
.PHONY: demo test deps lint
demo: ; ./run demo
test: ; ./run test
deps: ; ./run deps
lint: ; .venv/bin/ruff check . && .venv/bin/lint-imports
