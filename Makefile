# Every target sets up what it needs: `make lab` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NBMAKE_TIMEOUT ?= 900

.PHONY: setup lab test test-unit test-notebooks compare compare-full student grade notebooks benchmark clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements.txt
	# Microsoft's mup (the μP reference of notebook 06's tests) imports only torch and numpy, but its
	# metadata asks for torchvision, which would replace the pinned torch: install it without deps.
	$(PY) -m pip install --no-deps mup
	touch $(STAMP)

## open the course in JupyterLab
lab: setup
	$(PY) -m jupyter lab notebooks/

## the whole test suite: unit tests + every notebook (ko and en) in quick mode
test: setup
	COURSE_QUICK=1 $(PY) -m pytest tests notebooks/en notebooks/ko --nbmake --nbmake-timeout=$(NBMAKE_TIMEOUT) -p no:cacheprovider

test-unit: setup
	COURSE_QUICK=1 $(PY) -m pytest tests -p no:cacheprovider

test-notebooks: setup
	COURSE_QUICK=1 $(PY) -m pytest notebooks/en notebooks/ko --nbmake --nbmake-timeout=$(NBMAKE_TIMEOUT) -p no:cacheprovider

## the capstone, headless: PNG + JSON under outputs/capstone
compare: setup
	$(PY) -m course_lib.capstone --out outputs/capstone

compare-full: setup
	$(PY) -m course_lib.capstone --vocab full --out outputs/capstone

## student copies of every notebook under student/ (COLAB_BASE=URL: where you publish them, for the badge)
COLAB_BASE ?=
student: setup
	$(PY) -m course_lib.assignments --out student $(if $(COLAB_BASE),--colab-base $(COLAB_BASE))

## grade submitted notebooks: make grade SUBMISSIONS=folder [GRADES=grades.csv] [GRADE_TIMEOUT=600]
SUBMISSIONS ?= submissions
GRADES ?= grades.csv
GRADE_TIMEOUT ?= 600
grade: setup
	$(PY) -m course_lib.grade $(SUBMISSIONS) --out $(GRADES) --timeout $(GRADE_TIMEOUT)

## rebuild notebooks/en and notebooks/ko from notebooks/src
notebooks: setup
	$(PY) -m course_lib.nbtools

benchmark: setup
	$(PY) benchmarks/bench_capstone.py
	$(PY) benchmarks/bench_seed_call.py

clean:
	rm -rf $(VENV) student outputs .pytest_cache grades.csv grades_feedback
