# ehr-sync — developer entry points. `make help` lists them.
SWIFT        ?= swift
CONFIG       ?= debug
BENCH_FLAGS  := -c release --scratch-path .build-release
SOURCES      := Sources Tests Benchmarks Package.swift

.PHONY: powercut help build test lint format demo bench bench-ingest bench-mirror bench-replay bench-read bench-fleet venv clean install uninstall torture fuzz

help:
	@echo "make demo          start a test EHR with a synthetic practice and mirror it (quick start)"
	@echo "make test          build and run every test (unit + integration against sekmet-fhir)"
	@echo "make lint          swift format lint (strict), and syncctl links the domain layer only"
	@echo "make format        swift format in place"
	@echo "make bench         run every benchmark; make bench-<name> runs one"
	@echo "make torture       SIGKILL the daemon in every phase (TORTURE_KILLS=210, TORTURE_SEED=N)"
	@echo "make fuzz          libFuzzer on every decoder of untrusted input (FUZZ_SECONDS=60 per target)"
	@echo "make venv          install the pinned test FHIR server into .build-venv/"
	@echo "make install       build release binaries and install the service (root; DESTDIR=DIR: into a system tree)"
	@echo "make uninstall     remove the service; keeps replica, config, key, user (PURGE=1 deletes them too)"

build:
	$(SWIFT) build -c $(CONFIG)

venv:
	python3 Tests/harness/sekmet_harness.py ensure-venv

test: venv
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-xctest --no-parallel

lint:
	$(SWIFT) format lint --strict --recursive --parallel $(SOURCES)
	scripts/check-layers.sh

format:
	$(SWIFT) format format --in-place --recursive --parallel $(SOURCES)

demo: venv
	scripts/demo.sh

bench: bench-ingest bench-mirror bench-replay bench-read bench-fleet

bench-ingest:
	$(SWIFT) build $(BENCH_FLAGS) --product IngestBenchmark
	.build-release/release/IngestBenchmark $(BENCH_ARGS)

# Options: make bench-mirror BENCH_MIRROR_ARGS="--runs 1 --skip-1m --set medium"
bench-mirror: venv
	$(SWIFT) build $(BENCH_FLAGS) --product ehr-syncd
	python3 Benchmarks/mirror/bench_mirror.py $(BENCH_MIRROR_ARGS)

# Options: make bench-replay BENCH_REPLAY_ARGS="--rounds 1 --changes 2000 --concurrency 4"
bench-replay: venv
	$(SWIFT) build $(BENCH_FLAGS) --product ehr-syncd
	python3 Benchmarks/replay/bench_replay.py $(BENCH_REPLAY_ARGS)

# Options: make bench-read BENCH_READ_ARGS="--runs 1 --duration 5 --multiples 1" (needs wrk: apt-get install wrk)
bench-read:
	$(SWIFT) build $(BENCH_FLAGS) --product ehr-syncd
	$(SWIFT) build $(BENCH_FLAGS) --product syncctl
	python3 Benchmarks/read/bench_read.py $(BENCH_READ_ARGS)

# A fleet of practices back together after an outage against a vendor of limited capacity
# (#16). Options: make bench-fleet BENCH_FLEET_ARGS="--practices 40 --changes 20 --capacity 40"
bench-fleet: venv
	$(SWIFT) build $(BENCH_FLAGS) --product FleetBenchmark
	.build-release/release/FleetBenchmark $(BENCH_FLEET_ARGS)

# The crash campaign (#14): SIGKILLs in every phase, from a seeded schedule (make test runs a
# short form). Options: make torture TORTURE_KILLS=210 TORTURE_SEED=12345
TORTURE_KILLS ?= 210
torture: venv
	$(SWIFT) build --build-tests
	EHR_SYNC_TORTURE_KILLS=$(TORTURE_KILLS) $(if $(TORTURE_SEED),EHR_SYNC_TORTURE_SEED=$(TORTURE_SEED)) \
		$(SWIFT) test --skip-build --disable-xctest --no-parallel --filter TortureTests

# Power cuts (a FUSE layer dropping unsynced writes) during local writes and replay; the test suite
# runs 24 creates. Options: POWERCUT_CREATES=200 POWERCUT_SEED=N (replays a failing run).
POWERCUT_CREATES ?= 200
powercut: venv
	$(SWIFT) build --build-tests
	EHR_SYNC_POWERCUT_CREATES=$(POWERCUT_CREATES) $(if $(POWERCUT_SEED),EHR_SYNC_POWERCUT_SEED=$(POWERCUT_SEED)) \
		$(SWIFT) test --skip-build --disable-xctest --no-parallel --filter PowerLossTests

# Coverage-guided fuzzing of the decoders of untrusted input. Options: FUZZ_SECONDS=60 FUZZ_TARGETS="json config"
fuzz:
	scripts/fuzz.sh

# Installs the service (as root). INSTALL_ARGS=--no-build installs binaries built earlier.
install:
	scripts/install.sh $(if $(DESTDIR),--root $(DESTDIR)) $(INSTALL_ARGS)

uninstall:
	scripts/uninstall.sh $(if $(DESTDIR),--root $(DESTDIR)) $(if $(PURGE),--purge)

clean:
	rm -rf .build .build-release .build-install .build-venv .build-bench .build-fuzz
