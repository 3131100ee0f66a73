# Fuzzing campaign: every fuzz target in the module, one after another.
#   make fuzz                      # FUZZTIME per target (default 10m)
#   make fuzz FUZZTIME=30s FUZZ=kdbx
#   make fuzz FUZZJOBS=8 FUZZFLAGS='-parallel 1'   # 8 targets at a time
# make expands $ in FUZZ: write $$ for a regex anchor (FUZZ='FuzzOpen$$'), or
# call scripts/fuzz directly.
FUZZTIME ?= 10m
FUZZ ?=
FUZZJOBS ?= 1
FUZZFLAGS ?=
export FUZZJOBS FUZZFLAGS

.PHONY: fuzz fuzz-seeds

fuzz:
	scripts/fuzz '$(FUZZTIME)' '$(FUZZ)'

# Write the f.Add seeds of targets that have no committed corpus yet.
fuzz-seeds:
	scripts/fuzz-seeds

# Crash tests (issue 7): SIGKILL during local writes, during sync and during
# server writes, CRASHITER iterations each (default 100).
#   make crash CRASHITER=5
CRASHITER ?= 100

.PHONY: crash

crash:
	scripts/crash '$(CRASHITER)'

# Soak/load test (issue 7): SOAKCLIENTS clients for SOAKTIME against one
# `safe serve` in its own process, on SQLite and then PostgreSQL.
#   make soak SOAKTIME=1m SOAKCLIENTS=50
SOAKTIME ?= 5m
SOAKCLIENTS ?= 200

.PHONY: soak

soak:
	scripts/soak '$(SOAKTIME)' '$(SOAKCLIENTS)'
