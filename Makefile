# landscope: `make demo` runs the quickstart on a private local stack; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU build of PyTorch; a bare `torch` would download a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install browser demo test test-unit test-integration lint fuzz openapi sdk bench bench-env clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[service,dev]' $(TORCH_PIN)
	touch $(STAMP)

# The browser tests (tests/integration/test_ui_browser.py) drive Debian's headless
# Chromium with Playwright; no browser is ever downloaded. Installed here when missing
# and we are root (CI machines); otherwise those tests skip and say why.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	else echo "$(CHROMIUM) missing and not root: the browser tests will be skipped"; fi

demo: install
	$(PY) examples/quickstart.py --local --out out/quickstart

test: install browser
	$(PY) -m pytest -q -p no:cacheprovider tests

test-unit: install
	$(PY) -m pytest -q tests/unit tests/known_answer

test-integration: install browser
	$(PY) -m pytest -q tests/integration

lint: install
	$(VENV)/bin/ruff check client service tests benchmarks examples scripts
	$(VENV)/bin/mypy --strict client/landscope
	$(PY) -m landscope_service.codegen all --check

# Property-based fuzzing of the live API against its own OpenAPI document.
fuzz: install
	LANDSCOPE_FUZZ_EXAMPLES=200 $(PY) -m pytest -q tests/integration/test_schemathesis.py

# The OpenAPI document and the kinds' docs tables, from the code (the option tables);
# then the SDK's typed options classes, from the committed openapi.json.
openapi: install
	$(PY) -m landscope_service.api.openapi > service/landscope_service/api/openapi.json
	$(PY) -m landscope_service.codegen docs
	$(MAKE) sdk

sdk: install
	$(PY) -m landscope_service.codegen sdk

# Benchmarks never run in `make test`. The anchors live in their own venv.
bench-env:
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install -q $(TORCH_PIN) numpy scipy safetensors matplotlib marshmallow networkx requests
	.venv-bench/bin/python -m pip install -q --no-deps -e .
	.venv-bench/bin/python -m pip install -q --no-deps -r benchmarks/anchors-requirements.txt

bench: install bench-env
	.venv-bench/bin/python benchmarks/hessian_vs_anchors.py
	.venv-bench/bin/python benchmarks/slice_vs_loss_landscapes.py
	$(PY) benchmarks/manifold_scale.py
	$(PY) benchmarks/connectivity_budget.py
	$(PY) benchmarks/service_overhead.py
	$(PY) benchmarks/data_scale.py

clean:
	rm -rf out var .pytest_cache
