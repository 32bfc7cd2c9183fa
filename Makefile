# Two commands matter: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit screenshots bench clean system-deps

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gputui demo

test: $(STAMP) system-deps lint typecheck unit

# The SSH tests run real OpenSSH servers in network namespaces: as root,
# install what they need when it is missing (Debian/Ubuntu).
system-deps:
	@if [ "$$(id -u)" = 0 ] && ! { command -v sshd >/dev/null || test -x /usr/sbin/sshd; } ; then \
		echo "installing openssh-server and iproute2 for the SSH tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client iproute2 procps >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check gputui tests bench scripts
	$(BIN)/ruff format --check gputui tests bench scripts
	# The agent and simulator must run on a host's Python 3.8.
	$(BIN)/vermin --no-tips --violations --target=3.8- --eval-annotations --backport typing --backport dataclasses gputui/agent gputui/sim

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

bench: $(STAMP)
	$(BIN)/python bench/agent_cost.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
