# Two commands matter: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint typecheck unit screenshots bench clean system-deps wheel offline gpu-kit

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e . --group dev
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gputui demo

test: $(STAMP) system-deps lint typecheck unit

# The SSH tests run real OpenSSH servers in network namespaces, the Slurm
# tests a real slurmctld, slurmd and munged, and the exporter tests check the
# agent's /metrics with promtool (Debian's prometheus package): as root,
# install what they need when it is missing (Debian/Ubuntu), one check per need.
system-deps:
	@if [ "$$(id -u)" = 0 ]; then \
		missing=""; \
		{ command -v sshd >/dev/null || test -x /usr/sbin/sshd; } || missing="$$missing openssh-server"; \
		command -v ssh >/dev/null || missing="$$missing openssh-client"; \
		command -v ip >/dev/null || missing="$$missing iproute2"; \
		command -v pgrep >/dev/null || missing="$$missing procps"; \
		{ command -v slurmctld >/dev/null || test -x /usr/sbin/slurmctld; } || missing="$$missing slurmctld"; \
		{ command -v slurmd >/dev/null || test -x /usr/sbin/slurmd; } || missing="$$missing slurmd"; \
		command -v scontrol >/dev/null || missing="$$missing slurm-client"; \
		{ command -v munged >/dev/null || test -x /usr/sbin/munged; } || missing="$$missing munge"; \
		command -v nsenter >/dev/null || missing="$$missing util-linux"; \
		command -v promtool >/dev/null || missing="$$missing prometheus"; \
		command -v jq >/dev/null || missing="$$missing jq"; \
		if [ -n "$$missing" ]; then \
			echo "installing$$missing for the SSH, Slurm and exporter tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
			case "$$missing" in *prometheus*) systemctl disable --now prometheus >/dev/null 2>&1 || true;; esac; \
		fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check gputui tests bench scripts
	$(BIN)/ruff format --check gputui tests bench scripts
	# The agent and simulator must run on a host's Python 3.8.
	$(BIN)/vermin --no-tips --violations --target=3.8- --eval-annotations --backport typing --backport dataclasses gputui/agent gputui/sim gputui/protocol.py

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

# Only the tests that bring up no SSH fleet, Slurm cluster or Prometheus (tests/conftest.py marks them); `make test` runs all.
test-fast: $(STAMP)
	$(BIN)/pytest -m "not ssh and not slurm and not prometheus"

screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

# The wheel alone, and the offline bundle for air-gapped sites (README: Install). For other
# targets: make offline OFFLINE_ARGS='--python 3.11 3.12 --platform manylinux2014_x86_64 manylinux2014_aarch64'
wheel: $(STAMP)
	$(BIN)/python scripts/offline.py --wheel-only

offline: $(STAMP)
	$(BIN)/python scripts/offline.py $(OFFLINE_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/agent_cost.py

# What bench/gpu_machine.sh needs on a GPU machine that reaches no network: the offline
# bundles for the Pythons it may have, the agent zip, and nvitop's wheel to time against.
gpu-kit: $(STAMP)
	rm -rf .gpu-kit
	$(BIN)/python scripts/offline.py --python 3.11 3.12 3.13 --out .gpu-kit
	$(BIN)/gputui bundle -o .gpu-kit/agent.zip
	$(BIN)/pip download --quiet --no-deps --dest .gpu-kit nvitop==1.7.2 || echo "nvitop's wheel not fetched: bench/gpu_machine.sh leaves out nvitop -1"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
