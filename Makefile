# Every target sets up what it needs: `make lab` and `make test` work on a fresh clone.
# PYTHON=python3.12 make ...: the interpreter the virtual environment is made from (3.10 or newer).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
NBMAKE_TIMEOUT ?= 900
# Test processes for `make test` (pytest-xdist); 0 runs everything in one process. Each process (and each
# notebook kernel it starts) gets one torch thread: two processes with two threads each on two cores
# oversubscribe them and run several times slower than one process.
JOBS ?= 2
# loadgroup: tests go to whichever process is free (one long file does not hold the other process back),
# except that a module marked xdist_group (an expensive module-scoped fixture) stays in one process.
XDIST = $(if $(filter-out 0,$(JOBS)),-n $(JOBS) --dist loadgroup)
XDIST_ENV = $(if $(filter-out 0,$(JOBS)),OMP_NUM_THREADS=1 MKL_NUM_THREADS=1)
# `jupyter lab` refuses to start as root unless told to (containers, some cloud machines).
LAB_FLAGS ?= $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)

.PHONY: setup setup-dev check-python lab lint test test-unit test-notebooks compare compare-full student grade notebooks \
	render benchmark gpu-check clean

setup: $(STAMP)

check-python:
	@version=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || { \
		echo "make: cannot run '$(PYTHON)'. Install Python 3.10 or newer, or name one: make PYTHON=python3.11 ..." >&2; \
		exit 1; }; \
	case "$$version" in \
		2.*|3.[0-9]) echo "make: '$(PYTHON)' is Python $$version, the course needs 3.10 or newer. Name a newer one: make PYTHON=python3.11 ..." >&2; \
			exit 1;; \
	esac

$(STAMP): requirements.txt pyproject.toml | check-python
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements.txt
	# Microsoft's mup (the μP reference of notebook 06's tests) imports only torch and numpy, but its
	# metadata asks for torchvision, which would replace the pinned torch: install it without deps.
	$(PY) -m pip install --no-deps mup
	touch $(STAMP)

# What tests and maintainers need beyond a student's setup: pytest-xdist, and llama-models for rebuilding
# (and checking) the token resource.
setup-dev: $(DEV_STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(PY) -m pip install -r requirements-dev.txt
	touch $(DEV_STAMP)

## open the course in JupyterLab
lab: setup
	$(PY) -m jupyter lab $(LAB_FLAGS) notebooks/

## ruff on the library, the course machinery, the tests and the notebooks' code (settings in pyproject.toml)
LINT_PATHS = course_lib classroom tests benchmarks resource notebooks/en
lint: setup-dev
	$(PY) -m ruff check $(LINT_PATHS)

## the whole test suite: lint, then unit tests + every notebook (ko and en) in quick mode, JOBS processes
test: setup-dev
	$(PY) -m ruff check $(LINT_PATHS)
	COURSE_QUICK=1 $(XDIST_ENV) $(PY) -m pytest tests notebooks/en notebooks/ko --nbmake --nbmake-timeout=$(NBMAKE_TIMEOUT) -p no:cacheprovider $(XDIST)

test-unit: setup-dev
	COURSE_QUICK=1 $(XDIST_ENV) $(PY) -m pytest tests -p no:cacheprovider $(XDIST)

test-notebooks: setup-dev
	COURSE_QUICK=1 $(XDIST_ENV) $(PY) -m pytest notebooks/en notebooks/ko --nbmake --nbmake-timeout=$(NBMAKE_TIMEOUT) -p no:cacheprovider $(XDIST)

## rendered copies with outputs under rendered/ (full mode, about 40 min on 2 cores); NB="01 07" for some only
NB ?=
render: setup
	$(PY) -m classroom.render $(NB)

## the capstone, headless: PNG + JSON under outputs/capstone
compare: setup
	$(PY) -m course_lib.capstone --out outputs/capstone

compare-full: setup
	$(PY) -m course_lib.capstone --vocab full --out outputs/capstone

## student copies of every notebook under student/ (COLAB_BASE=URL: where you publish them, for the badge)
COLAB_BASE ?=
student: setup
	$(PY) -m classroom.student_copies --out student $(if $(COLAB_BASE),--colab-base $(COLAB_BASE))

## grade submitted notebooks: make grade SUBMISSIONS=folder [GRADES=grades.csv] [GRADE_TIMEOUT=600]
SUBMISSIONS ?= submissions
GRADES ?= grades.csv
GRADE_TIMEOUT ?= 600
grade: setup
	$(PY) -m classroom.grade $(SUBMISSIONS) --out $(GRADES) --timeout $(GRADE_TIMEOUT)

## rebuild notebooks/en and notebooks/ko from notebooks/src
notebooks: setup
	$(PY) -m classroom.build

benchmark: setup
	$(PY) benchmarks/bench_capstone.py
	$(PY) benchmarks/bench_seed_call.py

## on a machine with a CUDA GPU: every GPU path in a few minutes, figures into benchmarks/gpu_results.md
gpu-check: setup
	$(PY) benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) student outputs .pytest_cache grades.csv grades_feedback
