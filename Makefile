# ehr-sync — developer entry points. `make help` lists them.
SWIFT        ?= swift
CONFIG       ?= debug
BENCH_FLAGS  := -c release --scratch-path .build-release
SOURCES      := Sources Tests Benchmarks Package.swift

.PHONY: help build test lint format demo bench bench-ingest bench-mirror bench-replay bench-read venv clean

help:
	@echo "make demo          start a test EHR with a synthetic practice and mirror it (quick start)"
	@echo "make test          build and run every test (unit + integration against sekmet-fhir)"
	@echo "make lint          swift format lint (strict)"
	@echo "make format        swift format in place"
	@echo "make bench         run every benchmark; make bench-<name> runs one"
	@echo "make venv          install the pinned test FHIR server into .build-venv/"

build:
	$(SWIFT) build -c $(CONFIG)

venv:
	python3 Tests/harness/sekmet_harness.py ensure-venv

test: venv
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-xctest

lint:
	$(SWIFT) format lint --strict --recursive --parallel $(SOURCES)

format:
	$(SWIFT) format format --in-place --recursive --parallel $(SOURCES)

demo: venv
	scripts/demo.sh

bench: bench-ingest

bench-ingest:
	$(SWIFT) build $(BENCH_FLAGS) --product IngestBenchmark
	.build-release/release/IngestBenchmark $(BENCH_ARGS)

clean:
	rm -rf .build .build-release .build-venv
