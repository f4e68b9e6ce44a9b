# Learnware Market: `make demo` runs the market end to end, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Test files run in parallel, one file per worker (its servers and fixtures stay together): the
# suite mostly waits on servers, sandboxes and builds, so more workers than cores pay.
PYTEST_WORKERS ?= 4
TS_DIR := clients/typescript
TS_STAMP := $(TS_DIR)/dist/.built-stamp
DESCRIPTOR_SET := build/learnware.v1.desc
WEB_UI_DIR := services/web/ui
WEB_UI_STAMP := services/web/lwm/services/web/static/.built-stamp

.PHONY: venv demo web-demo test test-fast test-all lint proto clients web-ui clean sandbox-deps test-deps

# System packages (Debian; CI runs as root): gVisor (runsc), else bubblewrap, is the sandbox of every learnware
# check; the tests also start a real PostgreSQL and, when it installs, a Docker engine.
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends

# torch is installed first and pinned exactly (the CPU wheel); see DEVELOPERS.md.
# Every component folder is a distribution contributing to the `lwm` namespace (DEVELOPERS.md).
COMPONENTS := libs/learnware libs/spec libs/runtime libs/rpc libs/checks libs/client libs/reuse \
	services/organizer services/checker services/searcher services/reuse services/gateway services/market services/web tests/support
PIP := $(BIN)/pip install -q --disable-pip-version-check
# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as on CI machines) nothing writes .pyc files later, and
# every process of the tests and the market would compile numpy, scipy and scikit-learn again (6 s of CPU each).
UV_PIP := $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python

# pip installs torch (it finds the machine's CPU wheel; see DEVELOPERS.md) and uv, then uv
# installs the components and the dev tools: with torch==2.13.0 already there it keeps it,
# and it builds the fourteen editable components in seconds where pip takes minutes.
$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(COMPONENTS))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0 'uv>=0.8'
	$(UV_PIP) $(addprefix -e ,$(COMPONENTS)) torch==2.13.0
	$(UV_PIP) --group dev
	$(BIN)/python -m compileall -q $(COMPONENTS) >/dev/null
	$(BIN)/uv venv -q --allow-existing --python $(BIN)/python $(VENV)/checkov
	$(BIN)/uv pip install -q --python $(VENV)/checkov/bin/python --group policy
	touch $(STAMP)

venv: $(STAMP)

sandbox-deps:
	@command -v bwrap >/dev/null || { apt-get update -qq && $(APT_INSTALL) bubblewrap; }
	@command -v runsc >/dev/null || { apt-get update -qq && $(APT_INSTALL) runsc; } || echo "runsc not installed: learnwares run under bubblewrap, the gVisor tests skip"

test-deps: sandbox-deps
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && $(APT_INSTALL) postgresql; }
	@command -v dockerd >/dev/null || { apt-get update -qq && $(APT_INSTALL) docker.io; } || echo "docker.io not installed: the Docker sandbox tests will skip"
	@command -v chromium >/dev/null || { apt-get update -qq && $(APT_INSTALL) chromium; }  # the web UI's browser tests

demo: $(STAMP) sandbox-deps
	$(BIN)/python examples/demo_market.py
	@echo "The market in a browser: make web-demo (the demo market with its web UI at http://127.0.0.1:$(WEB_PORT)/; WEB_PORT=N for another port)"

# The demo market with `lwm web` in front of it; prints "Web UI: http://127.0.0.1:PORT/" and runs until Ctrl-C.
WEB_PORT ?= 8080
web-demo: $(STAMP) $(WEB_UI_STAMP) sandbox-deps
	$(BIN)/python examples/web_demo.py --web-port $(WEB_PORT)

# ruff over every Python file; mypy over the product (strict on lwm.spec, lwm.rpc, lwm.client).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy $(addsuffix /lwm,$(COMPONENTS))

# The setup steps run side by side (venv, TypeScript client, web UI), then lint beside the tests:
# mypy's minute of CPU fills the time the tests spend waiting on servers and sandboxes.
test:
	$(MAKE) --no-print-directory -j3 $(STAMP) $(TS_STAMP) $(WEB_UI_STAMP) test-deps
	$(MAKE) --no-print-directory -j2 lint test-fast

test-fast: $(STAMP) $(TS_STAMP) $(WEB_UI_STAMP) test-deps
	$(BIN)/python -m pytest -q -m "not slow" -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-all: $(STAMP) $(TS_STAMP) $(WEB_UI_STAMP) test-deps
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The container images of deploy/Dockerfile (all targets, or IMAGES="organizer gateway"), built
# without a registry from a debootstrap base (as root, with the Docker engine of DOCKER_HOST;
# docs/operators.md). tests/integration/test_image_build.py builds the market image and runs it.
.PHONY: image
image:
	deploy/build_images.sh $(IMAGES)

proto: $(STAMP)
	$(BIN)/python tools/gen_protos.py
	$(BIN)/python tools/gen_api_docs.py

# Clients for other languages: the TypeScript client (built here, tested by make test)
# and a descriptor set from which any language's gRPC tooling can generate stubs.
$(TS_STAMP): $(TS_DIR)/package.json $(TS_DIR)/package-lock.json $(wildcard protos/learnware/v1/*.proto $(TS_DIR)/src/*.ts $(TS_DIR)/test/*.ts)
	cd $(TS_DIR) && npm ci --no-audit --no-fund && npm run build
	touch $(TS_STAMP)

$(DESCRIPTOR_SET): $(STAMP) $(wildcard protos/learnware/v1/*.proto)
	mkdir -p build
	$(BIN)/python -m grpc_tools.protoc -Iprotos --include_imports --include_source_info --descriptor_set_out=$(DESCRIPTOR_SET) protos/learnware/v1/*.proto

clients: $(TS_STAMP) $(DESCRIPTOR_SET)

# The web UI (Vite + TypeScript), built into the lwm-web-service package that `lwm web` serves at /.
$(WEB_UI_STAMP): $(WEB_UI_DIR)/package.json $(WEB_UI_DIR)/package-lock.json $(WEB_UI_DIR)/index.html $(wildcard $(WEB_UI_DIR)/src/*)
	cd $(WEB_UI_DIR) && npm ci --no-audit --no-fund && npm run build
	touch $(WEB_UI_STAMP)

web-ui: $(WEB_UI_STAMP)

clean:
	rm -rf .lwm-demo .pytest_cache build $(TS_DIR)/dist
