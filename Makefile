# One-command entry points. `make demo` and `make test` install everything they need first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install check test demo bench clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml setup.py package.xml $(wildcard msg/*.msg)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	# trackeval declares opencv-python and matplotlib, which MOTS scoring does not use
	$(BIN)/pip install -q --no-deps trackeval==1.3.0
	$(BIN)/pip install -q --no-build-isolation --no-deps -e .
	touch $(STAMP)

# Lint (ruff, with docstring rules) and strict types on the ROS-free core (mypy; files in pyproject.toml).
check: install
	$(BIN)/ruff check mots_ros test tools
	$(BIN)/mypy

test: check
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/mots-ros demo --out out/demo

# MOTS20 is read where the project's shared data lives, when it is there (it is never copied).
MOTS20 ?= ../shared/data/mots20

bench: install
	$(BIN)/mots-ros bench --out benchmarks/latest.json $(if $(wildcard $(MOTS20)),--mots20 $(MOTS20))

clean:
	rm -rf $(VENV) build *.egg-info mots_ros/msg mots_ros/*.so out
